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

std::string_view source_kind_name(Source::Kind kind) {
  switch (kind) {
    case Source::Kind::live: return "live";
    case Source::Kind::live_no_stop: return "live-no-stop";
    case Source::Kind::core: return "core";
  }
  return "live";
}

std::string function_label(const Frame& frame) {
  if (!frame.function.empty()) return frame.function;
  // As gdb: "??" when no symbol covers the pc, with where it is in its file so it can be looked up later.
  if (!frame.module.empty()) return "?? (" + frame.module + " +" + hex(frame.function_offset) + ")";
  return "?? " + hex(frame.pc);
}

std::string state_label(const Fiber& fiber) { return fiber.wait_reason.empty() ? fiber.state : fiber.wait_reason; }

std::string crash_label(const Crash& crash) {
  std::string text = crash.signal_name.empty() ? "signal " + std::to_string(crash.signal) : crash.signal_name;
  if (crash.fault_address) text += " at " + hex(*crash.fault_address);
  return text;
}

std::string crash_summary(const Dump& dump) {
  if (!dump.crash) return {};
  const Crash& crash = *dump.crash;
  std::string text = "thread " + std::to_string(crash.tid) + " crashed: " + crash_label(crash);
  if (!crash.fiber_id) return text;
  text += ", running fiber " + std::to_string(*crash.fiber_id);
  for (const Fiber& fiber : dump.fibers)
    if (fiber.id == *crash.fiber_id) return text + " \"" + fiber.name + "\"";
  return text;
}

}  // namespace fiberscope::report
