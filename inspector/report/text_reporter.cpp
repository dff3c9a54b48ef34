#include "report/text_reporter.h"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "base/hex.h"
#include "report/grouping.h"

namespace fiberscope::report {

// Names and values come from the target: a control character could rewrite the user's terminal, so it is shown
// as \xNN instead.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02x", byte);
      out += escape;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string format_argument(const Argument& arg) {
  std::string text = printable(arg.name) + "=";
  switch (arg.status) {
    case Argument::Status::ok: return text + printable(arg.value);
    case Argument::Status::optimized_out: return text + "<optimized out>";
    case Argument::Status::unavailable: return text + "<unavailable>";
    case Argument::Status::entry_value: return text + "<entry value>";
    case Argument::Status::error: return text + "<error: " + printable(arg.detail) + ">";
  }
  return text;
}

namespace {

std::string where_line(const Frame& frame) {
  std::string text = "\t";
  if (!frame.file.empty() && frame.line > 0) {
    text += printable(frame.file) + ":" + std::to_string(frame.line);
  } else {
    if (!frame.module.empty()) text += printable(frame.module) + " ";
    text += frame.function.empty() ? hex(frame.pc) : "+" + hex(frame.function_offset);
  }
  return text + " [" + std::string(stack_kind_name(frame.stack)) + " stack]\n";
}

void append_frame(std::string& out, const Frame& frame, bool with_args) {
  const std::string label = printable(function_label(frame));
  out += label;
  if (!with_args || !frame.args_known) {
    // Names from the symbol table are demangled with their parameter types already: "(...)" only where no
    // parameter list is shown at all.
    if (!label.ends_with(')')) out += "(...)";
  } else {
    out += "(";
    for (std::size_t i = 0; i < frame.args.size(); ++i) {
      if (i) out += ", ";
      out += format_argument(frame.args[i]);
    }
    out += ")";
  }
  if (frame.inlined) out += " (inlined)";
  out += "\n" + where_line(frame);
}

void append_stack(std::string& out, const Stack& stack, bool with_args) {
  for (const Frame& frame : stack.frames) append_frame(out, frame, with_args);
  if (stack.truncated) out += "...additional frames elided (--depth)...\n";
  if (!stack.stop_reason.empty()) out += "\t... unwinding stopped: " + printable(stack.stop_reason) + "\n";
}

std::string fiber_header_tail(const Dump& dump, const Fiber& fiber) {
  std::string text = " [" + printable(state_label(fiber));
  if (fiber.crashed) text += dump.crash ? ", crashed: " + printable(crash_label(*dump.crash)) : ", crashed";
  if (fiber.time_in_state_ns) text += ", " + format_duration(*fiber.time_in_state_ns);
  if (fiber.thread) text += ", thread " + std::to_string(*fiber.thread);
  if (!fiber.integrity.empty()) text += ", record " + fiber.integrity;
  return text + "]:\n";
}

void append_created_by(std::string& out, const Fiber& fiber) {
  if (!fiber.created_by) return;
  const CodeLocation& at = *fiber.created_by;
  out += "created by " + (at.function.empty() ? hex(at.pc) : printable(at.function));
  if (!at.file.empty() && at.line > 0) out += " at " + printable(at.file) + ":" + std::to_string(at.line);
  out += "\n";
}

// Each fiber's findings and errors, indexed once: a fiber's entry looks its own up instead of scanning all of them
// (a hostile table can give each of 100k fibers an error: scanning would be 10^10 steps).
struct FiberNotes {
  std::unordered_map<std::uint64_t, std::vector<const Finding*>> findings;
  std::unordered_map<std::uint64_t, std::vector<const DumpError*>> errors;

  explicit FiberNotes(const Dump& dump) {
    for (const Finding& finding : dump.findings)
      if (finding.fiber_id) findings[*finding.fiber_id].push_back(&finding);
    for (const DumpError& error : dump.errors)
      if (error.fiber_id) errors[*error.fiber_id].push_back(&error);
  }
  // Whether `fiber` must be shown on its own: findings, errors, a torn record or a crash.
  bool about(const Fiber& fiber) const {
    return !fiber.integrity.empty() || fiber.crashed || findings.contains(fiber.id) || errors.contains(fiber.id);
  }
};

void append_fiber(std::string& out, const Dump& dump, const FiberNotes& notes, const Fiber& fiber,
                  const FiberStackSource& stacks) {
  out += dump.fiber_noun + " " + std::to_string(fiber.id);
  if (dump.fibers_named) out += " \"" + printable(fiber.name) + "\"";
  out += fiber_header_tail(dump, fiber);
  if (stacks) {
    append_stack(out, stacks(fiber), true);
  } else {
    append_stack(out, fiber.stack, true);
  }
  append_created_by(out, fiber);
  if (auto found = notes.findings.find(fiber.id); found != notes.findings.end()) {
    for (const Finding* finding : found->second) {
      out += "\tfinding [" + printable(finding->kind) + "]";
      if (!finding->frame.empty()) out += " in " + printable(finding->frame);
      out += ": " + printable(finding->message) + "\n";
    }
  }
  if (auto found = notes.errors.find(fiber.id); found != notes.errors.end())
    for (const DumpError* error : found->second) out += "\terror: " + printable(error->message) + "\n";
  out += "\n";
}

// What grouped text prints: groups of two or more fibers, and the fibers it prints one by one — alone in
// their group, or kept visible because of findings, errors, torn records or a crash.
struct GroupedFibers {
  std::vector<FiberGroup> groups;        // every group, biggest first (groups of one included, in order)
  std::vector<const Fiber*> with_notes;  // printed after the groups
};

GroupedFibers group_for_text(const Dump& dump, const FiberNotes& notes) {
  std::vector<const Fiber*> grouped;
  GroupedFibers result;
  for (const Fiber& fiber : dump.fibers) (notes.about(fiber) ? result.with_notes : grouped).push_back(&fiber);
  result.groups = group_fibers(grouped);
  return result;
}

bool groups_fibers(const Dump& dump, const TextOptions& options) {
  return options.grouping == TextOptions::Grouping::on ||
         (options.grouping == TextOptions::Grouping::automatic && dump.fibers.size() > kAutoGroupFibers);
}

// Text built up to here goes out before the next fiber or thread: the whole dump is never one string.
void flush(std::string& text, std::ostream& sink) {
  sink.write(text.data(), static_cast<std::streamsize>(text.size()));
  text.clear();
}

void write_groups(std::string& out, std::ostream& sink, const Dump& dump, const FiberNotes& notes,
                  const FiberStackSource& stacks) {
  const GroupedFibers grouped = group_for_text(dump, notes);
  for (const FiberGroup& group : grouped.groups) {
    const Fiber& fiber = *group.members.front();
    const std::size_t count = group.members.size();
    if (count == 1) {  // nothing to collapse: the fiber's own header, arguments and spawn site say more
      append_fiber(out, dump, notes, fiber, stacks);
      flush(out, sink);
      continue;
    }
    std::vector<std::uint64_t> ids;
    ids.reserve(count);
    for (const Fiber* member : group.members) ids.push_back(member->id);
    out += std::to_string(count) + " " + dump.fiber_noun + "s [" + printable(state_label(fiber)) + "]: " +
           format_id_ranges(std::move(ids)) + "\n";
    append_stack(out, fiber.stack, false);
    out += "\n";
    flush(out, sink);
  }
  for (const Fiber* fiber : grouped.with_notes) {
    append_fiber(out, dump, notes, *fiber, stacks);
    flush(out, sink);
  }
}

void append_header(std::string& out, const Dump& dump) {
  out += "pid " + std::to_string(dump.pid);
  if (!dump.exe_path.empty()) out += " " + printable(dump.exe_path);
  out += ": " + std::to_string(dump.fibers.size()) + " " + dump.fiber_noun + (dump.fibers.size() == 1 ? ", " : "s, ");
  out += std::to_string(dump.threads.size()) + (dump.threads.size() == 1 ? " thread, " : " threads, ");
  if (dump.source.kind == Source::Kind::core) {
    out += "core file";
  } else if (dump.source.kind == Source::Kind::live_no_stop) {
    out += "not stopped (--no-stop)";
  } else if (dump.pause_ms) {
    char pause[48];
    std::snprintf(pause, sizeof pause, "paused %.1f ms", *dump.pause_ms);
    out += pause;
  } else {
    out += "pause unknown";
  }
  if (!dump.has_fiber_table) out += ", no fiber table";
  out += "\n";
  if (dump.crash) out += "warning: " + printable(crash_summary(dump)) + "\n";
  for (const std::string& warning : dump.warnings) out += "warning: " + printable(warning) + "\n";
  out += "\n";
}

}  // namespace

std::string format_duration(std::uint64_t nanoseconds) {
  const std::uint64_t ms = nanoseconds / 1'000'000;
  if (ms < 1000) return std::to_string(ms) + "ms";
  std::uint64_t seconds = ms / 1000;
  std::string text;
  if (seconds >= 3600) text += std::to_string(seconds / 3600) + "h", seconds %= 3600;
  if (!text.empty() || seconds >= 60) text += std::to_string(seconds / 60) + "m", seconds %= 60;
  return text + std::to_string(seconds) + "s";
}

std::string format_id_ranges(std::vector<std::uint64_t> ids, std::size_t max_runs) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::string text;
  std::size_t runs = 0;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (runs == max_runs) {
      text += ", ... (" + std::to_string(ids.size() - i) + " more)";
      break;
    }
    if (runs++) text += ", ";
    text += std::to_string(ids[i]);
    if (j > i) text += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return text;
}

std::string render_text(const Dump& dump, const TextOptions& options) {
  std::ostringstream out;
  write_text(dump, out, options);
  return std::move(out).str();
}

void write_text(const Dump& dump, std::ostream& sink, const TextOptions& options, const FiberStackSource& stacks) {
  std::string out;  // one fiber's or thread's text at a time
  append_header(out, dump);
  flush(out, sink);
  const FiberNotes notes(dump);
  if (groups_fibers(dump, options)) {
    write_groups(out, sink, dump, notes, stacks);
  } else {
    for (const Fiber& fiber : dump.fibers) {
      append_fiber(out, dump, notes, fiber, stacks);
      flush(out, sink);
    }
  }
  for (const Thread& thread : dump.threads) {
    flush(out, sink);  // the previous entry
    out += "thread " + std::to_string(thread.tid);
    if (!thread.name.empty()) out += " \"" + printable(thread.name) + "\"";  // a core names no thread
    if (thread.fiber_id) {
      out += ": running " + dump.fiber_noun + " " + std::to_string(*thread.fiber_id) + "\n\n";
      continue;
    }
    out += ":\n";
    append_stack(out, thread.stack, true);
    for (const DumpError& error : dump.errors)
      if (error.tid == thread.tid && !error.fiber_id) out += "\terror: " + printable(error.message) + "\n";
    out += "\n";
  }
  const bool any_general = std::any_of(dump.errors.begin(), dump.errors.end(),
                                       [](const DumpError& error) { return !error.fiber_id && !error.tid; });
  if (any_general) {
    out += "errors:\n";
    for (const DumpError& error : dump.errors)
      if (!error.fiber_id && !error.tid) out += "\t" + printable(error.message) + "\n";
  }
  std::size_t general_findings = 0;
  for (const Finding& finding : dump.findings) {
    if (finding.fiber_id) continue;
    if (general_findings++ == 0) out += "findings:\n";
    out += "\t[" + printable(finding.kind) + "] " + printable(finding.message) + "\n";
  }
  flush(out, sink);
}

}  // namespace fiberscope::report
