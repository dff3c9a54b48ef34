#include "ui/details_panel.h"

#include <algorithm>

#include "base/hex.h"
#include "report/text_reporter.h"

namespace fiberscope::ui {
namespace {

std::string frame_call(const report::Frame& frame) {
  std::string text = report::printable(report::function_label(frame));
  if (frame.args_known) {
    // The symbol table's demangled names carry their parameter types: replace them with the values.
    text.resize(without_parameters(text).size());
    text += "(";
    for (std::size_t i = 0; i < frame.args.size(); ++i) {
      if (i) text += ", ";
      text += report::format_argument(frame.args[i]);
    }
    text += ")";
  } else if (!text.ends_with(')')) {
    text += "(...)";
  }
  if (frame.inlined) text += " (inlined)";
  return text;
}

std::string frame_where(const report::Frame& frame) {
  std::string text;
  if (!frame.file.empty() && frame.line > 0) {
    text = report::printable(frame.file) + ":" + std::to_string(frame.line);
  } else {
    if (!frame.module.empty()) text = report::printable(frame.module) + " ";
    text += frame.function.empty() ? hex(frame.pc) : "+" + hex(frame.function_offset);
  }
  return text + "  [" + std::string(report::stack_kind_name(frame.stack)) + " stack]";
}

// Splits a message into lines at its newlines and at "; ": a finding's message carries its evidence as
// "summary; key: value; key: value", which reads best one item per line.
void add_text_block(std::vector<DetailsPanel::Line>& lines, const std::string& text, Role role, int indent) {
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t newline = text.find('\n', start);
    const std::size_t semicolon = text.find("; ", start);
    const std::size_t end = std::min(newline, semicolon);
    const std::string piece = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    lines.push_back({std::string(static_cast<std::size_t>(indent), ' ') + report::printable(piece), role, indent + 2});
    if (end == std::string::npos) break;
    start = end + (end == semicolon ? 2 : 1);
  }
}

}  // namespace

void DetailsPanel::show(std::uint64_t fiber_id) {
  fiber_id_ = fiber_id;
  scroll_.reset();
}

std::vector<DetailsPanel::Line> DetailsPanel::lines() const {
  std::vector<Line> lines;
  const FiberRow* row = model_.row_of(fiber_id_);
  if (!row) {
    lines.push_back({"fiber " + std::to_string(fiber_id_) + " is not in this snapshot (it finished?)", Role::error, 0});
    return lines;
  }
  const report::Fiber& fiber = *row->fiber;
  std::string head = "fiber " + std::to_string(fiber.id) + " \"" + report::printable(fiber.name) + "\"  " +
                     report::printable(report::state_label(fiber));
  if (!fiber.wait_reason.empty()) head += " (" + report::printable(fiber.state) + ")";
  if (fiber.time_in_state_ns) head += " for " + report::format_duration(*fiber.time_in_state_ns);
  if (fiber.thread) head += ", thread " + std::to_string(*fiber.thread);
  if (!fiber.integrity.empty()) head += ", record " + fiber.integrity;
  lines.push_back({head, Role::value, 2});
  if (fiber.crashed) {
    std::string crash = "crashed here";
    if (const auto& crashed = model_.dump().crash) {
      crash += ": " + report::printable(report::crash_label(*crashed)) + " in thread " + std::to_string(crashed->tid);
    }
    lines.push_back({crash, Role::error, 2});
  }
  if (fiber.wait_object) lines.push_back({"waiting on object " + hex(fiber.wait_object), Role::dim, 2});
  if (fiber.created_by) {
    const report::CodeLocation& at = *fiber.created_by;
    std::string text = "created by " + (at.function.empty() ? hex(at.pc) : report::printable(at.function));
    if (!at.file.empty() && at.line > 0) text += " at " + report::printable(at.file) + ":" + std::to_string(at.line);
    lines.push_back({text, Role::dim, 2});
  }
  const std::vector<std::size_t> findings = model_.findings_of(fiber.id);
  if (!findings.empty()) {
    lines.push_back({});
    lines.push_back({std::to_string(findings.size()) + (findings.size() == 1 ? " finding:" : " findings:"),
                     Role::finding, 0});
    for (std::size_t index : findings) {
      const report::Finding& finding = model_.dump().findings[index];
      std::string text = "[" + finding.kind + "]";
      if (!finding.frame.empty()) text += " in " + finding.frame;
      add_text_block(lines, text, Role::finding, 2);
      add_text_block(lines, finding.message, Role::normal, 4);
    }
  }
  for (const report::DumpError& error : model_.dump().errors)
    if (error.fiber_id == fiber.id) add_text_block(lines, "error: " + error.message, Role::error, 0);
  lines.push_back({});
  // A lean snapshot's fiber gets its arguments from the pump in milliseconds, or with the next snapshot when the
  // pump is busy taking one: until then its frames show (...), and this says why.
  lines.push_back({model_.has_args(fiber.id) ? "backtrace, innermost first:"
                                             : "backtrace, innermost first (reading the arguments...):",
                   Role::label, 0});
  const auto& frames = fiber.stack.frames;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    lines.push_back({"#" + std::to_string(i) + (i < 10 ? "  " : " ") + frame_call(frames[i]), Role::normal, 6});
    lines.push_back({"      " + frame_where(frames[i]), Role::dim, 8});
  }
  if (frames.empty()) lines.push_back({"  (no frames)", Role::dim, 2});
  if (fiber.stack.truncated) lines.push_back({"  ...more frames elided (depth limit)", Role::dim, 2});
  if (!fiber.stack.stop_reason.empty())
    lines.push_back({"  unwinding stopped: " + report::printable(fiber.stack.stop_reason), Role::error, 4});
  return lines;
}

void DetailsPanel::draw(Canvas& canvas, const Rect& area) {
  if (area.height <= 0 || area.width <= 0) return;
  // Wrap first, so that scrolling counts screen rows.
  std::vector<Line> rows;
  for (const Line& line : lines()) {
    const auto width = static_cast<std::size_t>(area.width);
    if (line.text.size() <= width) {
      rows.push_back(line);
      continue;
    }
    const std::size_t indent = std::min<std::size_t>(static_cast<std::size_t>(line.indent), width / 2);
    // Break at the last blank that leaves at least half a row, else mid-word (long paths, hex runs).
    auto piece_length = [&](std::size_t at, std::size_t room) {
      if (line.text.size() - at <= room) return line.text.size() - at;
      const std::size_t blank = line.text.rfind(' ', at + room - 1);
      return blank != std::string::npos && blank > at + room / 2 ? blank + 1 - at : room;
    };
    std::size_t at = 0;
    std::size_t take = piece_length(0, width);
    rows.push_back({line.text.substr(0, take), line.role, 0});
    for (at = take; at < line.text.size() && rows.size() < 100000; at += take) {
      take = piece_length(at, width - indent);
      rows.push_back({std::string(indent, ' ') + line.text.substr(at, take), line.role, 0});
    }
  }
  const std::size_t first = scroll_.first_visible(rows.size(), area.height);
  for (int y = 0; y < area.height && first + static_cast<std::size_t>(y) < rows.size(); ++y) {
    const Line& line = rows[first + static_cast<std::size_t>(y)];
    canvas.put(area.row + y, area.column, line.text, line.role);
  }
}

KeyResult DetailsPanel::on_key(Key key) {
  if (scroll_.on_key(key)) return KeyResult::handled();
  if (key == keys::kEscape || key == keys::kLeft || key == keys::kBackspace || key == 'h' || key == 8)
    return KeyResult::back();
  return KeyResult::ignored();
}

}  // namespace fiberscope::ui
