#include "session/core_dump.h"

#include "fibers/capture_plan.h"
#include "fibers/fiber_stacks.h"
#include "fibers/fiber_table.h"
#include "session/inspection.h"
#include "session/module_map.h"
#include "target/live_capture.h"
#include "target/proc_files.h"

namespace fiberscope::session {
namespace {

// /proc/PID/auxv is a few hundred bytes; anything past this is not an auxiliary vector.
constexpr std::uint64_t kMaxAuxvBytes = 64 * 1024;
constexpr std::uint64_t kMaxCmdlineBytes = 4096;

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
    extra.push_back({kFiberThreadTidBase + static_cast<int>(extra.size()), start->registers});
  }
  return extra;
}

// What the core's notes take from /proc without a stop: the auxiliary vector and the command line.
target::CoreWriteOptions process_notes(int pid, std::vector<std::string>& warnings) {
  target::CoreWriteOptions notes;
  if (auto auxv = target::read_proc_file("/proc/" + std::to_string(pid) + "/auxv", kMaxAuxvBytes)) {
    const auto* bytes = reinterpret_cast<const std::byte*>(auxv->data());
    notes.auxv.assign(bytes, bytes + auxv->size());
  } else {
    warnings.push_back("no auxiliary vector (" + auxv.error().message + "): readers must be told the executable");
  }
  if (auto cmdline = target::read_proc_file("/proc/" + std::to_string(pid) + "/cmdline", kMaxCmdlineBytes)) {
    for (char& c : *cmdline)
      if (c == '\0') c = ' ';
    while (!cmdline->empty() && cmdline->back() == ' ') cmdline->pop_back();
    notes.command_line = std::move(*cmdline);
  }
  return notes;
}

}  // namespace

Result<CoreDump> write_core_dump(int pid, const CoreDumpOptions& options) {
  // Everything that needs no stop is read before it: the memory map (printing it takes the kernel milliseconds
  // per thousand fiber stacks, capture_live leaves it out of the pause), auxv, the command line and, for
  // fibers as threads, the modules that locate the fiber table.
  std::vector<std::string> warnings;
  FS_TRY(mappings, read_process_maps(pid, warnings));
  const std::string exe = target::exe_path(pid).value_or("");
  target::CoreWriteOptions write_options = process_notes(pid, warnings);
  std::optional<target::RemoteAddress> root;
  if (options.fibers_as_threads) {
    ModuleMap modules(*mappings, exe);
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
  FS_TRY(capture, target::capture_live(pid, {.stop = true, .mappings = &*mappings}, planner));
  if (!written) return fail("the target could not be stopped to write its core");
  FS_TRY(summary, std::move(*written));

  CoreDump dump;
  dump.summary = std::move(*summary);
  dump.threads = capture->threads.size();
  for (const target::ThreadState& thread : capture->threads) dump.threads_without_registers += !thread.registers;
  dump.fiber_threads = fiber_threads;
  dump.pause_ms = capture->pause_ms;
  dump.warnings = std::move(capture->warnings);
  dump.warnings.insert(dump.warnings.end(), warnings.begin(), warnings.end());
  dump.warnings.insert(dump.warnings.end(), dump.summary.warnings.begin(), dump.summary.warnings.end());
  return dump;
}

}  // namespace fiberscope::session
