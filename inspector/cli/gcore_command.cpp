#include "cli/gcore_command.h"

#include "base/arguments.h"

#include <cstdio>
#include <optional>

#include "cli/dump_command.h"
#include "fibers/capture_plan.h"
#include "fibers/fiber_stacks.h"
#include "fibers/fiber_table.h"
#include "session/inspection.h"
#include "session/module_map.h"
#include "target/core_writer.h"
#include "target/live_capture.h"
#include "target/proc_files.h"

namespace fiberscope::cli {
namespace {

// /proc/PID/auxv is a few hundred bytes; anything past this is not an auxiliary vector.
constexpr std::uint64_t kMaxAuxvBytes = 64 * 1024;
constexpr std::uint64_t kMaxCmdlineBytes = 4096;

std::string size_text(std::uint64_t bytes) {
  char text[32];
  if (bytes >= (std::uint64_t{1} << 20))
    std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / (1 << 20));
  else std::snprintf(text, sizeof text, "%.1f kB", static_cast<double>(bytes) / 1024);
  return text;
}

// The registers of every parked fiber, as threads with synthetic tids. Fibers running on a worker (or in a
// syscall on it) are already in the core as that worker's thread.
std::vector<target::ExtraThread> fibers_as_threads(const target::Memory& live, target::RemoteAddress root,
                                                   const std::vector<target::ThreadState>& threads,
                                                   std::vector<std::string>& warnings) {
  std::vector<target::ExtraThread> extra;
  auto table = fibers::read_fiber_table(live, root, {.target_stopped = true});
  if (!table) {
    warnings.push_back("fibers not written as threads: " + table.error().message);
    return extra;
  }
  for (const fibers::FiberRecord& fiber : table->fibers) {
    if (!fiber.is_live()) continue;
    auto start = fibers::starting_registers(fiber, *table, threads);
    if (!start || start->source != fibers::FiberStart::Source::saved_context) continue;
    extra.push_back({session::kFiberThreadTidBase + static_cast<int>(extra.size()), start->registers});
  }
  return extra;
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
  auto error_exit = [&](const std::string& message) {
    err += "fiberscope: " + message + "\n";
    return kExitError;
  };
  const int pid = options.pid;
  // Everything that needs no stop is read before it: the memory map (printing it takes the kernel milliseconds
  // per thousand fiber stacks, capture_live leaves it out of the pause), auxv, the command line and, for
  // --fibers-as-threads, the modules that locate the fiber table.
  std::vector<std::string> warnings;
  auto mappings = target::read_maps(pid, &warnings);
  if (!mappings) {
    const ErrorCode code = mappings.error().code;
    if ((code == ErrorCode::no_such_process || code == ErrorCode::unspecified) && !target::exe_path(pid))
      return error_exit("no process with pid " + std::to_string(pid));
    return error_exit(mappings.error().message);
  }
  const std::string exe = target::exe_path(pid).value_or("");
  target::CoreWriteOptions write_options;
  if (auto auxv = target::read_proc_file("/proc/" + std::to_string(pid) + "/auxv", kMaxAuxvBytes)) {
    const auto* bytes = reinterpret_cast<const std::byte*>(auxv->data());
    write_options.auxv.assign(bytes, bytes + auxv->size());
  } else {
    warnings.push_back("no auxiliary vector (" + auxv.error().message + "): readers must be told the executable");
  }
  if (auto cmdline = target::read_proc_file("/proc/" + std::to_string(pid) + "/cmdline", kMaxCmdlineBytes)) {
    for (char& c : *cmdline) if (c == '\0') c = ' ';
    while (!cmdline->empty() && cmdline->back() == ' ') cmdline->pop_back();
    write_options.command_line = std::move(*cmdline);
  }
  std::optional<target::RemoteAddress> root;
  if (options.fibers_as_threads) {
    session::ModuleMap modules(*mappings, exe);
    auto located = fibers::locate_debug_root(modules.symbols());
    if (located) root = *located;
    else warnings.push_back("fibers not written as threads: " + located.error().message);
  }

  std::optional<Result<target::CoreWriteSummary>> written;
  std::size_t fiber_threads = 0;
  auto planner = [&](const target::Memory& live, const std::vector<target::ThreadState>& threads) {
    target::Snapshot stopped;
    stopped.pid = pid;
    stopped.exe_path = exe;
    stopped.threads = threads;
    // [vvar] pages are the kernel's, unreadable through process_vm_readv and meaningless in a core: gdb's gcore
    // leaves them out too.
    for (const target::Mapping& mapping : *mappings)
      if (!mapping.path.starts_with("[vvar")) stopped.mappings.push_back(mapping);
    if (root) {
      write_options.extra_threads = fibers_as_threads(live, *root, threads, warnings);
      fiber_threads = write_options.extra_threads.size();
    }
    written = target::write_core(stopped, live, write_options, options.output_path);
    return std::vector<target::AddressRange>{};  // nothing to copy: the core was written from the stopped target
  };
  auto capture = target::capture_live(pid, {.stop = true, .mappings = &*mappings}, planner);
  if (!capture) return error_exit(capture.error().message);
  if (!written) return error_exit("the target could not be stopped to write its core");
  if (!*written) return error_exit(written->error().message);

  const target::CoreWriteSummary& summary = **written;
  std::size_t threads_without_registers = 0;
  for (const target::ThreadState& thread : capture->threads) threads_without_registers += !thread.registers;
  out += "wrote " + options.output_path + ": " + size_text(summary.file_bytes) + " (" +
         size_text(summary.written_bytes) + " of data, the rest holes; " + std::to_string(capture->threads.size()) +
         (capture->threads.size() == 1 ? " thread" : " threads");
  if (options.fibers_as_threads)
    out += ", " + std::to_string(fiber_threads) + (fiber_threads == 1 ? " fiber" : " fibers") + " as threads";
  char pause[48] = "pause unknown";
  if (capture->pause_ms) std::snprintf(pause, sizeof pause, "paused %.1f ms", *capture->pause_ms);
  out += "), " + std::string(pause) + "\n";
  for (const std::string& warning : capture->warnings) err += "fiberscope: warning: " + warning + "\n";
  for (const std::string& warning : warnings) err += "fiberscope: warning: " + warning + "\n";
  for (const std::string& warning : summary.warnings) err += "fiberscope: warning: " + warning + "\n";
  return summary.unreadable_bytes > 0 || threads_without_registers > 0 ? kExitPartial : kExitClean;
}

}  // namespace fiberscope::cli
