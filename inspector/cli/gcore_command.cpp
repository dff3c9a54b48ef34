#include "cli/gcore_command.h"

#include <cstdio>
#include <optional>

#include "base/arguments.h"
#include "cli/dump_command.h"
#include "session/core_dump.h"

namespace fiberscope::cli {
namespace {

std::string size_text(std::uint64_t bytes) {
  char text[32];
  if (bytes >= (std::uint64_t{1} << 20))
    std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / (1 << 20));
  else std::snprintf(text, sizeof text, "%.1f kB", static_cast<double>(bytes) / 1024);
  return text;
}

}  // namespace

const char* const kGcoreHelp =
    "usage: fiberscope gcore PID [-o FILE] [--fibers-as-threads]\n"
    "\n"
    "Writes an ELF core file of process PID, stopping it only while the core is written (the pause is printed),\n"
    "then leaves it running. `fiberscope dump --core FILE` and `fiberscope check --core FILE` read it with the\n"
    "same output as live, and so does gdb (`gdb -c FILE EXE`). Like gdb's gcore, the code of mapped files is left\n"
    "to the files on disk (their build-id is kept so readers can tell if they changed); the file is mode 0600 as\n"
    "it holds the process's memory.\n"
    "\n"
    "options:\n"
    "  -o FILE               where to write the core (default core.PID in the current directory)\n"
    "  --fibers-as-threads   also write every parked fiber as an extra thread (its saved registers, thread id\n"
    "                        1073741824 and up), so that gdb's `thread apply all bt` shows every fiber's stack\n"
    "  -h, --help            this help\n"
    "\n"
    "exit codes:\n"
    "  0  written\n"
    "  2  error: bad usage, no such process, no permission to trace it, the file could not be written\n"
    "  3  written, but some memory or some threads' registers could not be read (warnings say which)\n";

Result<GcoreOptions> parse_gcore_arguments(const std::vector<std::string>& arguments, bool& help) {
  GcoreOptions options;
  std::optional<int> pid;
  help = false;
  Arguments args(arguments, "gcore");
  while (args.next()) {
    if (args.is_help()) {
      help = true;
      return options;
    } else if (args.is("-o")) {
      FS_TRY(path, args.value());
      options.output_path = *path;
    } else if (args.is("--fibers-as-threads")) {
      options.fibers_as_threads = true;
    } else {
      FS_TRY_DISCARD(args.pid_operand(pid));
    }
  }
  if (!pid) return fail("missing PID (usage: fiberscope gcore PID [-o FILE] [--fibers-as-threads])");
  options.pid = *pid;
  if (options.output_path.empty()) options.output_path = "core." + std::to_string(options.pid);
  return options;
}

int run_gcore(const GcoreOptions& options, std::string& out, std::string& err) {
  auto written = session::write_core_dump(
      options.pid, {.output_path = options.output_path, .fibers_as_threads = options.fibers_as_threads});
  if (!written) {
    err += "fiberscope: " + written.error().message + "\n";
    return kExitError;
  }
  const target::CoreWriteSummary& summary = written->summary;
  out += "wrote " + options.output_path + ": " + size_text(summary.file_bytes) + " (" +
         size_text(summary.written_bytes) + " of data, the rest holes; " + std::to_string(written->threads) +
         (written->threads == 1 ? " thread" : " threads");
  if (options.fibers_as_threads)
    out += ", " + std::to_string(written->fiber_threads) + (written->fiber_threads == 1 ? " fiber" : " fibers") +
           " as threads";
  char pause[48] = "pause unknown";
  if (written->pause_ms) std::snprintf(pause, sizeof pause, "paused %.1f ms", *written->pause_ms);
  out += "), " + std::string(pause) + "\n";
  for (const std::string& warning : written->warnings) err += "fiberscope: warning: " + warning + "\n";
  return summary.unreadable_bytes > 0 || written->threads_without_registers > 0 ? kExitPartial : kExitClean;
}

}  // namespace fiberscope::cli
