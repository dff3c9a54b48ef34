#include "cli/check_command.h"

#include <chrono>
#include <thread>

#include "base/arguments.h"
#include "cli/dump_command.h"
#include "report/check_reporter.h"
#include "report/text_reporter.h"
#include "session/check_round.h"

namespace fiberscope::cli {
namespace {

session::CheckTarget check_target(const CheckOptions& options) {
  return {.pid = options.pid,
          .stop = options.stop,
          .core_path = options.core_path,
          .core = {.exe = options.exe_path, .sysroot = options.sysroot}};
}

void print_warnings(const std::vector<std::string>& warnings, std::string& err) {
  for (const std::string& warning : warnings) err += "fiberscope: warning: " + warning + "\n";
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
    "  2  error: bad usage, no such process, no permission to trace it, no usable fiber table\n"
    "  3  partial: parts of the fiber table could not be read (the reasons on stderr); their fibers went unchecked\n";

Result<CheckOptions> parse_check_arguments(const std::vector<std::string>& arguments, bool& help) {
  CheckOptions options;
  std::optional<int> pid;
  help = false;
  Arguments args(arguments, "check");
  while (args.next()) {
    FS_TRY(core_argument, args.core_option(options.core_path, options.exe_path, options.sysroot));
    if (*core_argument) continue;
    if (args.is_help()) {
      help = true;
      return options;
    } else if (args.is("--format")) {
      FS_TRY(value, args.value());
      if (*value == "text") options.format = CheckOptions::Format::text;
      else if (*value == "json") options.format = CheckOptions::Format::json;
      else return fail("unknown format '", *value, "' (text or json)");
    } else if (args.is("--watch")) {
      FS_TRY(seconds, args.number<double>("seconds (0 to 86400)"));
      if (!(*seconds >= 0) || *seconds > 86400)
        return fail("--watch needs seconds (0 to 86400), not '", args.current(), "'");
      options.watch_seconds = *seconds;
    } else if (args.is("--rounds")) {
      FS_TRY(rounds, args.number<unsigned>("a number of snapshots >= 2"));
      if (*rounds < 2) return fail("--rounds needs a number of snapshots >= 2, not '", args.current(), "'");
      options.watch_rounds = *rounds;
    } else if (args.is("--no-stop")) {
      options.stop = false;
    } else {
      FS_TRY_DISCARD(args.pid_operand(pid));
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

int run_check(const CheckOptions& options, std::string& out, std::string& err,
              const std::function<void(std::string&, std::string&)>& flush) {
  auto print = [&](const report::CheckReport& round, const std::vector<checks::Finding>& findings, unsigned number) {
    if (options.format == CheckOptions::Format::json) {
      out += report::render_check_json(round, findings, number);
      return;
    }
    out += report::render_check_text(round, findings, options.watch_seconds.has_value());
    print_warnings(round.warnings, err);
  };
  const session::CheckTarget target = check_target(options);
  session::ModuleCache modules;  // opened once for every round of --watch
  auto first = session::check_round(target, modules);
  if (!first) {
    err += "fiberscope: " + first.error().message + "\n";
    return kExitError;
  }
  if (!first->table_problem.empty()) {
    // From a core, the warnings usually say why there is no table (truncated, executable of another build).
    if (first->report.from_core) print_warnings(first->report.warnings, err);
    err += "fiberscope: " + first->table_problem + "\n";
    return kExitError;
  }
  if (!options.watch_seconds) {
    print(first->report, first->report.result.findings, 1);
    if (!first->report.result.findings.empty()) return kExitFindings;
    // As dump: parts of the table that could not be read make the result partial, never clean.
    for (const std::string& reason : first->unread_chunks)
      err += "fiberscope: fibers left unchecked: " + report::printable(reason) + "\n";
    return first->unread_chunks.empty() ? kExitClean : kExitPartial;
  }

  bool any_persisted = false;
  std::vector<checks::Finding> previous = std::move(first->report.result.findings);
  for (unsigned number = 2; !options.watch_rounds || number <= *options.watch_rounds; ++number) {
    std::this_thread::sleep_for(std::chrono::duration<double>(*options.watch_seconds));
    auto round = session::check_round(target, modules);
    if (!round) {
      err += "fiberscope: " + round.error().message + "\n";
      if (flush) flush(out, err);
      return kExitError;
    }
    std::vector<checks::Finding> persisting = session::persistent_findings(previous, round->report.result.findings);
    any_persisted |= !persisting.empty();
    print(round->report, persisting, number);
    if (flush) flush(out, err);
    previous = std::move(round->report.result.findings);
  }
  return any_persisted ? kExitFindings : kExitClean;
}

}  // namespace fiberscope::cli
