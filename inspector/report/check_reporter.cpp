#include "report/check_reporter.h"

#include <algorithm>
#include <cstdio>

#include "base/hex.h"
#include "report/json_writer.h"
#include "report/text_reporter.h"

namespace fiberscope::report {
namespace {

std::string fiber_header(const CheckReport& report, std::uint64_t fiber_id, const std::string& fallback_name) {
  std::string header = report.fiber_noun + " " + std::to_string(fiber_id);
  if (report.fibers_named) header += " \"" + printable(fallback_name) + "\"";
  if (auto state = report.fiber_states.find(fiber_id); state != report.fiber_states.end())
    header += " [" + state->second + "]";
  return header + ":\n";
}

std::string summary_line(const CheckReport& report, std::size_t finding_count, bool persisting) {
  std::string out = "pid " + std::to_string(report.pid) + " " + printable(report.exe) + ": " +
                    std::to_string(report.result.fibers_checked) + " " + report.fiber_noun +
                    "s in syscalls or foreign calls checked, " +
                    std::to_string(finding_count) + (finding_count == 1 ? " finding" : " findings");
  if (persisting) out += " persisting across two snapshots";
  if (report.pause_ms) {
    char pause[32];
    std::snprintf(pause, sizeof pause, "%.1f", *report.pause_ms);
    out += std::string(", paused ") + pause + " ms";
  } else if (!report.target_stopped) {
    out += ", not stopped (--no-stop)";
  } else if (report.from_core) {
    out += ", core file";
  }
  return out + "\n";
}

void write_point(JsonWriter& json, const std::optional<checks::CodePoint>& point) {
  if (!point) return json.null();
  json.begin_object();
  json.key("pc"), json.value(hex(point->pc));
  json.key("function");
  point->function.empty() ? json.null() : json.value(point->function);
  json.key("file");
  point->file.empty() ? json.null() : json.value(point->file);
  json.key("line");
  point->line == 0 ? json.null() : json.value(point->line);
  json.end_object();
}

void write_address(JsonWriter& json, const std::optional<std::uint64_t>& address) {
  address ? json.value(hex(*address)) : json.null();
}

void write_variable(JsonWriter& json, const std::optional<checks::VariableEvidence>& variable) {
  if (!variable) return json.null();
  const checks::VariableEvidence& v = *variable;
  json.begin_object();
  json.key("name"), json.value(v.name);
  json.key("type"), json.value(v.type_name);
  json.key("is_parameter"), json.value(v.is_parameter);
  json.key("location_at_x"), json.value(v.location_at_x);
  json.key("location_at_y"), json.value(v.location_at_y);
  json.key("value_at_x");
  v.value_status.empty() ? json.value(v.value_at_x) : json.null();
  json.key("value_status");
  v.value_status.empty() ? json.null() : json.value(v.value_status);
  json.key("pointer_problem");
  v.pointer_problem.empty() ? json.null() : json.value(v.pointer_problem);
  json.end_object();
}

void write_evidence(JsonWriter& json, const checks::Finding& finding) {
  json.begin_object();
  json.key("syscall_pc"), json.value(hex(finding.syscall_pc));
  json.key("syscall_sp"), json.value(hex(finding.syscall_sp));
  json.key("stack_lo"), json.value(finding.stack.start.to_string());
  json.key("stack_hi"), json.value(finding.stack.end.to_string());
  json.key("deepest_live_sp"), write_address(json, finding.deepest_live_sp);
  json.key("popped");
  if (finding.popped) {
    json.begin_object();
    json.key("lo"), json.value(finding.popped->start.to_string());
    json.key("hi"), json.value(finding.popped->end.to_string());
    json.end_object();
  } else {
    json.null();
  }
  json.key("x"), write_point(json, finding.x);
  json.key("y"), write_point(json, finding.y);
  json.key("cfa_at_x"), write_address(json, finding.cfa_at_x);
  json.key("cfa_at_y"), write_address(json, finding.cfa_at_y);
  json.key("variable"), write_variable(json, finding.variable);
  json.key("details");
  json.begin_array();
  for (const std::string& detail : finding.details) json.value(detail);
  json.end_array();
  json.end_object();
}

void write_finding(JsonWriter& json, const checks::Finding& finding) {
  json.begin_object();
  json.key("kind"), json.value(checks::finding_kind_name(finding.kind));
  json.key("rule");
  finding.rule ? json.value(static_cast<int>(*finding.rule)) : json.null();
  json.key("rule_name");
  finding.rule ? json.value(checks::rule_name(*finding.rule)) : json.null();
  json.key("fiber"), json.value(finding.fiber_id);
  json.key("fiber_name"), json.value(finding.fiber_name);
  json.key("frame");
  finding.frame.empty() ? json.null() : json.value(finding.frame);
  json.key("message"), json.value(finding.summary);
  json.key("explanation"), json.value(finding.explanation);
  json.key("evidence"), write_evidence(json, finding);
  json.end_object();
}

void write_strings(JsonWriter& json, const std::vector<std::string>& strings) {
  json.begin_array();
  for (const std::string& text : strings) json.value(text);
  json.end_array();
}

// "rule 2 (below-live-frame)".
std::string rule_text(checks::SyscallFrameRule rule) {
  return "rule " + std::to_string(static_cast<int>(rule)) + " (" + std::string(checks::rule_name(rule)) + ")";
}

}  // namespace

std::string render_check_text(const CheckReport& report, const std::vector<checks::Finding>& findings,
                              bool persisting) {
  std::string out = summary_line(report, findings.size(), persisting);
  // Findings under their fiber, in fiber order.
  std::vector<const checks::Finding*> ordered;
  for (const checks::Finding& finding : findings) ordered.push_back(&finding);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto* a, const auto* b) { return a->fiber_id < b->fiber_id; });
  std::optional<std::uint64_t> current;
  for (const checks::Finding* finding : ordered) {
    if (finding->fiber_id != current) {
      out += "\n" + fiber_header(report, finding->fiber_id, finding->fiber_name);
      current = finding->fiber_id;
    }
    out += "\tfinding [" + std::string(checks::finding_kind_name(finding->kind)) + "]";
    if (finding->rule) out += " " + rule_text(*finding->rule);
    // Names, values and addresses come from the target: shown printable, as the dump's text reporter does.
    if (!finding->frame.empty()) out += " in " + printable(finding->frame);
    out += ": " + printable(finding->summary) + "\n";
    for (const std::string& line : checks::evidence_lines(*finding)) out += "\t\t" + printable(line) + "\n";
    out += "\t\t" + finding->explanation + "\n";
  }
  if (!report.result.transients.empty()) {
    out += "\ntransient (caught mid-update, not judged):\n";
    for (const checks::Transient& transient : report.result.transients)
      out += "\t" + report.fiber_noun + " " + std::to_string(transient.fiber_id) + ": " + transient.reason + "\n";
  }
  if (!report.result.errors.empty()) {
    out += "\nerrors:\n";
    for (const std::string& error : report.result.errors) out += "\t" + printable(error) + "\n";
  }
  return out;
}

std::string render_check_json(const CheckReport& report, const std::vector<checks::Finding>& findings,
                              unsigned round_number) {
  JsonWriter json;
  json.begin_object();
  json.key("schema_version"), json.value(1);
  json.key("command"), json.value("check");
  json.key("pid"), json.value(report.pid);
  json.key("exe"), json.value(report.exe);
  json.key("round"), json.value(round_number);
  json.key("target_stopped"), json.value(report.target_stopped);
  json.key("pause_ms");
  report.pause_ms ? json.value(*report.pause_ms) : json.null();
  json.key("fibers_checked"), json.value(static_cast<std::uint64_t>(report.result.fibers_checked));
  json.key("findings");
  json.begin_array();
  for (const checks::Finding& finding : findings) write_finding(json, finding);
  json.end_array();
  json.key("transients");
  json.begin_array();
  for (const checks::Transient& transient : report.result.transients) {
    json.begin_object();
    json.key("fiber"), json.value(transient.fiber_id);
    json.key("reason"), json.value(transient.reason);
    json.end_object();
  }
  json.end_array();
  json.key("errors"), write_strings(json, report.result.errors);
  json.key("warnings"), write_strings(json, report.warnings);
  json.end_object();
  return json.str() + "\n";
}

Finding dump_finding(const checks::Finding& finding) {
  Finding out;
  out.kind = std::string(checks::finding_kind_name(finding.kind));
  out.fiber_id = finding.fiber_id;
  out.frame = finding.frame;
  out.message = finding.summary;
  if (finding.rule) out.message = rule_text(*finding.rule) + ": " + out.message;
  for (const std::string& line : checks::evidence_lines(finding)) out.message += "; " + line;
  out.message += ". " + finding.explanation;
  return out;
}

}  // namespace fiberscope::report
