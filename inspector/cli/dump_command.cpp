#include "cli/dump_command.h"

#include <ostream>
#include <sstream>

#include "report/folded_reporter.h"
#include "report/json_reporter.h"
#include "session/inspection.h"

namespace fiberscope::cli {

const char* const kDumpHelp =
    "usage: fiberscope dump PID [options]\n"
    "       fiberscope dump --core FILE [--exe PATH] [--sysroot DIR] [options]\n"
    "\n"
    "Prints every fiber and every thread of process PID with symbolized stacks: for each fiber its id, name,\n"
    "state or wait reason, time in that state and worker thread, one line per frame (function and arguments,\n"
    "then file:line and the stack the frame lives on: fiber or system), and where it was created. Threads that\n"
    "run no fiber are listed with their own stacks. A process not built on the fiberscope runtime still gets all\n"
    "its thread stacks. The target is stopped only while its registers, fiber table and stacks are copied (the\n"
    "pause is printed), then released before anything is unwound. To keep that pause short, the stacks of\n"
    "parked fibers are copied just before the stop, and inside it only the fibers that ran meanwhile are copied\n"
    "again (the fiber's seqlock says whether it did): every frame shown is the fiber's frame at the stop, but a\n"
    "local that another fiber writes into a parked fiber's stack (a wait node, a value handed over) may show an\n"
    "older value. --exact-stacks copies every stack inside the pause instead.\n"
    "\n"
    "options:\n"
    "  --format text|json|folded  output format (default text). json: schema in docs/json-schema.md;\n"
    "                             folded: 'a;b;c N' lines for flame graph tools\n"
    "  --group                    collapse fibers with identical stacks into one entry (text; default past 100\n"
    "                             fibers)\n"
    "  --no-group                 never collapse\n"
    "  --no-stop                  never stop the target: read it while it runs; records changing under the\n"
    "                             reader are marked torn, registers of running threads may be missing\n"
    "  --exact-stacks             copy every stack while the target is stopped (a longer pause: about 1 ms per\n"
    "                             1000 parked fibers), so that every byte of every stack is from the stop\n"
    "  --fiber ID                 only the fiber with this id\n"
    "  --depth N                  at most N frames per stack (default 1024)\n"
    "  --core FILE                dump a core file instead of a process: the same output; the thread that crashed\n"
    "                             comes first with its signal, and the fiber it ran is marked crashed\n"
    "  --exe PATH                 with --core: the executable (default: the one the core names)\n"
    "  --sysroot DIR              with --core: prefix for every file the core names (libraries from another host)\n"
    "  -h, --help                 this help\n"
    "\n"
    "exit codes:\n"
    "  0  everything was dumped, no findings\n"
    "  1  findings were reported\n"
    "  2  error: bad usage, no such process, no permission to trace it (see the message for what to change),\n"
    "     the target exited during the attach, or its fiber table uses another debug ABI version\n"
    "  3  partial: the dump was printed but some records or stacks could not be read (listed under errors), or\n"
    "     the core is truncated or lacks files it relies on (see the warnings)\n"
    "\n"
    "warnings (the dump still prints): no fiber table found (not built on fiberscope runtime?); no DWARF in a\n"
    "binary (functions named from symbols, no lines or arguments); from a core: truncated core, a file the core\n"
    "names is missing or has another build-id (its code is not read; try --exe or --sysroot).\n";

Result<DumpOptions> parse_dump_arguments(const std::vector<std::string>& arguments, bool& help) {
  DumpOptions options;
  std::optional<int> pid;
  help = false;
  Arguments args(arguments, "dump");
  while (args.next()) {
    FS_TRY(core_argument, args.core_option(options.core_path, options.exe_path, options.sysroot));
    if (*core_argument) continue;
    if (args.is_help()) {
      help = true;
      return options;
    } else if (args.is("--format")) {
      FS_TRY(value, args.value());
      if (*value == "text") options.format = DumpOptions::Format::text;
      else if (*value == "json") options.format = DumpOptions::Format::json;
      else if (*value == "folded") options.format = DumpOptions::Format::folded;
      else return fail("unknown format '", *value, "' (text, json or folded)");
    } else if (args.is("--group")) {
      options.grouping = report::TextOptions::Grouping::on;
    } else if (args.is("--no-group")) {
      options.grouping = report::TextOptions::Grouping::off;
    } else if (args.is("--no-stop")) {
      options.stop = false;
    } else if (args.is("--exact-stacks")) {
      options.exact_stacks = true;
    } else if (args.is("--fiber")) {
      FS_TRY(id, args.number<std::uint64_t>("a fiber id (a positive number)"));
      if (*id == 0) return fail("--fiber needs a fiber id (a positive number), not '0'");
      options.only_fiber = *id;
    } else if (args.is("--depth")) {
      FS_TRY(depth, args.number<std::size_t>("a positive number"));
      if (*depth == 0) return fail("--depth needs a positive number, not '0'");
      options.max_depth = *depth;
    } else {
      FS_TRY_DISCARD(args.pid_operand(pid));
    }
  }
  if (options.core_path) {
    if (pid) return fail("give a PID or --core FILE, not both");
    if (!options.stop) return fail("--no-stop is for live processes, not --core");
    if (options.exact_stacks) return fail("--exact-stacks is for live processes, not --core");
    return options;
  }
  if (!options.stop && options.exact_stacks)
    return fail("--exact-stacks and --no-stop exclude each other (--no-stop never stops the target)");
  if (!options.exe_path.empty() || !options.sysroot.empty()) return fail("--exe and --sysroot go with --core FILE");
  if (!pid) return fail("missing PID (usage: fiberscope dump PID [options])");
  options.pid = *pid;
  return options;
}

int run_dump(const DumpOptions& options, std::ostream& out, std::string& err) {
  auto error_exit = [&](const std::string& message) {
    err += "fiberscope: " + message + "\n";
    return kExitError;
  };
  auto inspection = options.core_path ? session::inspect_core(*options.core_path,
                                                              {.exe = options.exe_path, .sysroot = options.sysroot})
                                      : session::inspect_live(options.pid,
                                                              {.stop = options.stop,
                                                               .exact_stacks = options.exact_stacks});
  if (!inspection) return error_exit(inspection.error().message);
  // The dump is built without fiber arguments (fibers parked at the same place then share their frames), and the
  // reporters get each fiber's arguments just before they print it: arguments for every fiber at once are
  // gigabytes at 100k fibers, and grouped text and folded stacks print them for few fibers or none.
  const session::BuildOptions build{
      .only_fiber = options.only_fiber, .max_depth = options.max_depth, .fiber_args = false};
  report::Dump dump = session::build_dump(*inspection, build);
  session::FiberArgsReader args_reader(inspection->snapshot, inspection->table ? &*inspection->table : nullptr,
                                       *inspection->modules, build);
  const report::FiberStackSource stack_with_args = [&args_reader](const report::Fiber& fiber) {
    std::optional<report::Stack> stack = args_reader.stack_with_args(fiber.id);
    return stack ? std::move(*stack) : fiber.stack;
  };
  const std::optional<Error>& table_error = inspection->table_error;

  switch (options.format) {
    case DumpOptions::Format::text:
      report::write_text(dump, out, {.grouping = options.grouping}, stack_with_args);
      break;
    case DumpOptions::Format::json: report::write_json(dump, out, stack_with_args); break;
    case DumpOptions::Format::folded:
      out << report::render_folded(dump);
      if (dump.crash) err += "fiberscope: warning: " + report::printable(report::crash_summary(dump)) + "\n";
      for (const std::string& warning : dump.warnings) err += "fiberscope: warning: " + warning + "\n";
      break;
  }
  if (table_error) return error_exit(table_error->message);
  if (options.only_fiber && dump.fibers.empty()) return error_exit("no live fiber with id " +
                                                                   std::to_string(*options.only_fiber));
  if (!dump.findings.empty()) return kExitFindings;
  if (!dump.errors.empty()) return kExitPartial;
  // A core's warnings (truncated, a file missing or of another build) mean some memory or code was not read.
  if (options.core_path && !inspection->snapshot.warnings.empty()) return kExitPartial;
  return kExitClean;
}

int run_dump(const DumpOptions& options, std::string& out, std::string& err) {
  std::ostringstream stream;
  const int code = run_dump(options, stream, err);
  out += std::move(stream).str();
  return code;
}

}  // namespace fiberscope::cli
