#include "report/dump.h"

#include "base/hex.h"

namespace fiberscope::report {

FrameList::FrameList(std::vector<Frame> frames)
    : frames_(frames.empty() ? nullptr : std::make_shared<std::vector<Frame>>(std::move(frames))) {}

const std::vector<Frame>& FrameList::frames() const {
  static const std::vector<Frame> kNoFrames;
  return frames_ ? *frames_ : kNoFrames;
}

std::vector<Frame>& FrameList::owned() {
  if (!frames_) {
    frames_ = std::make_shared<std::vector<Frame>>();
  } else if (frames_.use_count() > 1) {
    frames_ = std::make_shared<std::vector<Frame>>(*frames_);
  }
  return *frames_;
}

std::string_view stack_kind_name(StackKind kind) {
  switch (kind) {
    case StackKind::fiber: return "fiber";
    case StackKind::system: return "system";
    case StackKind::thread: return "thread";
    case StackKind::unknown: return "unknown";
  }
  return "unknown";
}

std::string_view argument_status_name(Argument::Status status) {
  switch (status) {
    case Argument::Status::ok: return "ok";
    case Argument::Status::optimized_out: return "optimized out";
    case Argument::Status::unavailable: return "unavailable";
    case Argument::Status::entry_value: return "entry value";
    case Argument::Status::error: return "error";
  }
  return "error";
}

std::string function_label(const Frame& frame) {
  if (!frame.function.empty()) return frame.function;
  if (!frame.module.empty()) return frame.module + "!" + hex(frame.pc);
  return "?? " + hex(frame.pc);
}

std::string state_label(const Fiber& fiber) { return fiber.wait_reason.empty() ? fiber.state : fiber.wait_reason; }

}  // namespace fiberscope::report
