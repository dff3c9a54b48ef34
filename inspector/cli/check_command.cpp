#include "cli/check_command.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "base/hex.h"
#include "cli/dump_command.h"
#include "report/json_writer.h"
#include "session/inspection.h"

namespace fiberscope::cli {
namespace {

// One round: one snapshot, checked after the target was released.
struct Round {
  int pid = 0;
  std::string exe;
  bool from_core = false;
  bool target_stopped = true;
  std::optional<double> pause_ms;
  std::string table_problem;  // no fiber table: nothing to check
  checks::CheckResult result;
  std::vector<std::string> warnings;
  std::vector<const fibers::FiberRecord*> fibers;  // by id, for headers
  std::optional<fibers::FiberTable> table;
};

Result<Round> take_round(const CheckOptions& options, session::ModuleCache& cache) {
  auto inspection = options.core_path
                        ? session::inspect_core(*options.core_path,
                                                {.exe = options.exe_path, .sysroot = options.sysroot})
                        : session::inspect_live(options.pid, {.stop = options.stop, .cache = &cache});
  if (!inspection) return std::unexpected(inspection.error());
  Round round;
  round.pid = options.core_path ? inspection->snapshot.pid : options.pid;
  round.from_core = options.core_path.has_value();
  round.exe = inspection->snapshot.exe_path;
  round.target_stopped = inspection->snapshot.target_was_stopped;
  round.pause_ms = inspection->snapshot.pause_ms;
  round.warnings = inspection->warnings;
  // A core's own warnings (truncation, missing or mismatched files) say what the checks could not see.
  if (round.from_core)
    round.warnings.insert(round.warnings.end(), inspection->snapshot.warnings.begin(),
                          inspection->snapshot.warnings.end());
  if (inspection->table_error) round.table_problem = inspection->table_error->message;
  else if (!inspection->table) round.table_problem = "no fiber table found: nothing to check";
  round.result = session::run_checks(*inspection);
  round.table = std::move(inspection->table);
  return round;
}

std::string fiber_header(const Round& round, std::uint64_t fiber_id, const std::string& fallback_name) {
  std::string header = "fiber " + std::to_string(fiber_id) + " \"" + fallback_name + "\"";
  if (round.table)
    if (const fibers::FiberRecord* fiber = round.table->fiber_by_id(fiber_id))
      header += " [" + std::string(fibers::state_name(fiber->state)) + "]";
  return header + ":\n";
}

std::string render_text(const Round& round, const std::vector<checks::Finding>& findings, bool watching) {
  std::string out = "pid " + std::to_string(round.pid) + " " + round.exe + ": " +
                    std::to_string(round.result.fibers_checked) + " fibers in syscalls or foreign calls checked, " +
                    std::to_string(findings.size()) + (findings.size() == 1 ? " finding" : " findings");
  if (watching) out += " persisting across two snapshots";
  if (round.pause_ms) {
    char pause[32];
    std::snprintf(pause, sizeof pause, "%.1f", *round.pause_ms);
    out += std::string(", paused ") + pause + " ms";
  } else if (!round.target_stopped) {
    out += ", not stopped (--no-stop)";
  } else if (round.from_core) {
    out += ", core file";
  }
  out += "\n";
  // Findings under their fiber, in fiber order.
  std::vector<const checks::Finding*> ordered;
  for (const checks::Finding& finding : findings) ordered.push_back(&finding);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto* a, const auto* b) { return a->fiber_id < b->fiber_id; });
  std::optional<std::uint64_t> current;
  for (const checks::Finding* finding : ordered) {
    if (finding->fiber_id != current) {
      out += "\n" + fiber_header(round, finding->fiber_id, finding->fiber_name);
      current = finding->fiber_id;
    }
    out += "\tfinding [" + std::string(checks::finding_kind_name(finding->kind)) + "]";
    if (finding->rule)
      out += " rule " + std::to_string(static_cast<int>(*finding->rule)) + " (" +
             std::string(checks::rule_name(*finding->rule)) + ")";
    if (!finding->frame.empty()) out += " in " + finding->frame;
    out += ": " + finding->summary + "\n";
    for (const std::string& line : checks::evidence_lines(*finding)) out += "\t\t" + line + "\n";
    out += "\t\t" + finding->explanation + "\n";
  }
  if (!round.result.transients.empty()) {
    out += "\ntransient (caught mid-update, not judged):\n";
    for (const checks::Transient& transient : round.result.transients)
      out += "\tfiber " + std::to_string(transient.fiber_id) + ": " + transient.reason + "\n";
  }
  if (!round.result.errors.empty()) {
    out += "\nerrors:\n";
    for (const std::string& error : round.result.errors) out += "\t" + error + "\n";
  }
  return out;
}

void write_point(report::JsonWriter& json, const std::optional<checks::CodePoint>& point) {
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

void write_address(report::JsonWriter& json, const std::optional<std::uint64_t>& address) {
  address ? json.value(hex(*address)) : json.null();
}

std::string render_json(const Round& round, const std::vector<checks::Finding>& findings, unsigned round_number) {
  report::JsonWriter json;
  json.begin_object();
  json.key("schema_version"), json.value(1);
  json.key("command"), json.value("check");
  json.key("pid"), json.value(round.pid);
  json.key("exe"), json.value(round.exe);
  json.key("round"), json.value(round_number);
  json.key("target_stopped"), json.value(round.target_stopped);
  json.key("pause_ms");
  round.pause_ms ? json.value(*round.pause_ms) : json.null();
  json.key("fibers_checked"), json.value(static_cast<std::uint64_t>(round.result.fibers_checked));
  json.key("findings");
  json.begin_array();
  for (const checks::Finding& finding : findings) {
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
    json.key("evidence");
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
    json.key("variable");
    if (finding.variable) {
      const checks::VariableEvidence& v = *finding.variable;
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
    } else {
      json.null();
    }
    json.key("details");
    json.begin_array();
    for (const std::string& detail : finding.details) json.value(detail);
    json.end_array();
    json.end_object();
    json.end_object();
  }
  json.end_array();
  json.key("transients");
  json.begin_array();
  for (const checks::Transient& transient : round.result.transients) {
    json.begin_object();
    json.key("fiber"), json.value(transient.fiber_id);
    json.key("reason"), json.value(transient.reason);
    json.end_object();
  }
  json.end_array();
  json.key("errors");
  json.begin_array();
  for (const std::string& error : round.result.errors) json.value(error);
  json.end_array();
  json.key("warnings");
  json.begin_array();
  for (const std::string& warning : round.warnings) json.value(warning);
  json.end_array();
  json.end_object();
  return json.str() + "\n";
}

}  // namespace

const char* const kCheckHelp =
    "usage: fiberscope check PID [options]\n"
    "       fiberscope check --core FILE [--exe PATH] [--sysroot DIR] [options]\n"
    "\n"
    "Checks the fiber runtime's bookkeeping from outside, on one snapshot of process PID (the target is stopped\n"
    "only while it is copied; the checks run after it was released), and prints each finding under the fiber\n"
    "it concerns with its evidence.\n"
    "\n"
    "checks (for every fiber in a syscall or a foreign call):\n"
    "  invalid-syscall-frame   the saved syscall frame (syscall_pc, syscall_sp) is not where the fiber really is\n"
    "                          (Go issue 7978):\n"
    "      rule 1 outside-stack     syscall_sp is outside the fiber's stack bounds\n"
    "      rule 2 below-live-frame  syscall_sp lies below the fiber's deepest live frame: the frames in between\n"
    "                               were popped (a callback returned after saving them); the popped region is shown\n"
    "      rule 3 names-no-frame    syscall_pc is not in the function owning the frame at syscall_sp, its CFA\n"
    "                               differs from the real frame's, or the unwind from it does not reach the fiber's\n"
    "                               bottom frame or disagrees with the unwind from the real resume point\n"
    "  stale-live-argument     in a foreign call, a variable of the calling frame whose DWARF location covers the\n"
    "                          saved pc X but not the real resume pc Y, or covers both in different places (Go\n"
    "                          issue 17785), with both locations and the value a reader at X would see; also\n"
    "                          pointer-valued live arguments into a popped stack region or a finished fiber's stack\n"
    "\n"
    "options:\n"
    "  --format text|json  output format (default text); json: docs/json-schema.md (\"check\" section)\n"
    "  --watch SECONDS     repeat every SECONDS and report a finding only when it persists across two\n"
    "                      consecutive snapshots (same fiber, kind, rule and frame)\n"
    "  --rounds N          with --watch: stop after N snapshots (default: until interrupted)\n"
    "  --no-stop           never stop the target; records caught mid-update are listed as transient\n"
    "  --core FILE         check a core file instead of a process (the same findings as live)\n"
    "  --exe PATH          with --core: the executable (default: the one the core names)\n"
    "  --sysroot DIR       with --core: prefix for every file the core names\n"
    "  -h, --help          this help\n"
    "\n"
    "A record caught mid-update (seqlock in transition, or torn with --no-stop) or a fiber caught between a\n"
    "stack switch and its record is listed as transient, never as a finding.\n"
    "\n"
    "exit codes:\n"
    "  0  clean: no findings\n"
    "  1  findings were reported (with --watch: at least one persisted)\n"
    "  2  error: bad usage, no such process, no permission to trace it, no usable fiber table\n";

Result<CheckOptions> parse_check_arguments(const std::vector<std::string>& arguments, bool& help) {
  CheckOptions options;
  std::optional<int> pid;
  help = false;
  Arguments args(arguments, "check");
  while (args.next()) {
    auto core_argument = args.core_option(options.core_path, options.exe_path, options.sysroot);
    if (!core_argument) return std::unexpected(core_argument.error());
    if (*core_argument) continue;
    if (args.is_help()) {
      help = true;
      return options;
    } else if (args.is("--format")) {
      auto value = args.value();
      if (!value) return std::unexpected(value.error());
      if (*value == "text") options.format = CheckOptions::Format::text;
      else if (*value == "json") options.format = CheckOptions::Format::json;
      else return fail("unknown format '", *value, "' (text or json)");
    } else if (args.is("--watch")) {
      auto seconds = args.number<double>("seconds (0 to 86400)");
      if (!seconds) return std::unexpected(seconds.error());
      if (!(*seconds >= 0) || *seconds > 86400)
        return fail("--watch needs seconds (0 to 86400), not '", args.current(), "'");
      options.watch_seconds = *seconds;
    } else if (args.is("--rounds")) {
      auto rounds = args.number<unsigned>("a number of snapshots >= 2");
      if (!rounds) return std::unexpected(rounds.error());
      if (*rounds < 2) return fail("--rounds needs a number of snapshots >= 2, not '", args.current(), "'");
      options.watch_rounds = *rounds;
    } else if (args.is("--no-stop")) {
      options.stop = false;
    } else if (auto operand = args.pid_operand(pid); !operand) {
      return std::unexpected(operand.error());
    }
  }
  if (options.core_path) {
    if (pid) return fail("give a PID or --core FILE, not both");
    if (options.watch_seconds) return fail("--watch needs a live process: a core file does not change");
    if (!options.stop) return fail("--no-stop is for live processes, not --core");
    return options;
  }
  if (!options.exe_path.empty() || !options.sysroot.empty()) return fail("--exe and --sysroot go with --core FILE");
  if (!pid) return fail("missing PID (usage: fiberscope check PID [options])");
  options.pid = *pid;
  if (options.watch_rounds && !options.watch_seconds) return fail("--rounds only makes sense with --watch");
  return options;
}

std::vector<checks::Finding> persistent_findings(const std::vector<checks::Finding>& previous,
                                                 const std::vector<checks::Finding>& current) {
  std::set<std::string> seen;
  for (const checks::Finding& finding : previous) seen.insert(finding.identity());
  std::vector<checks::Finding> persisting;
  for (const checks::Finding& finding : current)
    if (seen.contains(finding.identity())) persisting.push_back(finding);
  return persisting;
}

int run_check(const CheckOptions& options, std::string& out, std::string& err,
              const std::function<void(std::string&, std::string&)>& flush) {
  auto render = [&](const Round& round, const std::vector<checks::Finding>& findings, unsigned number) {
    out += options.format == CheckOptions::Format::json ? render_json(round, findings, number)
                                                        : render_text(round, findings,
                                                                      options.watch_seconds.has_value());
    if (options.format == CheckOptions::Format::text)
      for (const std::string& warning : round.warnings) err += "fiberscope: warning: " + warning + "\n";
  };
  session::ModuleCache modules;  // opened once for every round of --watch
  auto first = take_round(options, modules);
  if (!first) {
    err += "fiberscope: " + first.error().message + "\n";
    return kExitError;
  }
  if (!first->table_problem.empty()) {
    // From a core, the warnings usually say why there is no table (truncated, executable of another build).
    if (first->from_core)
      for (const std::string& warning : first->warnings) err += "fiberscope: warning: " + warning + "\n";
    err += "fiberscope: " + first->table_problem + "\n";
    return kExitError;
  }
  if (!options.watch_seconds) {
    render(*first, first->result.findings, 1);
    return first->result.findings.empty() ? kExitClean : kExitFindings;
  }

  bool any_persisted = false;
  std::vector<checks::Finding> previous = std::move(first->result.findings);
  for (unsigned number = 2; !options.watch_rounds || number <= *options.watch_rounds; ++number) {
    std::this_thread::sleep_for(std::chrono::duration<double>(*options.watch_seconds));
    auto round = take_round(options, modules);
    if (!round) {
      err += "fiberscope: " + round.error().message + "\n";
      if (flush) flush(out, err);
      return kExitError;
    }
    std::vector<checks::Finding> persisting = persistent_findings(previous, round->result.findings);
    any_persisted |= !persisting.empty();
    render(*round, persisting, number);
    if (flush) flush(out, err);
    previous = std::move(round->result.findings);
  }
  return any_persisted ? kExitFindings : kExitClean;
}

}  // namespace fiberscope::cli
