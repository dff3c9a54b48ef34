#include "session/inspection.h"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <chrono>

#include "base/hex.h"
#include "fibers/capture_plan.h"
#include "fibers/go/go_reader.h"
#include "report/check_reporter.h"
#include "target/core_file.h"
#include "target/live_capture.h"
#include "target/proc_files.h"
#include "target/process_memory.h"

namespace fiberscope::session {
namespace {

// What the modules depend on: every file mapped, where, from which offset. Fiber stacks and heap come and go
// between snapshots without changing it.
std::vector<std::string> module_key_of(const std::vector<target::Mapping>& mappings) {
  std::vector<std::string> key;
  for (const target::Mapping& mapping : mappings)
    if (!mapping.path.empty() && mapping.path.front() != '[')
      key.push_back(mapping.range.start.to_string() + " " + hex(mapping.file_offset) + " " + mapping.path);
  return key;
}

// Signals whose siginfo carries the faulting address (si_addr); for the others (SIGABRT...) it holds a pid.
bool signal_has_fault_address(int signal) {
  return signal == SIGSEGV || signal == SIGBUS || signal == SIGILL || signal == SIGFPE || signal == SIGTRAP;
}

// A core's crashed thread (open_core lists it first, with its signal) becomes the dump's crash, and the fiber it
// ran is marked crashed; its state and wait reason stay what the runtime recorded. Reporters say the rest.
void mark_crash(const Inspection& inspection, report::Dump& dump) {
  if (inspection.core_path.empty() || inspection.snapshot.threads.empty()) return;
  const target::ThreadState& crashed = inspection.snapshot.threads.front();
  if (crashed.signal == 0) return;
  report::Crash crash;
  crash.tid = crashed.tid;
  crash.signal = crashed.signal;
  crash.signal_name = signal_label(crashed.signal);
  if (signal_has_fault_address(crashed.signal)) crash.fault_address = crashed.fault_address;
  // The fiber it ran, from the worker records (the dump's threads are left out with --fiber).
  if (inspection.table)
    for (const fibers::WorkerRecord& worker : inspection.table->workers)
      if (worker.tid == crashed.tid && worker.current_fiber != 0) crash.fiber_id = worker.current_fiber;
  if (!crash.fiber_id)
    for (const report::Thread& thread : dump.threads)
      if (thread.tid == crashed.tid && thread.fiber_id) crash.fiber_id = thread.fiber_id;
  if (crash.fiber_id)
    for (report::Fiber& fiber : dump.fibers)
      if (fiber.id == *crash.fiber_id) fiber.crashed = true;
  dump.crash = std::move(crash);
}

// Which reader a target's fibers come from: the debug ABI's root symbol, or a Go build's runtime. Neither: no table.
struct FiberSource {
  std::optional<target::RemoteAddress> debug_root;
  std::shared_ptr<const fibers::go::GoRuntime> go;
  bool found() const { return debug_root || go; }
};

// What live and core inspections share once their memory map is known: the modules and where the fibers are.
FiberSource load_modules(Inspection& inspection, const std::vector<target::Mapping>& mappings,
                         const std::string& exe_path, ModuleCache* cache) {
  std::vector<std::string> key = module_key_of(mappings);
  if (cache && cache->modules && cache->key == key) {
    inspection.modules = cache->modules;
  } else {
    inspection.modules = std::make_shared<ModuleMap>(mappings, exe_path);
    if (cache) *cache = ModuleCache{inspection.modules, std::move(key)};
  }
  FiberSource source;
  auto root = fibers::locate_debug_root(inspection.modules->symbols());
  if (root) {
    source.debug_root = *root;
    return source;
  }
  if (fibers::go::is_go_program(inspection.modules->symbols())) {
    auto go = fibers::go::load_go_runtime(inspection.modules->symbols());
    if (go) {
      source.go = *go;
    } else {
      inspection.table_error = go.error();
    }
    return source;
  }
  inspection.warnings.insert(inspection.warnings.begin(), root.error().message);
  return source;
}

void read_table(Inspection& inspection, const target::Memory& memory, const FiberSource& source, bool stopped) {
  auto read = source.go ? fibers::go::read_go_table(memory, *source.go)
                        : fibers::read_fiber_table(memory, *source.debug_root, {.target_stopped = stopped});
  if (read) {
    inspection.table = std::move(*read);
  } else {
    inspection.table_error = read.error();
  }
}

// A goroutine parked off any M, consistent when read: its stack range depends on its state, saved sp and stack
// bounds alone (fibers::lowest_known_sp), and it has no cgo transitions (they come from an M).
bool go_parked_off_m(const fibers::FiberRecord& fiber) {
  return (fiber.state == fibers::FiberState::waiting || fiber.state == fibers::FiberState::runnable) &&
         !fiber.worker_index && fiber.transitions.empty() && fiber.integrity == fibers::Integrity::consistent;
}

// What the early read saw of such a goroutine.
struct GoParked {
  target::RemoteAddress address;
  fibers::FiberState state;
  std::uint64_t sp = 0;
  target::AddressRange stack;
};

}  // namespace

std::string signal_label(int signal) {
  if (const char* name = ::sigabbrev_np(signal)) return std::string("SIG") + name;
  return "signal " + std::to_string(signal);
}

Result<std::vector<target::Mapping>> read_process_maps(int pid, std::vector<std::string>& warnings) {
  auto mappings = target::read_maps(pid, &warnings);
  // /proc/PID/maps of a pid that does not exist fails in more ways than one; no /proc/PID/exe either tells them
  // apart from a process that exists but hides its map.
  if (!mappings && (mappings.error().code == ErrorCode::no_such_process ||
                    mappings.error().code == ErrorCode::unspecified) && !target::exe_path(pid))
    return fail_code(ErrorCode::no_such_process, "no process with pid ", std::to_string(pid));
  return mappings;
}

Result<Inspection> inspect_live(int pid, const LiveOptions& options) {
  Inspection inspection;
  FS_TRY(mappings, read_process_maps(pid, inspection.warnings));
  const FiberSource source = load_modules(inspection, *mappings, target::exe_path(pid).value_or(""), options.cache);
  // Parked stacks are pre-copied only where seqlocks say whether the copy still holds: Go has none.
  const std::optional<target::RemoteAddress>& root = source.debug_root;

  // Before the stop: the maps just read are reused, and the copy's memory is sized from the running target's
  // fiber count and faulted in now rather than inside the pause.
  target::CaptureOptions capture{.stop = options.stop, .mappings = &*mappings};
  fibers::StackPrecopyPlan precopy_plan;
  target::Precopy precopy;
  using Clock = std::chrono::steady_clock;
  const auto scan_start = Clock::now();
  std::optional<fibers::StackScan> scan;
  std::vector<GoParked> go_parked;  // sorted by g address
  if (options.stop && !options.exact_stacks && root)
    if (auto scanned = fibers::scan_fiber_stacks(target::ProcessMemory(pid), *root)) scan = std::move(*scanned);
  // An unusable root is read, and its error reported, inside the pause as without a pre-copy.
  const bool precopying = scan.has_value();
  if (precopying) {
    // Parked fibers' stacks now, while the target runs; the table itself is copied first thing inside the pause.
    precopy_plan = fibers::plan_stack_precopy(*scan);
    scan.reset();
    const auto copy_start = Clock::now();
    std::vector<target::AddressRange> stack_ranges;
    stack_ranges.reserve(precopy_plan.stacks.size());
    for (const fibers::ParkedStack& parked : precopy_plan.stacks) stack_ranges.push_back(parked.used);
    precopy = target::Precopy::copy(pid, std::move(stack_ranges), *mappings, capture.max_total_bytes);
    inspection.precopy = PrecopyStats{.stacks_planned = precopy_plan.stacks.size(),
                                      .bytes_copied = precopy.copied_bytes(),
                                      .scan_ms = std::chrono::duration<double, std::milli>(copy_start - scan_start)
                                                     .count(),
                                      .copy_ms = std::chrono::duration<double, std::milli>(Clock::now() - copy_start)
                                                     .count()};
    capture.copy_first = precopy_plan.table_ranges;
    capture.precopy = &precopy;
    // Inside the pause only the other fibers' stacks and the threads' are copied (the table has its own arena).
    constexpr std::uint64_t kReservedPerOtherFiber = 2048;
    constexpr std::uint64_t kReservedForThreads = 1u << 20;
    const std::uint64_t others = precopy_plan.live_fibers - std::min(precopy_plan.live_fibers, precopy.size());
    capture.expected_copy_bytes = others * kReservedPerOtherFiber + kReservedForThreads;
  } else if (root) {
    capture.expected_copy_bytes = fibers::expected_copy_bytes(target::ProcessMemory(pid), *root);
  } else if (source.go && options.stop) {
    // Go's g and m structures are read once while the target runs, only to learn where they are and where the
    // parked goroutines' stacks are used: inside the pause all of that is copied first, in one batch, and the
    // table is read from that copy (goroutines made since are read from the stopped target). Nothing of this
    // early read is trusted: the stacks are still copied inside the stop (Go has no seqlock to prove a copy made
    // before it still holds), only their plan is made before, and the pause checks it (go_parked, below).
    if (auto scanned = fibers::go::read_go_table(target::ProcessMemory(pid), *source.go)) {
      fibers::FiberTable parked;
      for (fibers::FiberRecord& fiber : scanned->fibers)
        if (go_parked_off_m(fiber)) parked.fibers.push_back(std::move(fiber));
      std::vector<target::AddressRange> stacks = fibers::plan_regions(&parked, {}, *mappings);
      go_parked.reserve(parked.fibers.size());
      for (const fibers::FiberRecord& fiber : parked.fibers)
        go_parked.push_back({fiber.address, fiber.state, fiber.context.sp, fiber.stack});
      std::sort(go_parked.begin(), go_parked.end(),
                [](const GoParked& a, const GoParked& b) { return a.address < b.address; });
      constexpr std::uint64_t kReservedPerGoroutine = 2048;
      constexpr std::uint64_t kReservedForThreads = 1u << 20;
      const std::uint64_t others = scanned->fibers_live - std::min<std::uint64_t>(scanned->fibers_live,
                                                                                  go_parked.size());
      capture.copy_first = std::move(scanned->chunk_ranges);
      capture.copy_first.insert(capture.copy_first.end(), stacks.begin(), stacks.end());
      capture.expected_copy_bytes = others * kReservedPerGoroutine + kReservedForThreads;
      // g structures are 392 bytes in 416-byte slots (Go 1.19): one iovec per span of them rather than per g.
      capture.bridged_gap_bytes = 512;
    }
  }
  // Inside the pause, a goroutine that is still parked off any M exactly as the early read saw it (same state,
  // saved sp and stack bounds) would get the very range planned before, already copied: it is left out of the
  // table read there, which then holds only what the plan must add. The whole table is read after the pause,
  // from the snapshot.
  fibers::go::GoReadOptions go_pause_read;
  if (!go_parked.empty())
    go_pause_read.leave_out = [&](const fibers::FiberRecord& now) {
      auto found = std::lower_bound(
          go_parked.begin(), go_parked.end(), now.address,
          [](const GoParked& parked, target::RemoteAddress g) { return parked.address < g; });
      return found != go_parked.end() && found->address == now.address && go_parked_off_m(now) &&
             found->state == now.state && found->sp == now.context.sp && found->stack.start == now.stack.start &&
             found->stack.end == now.stack.end;
    };

  // The table is read from the stopped target itself (where its seqlocks mean something); what it says decides
  // which stacks get copied. With a pre-copy, fibers whose copies still hold are left out of that read (they need
  // no plan), and the whole table is decoded after the pause from the snapshot, like a core's.
  auto planner = [&](const target::Memory& live, const std::vector<target::ThreadState>& threads) {
    if (!source.found()) return fibers::plan_regions(nullptr, threads, *mappings);
    if (go_pause_read.leave_out) {
      auto rest = fibers::go::read_go_table(live, *source.go, go_pause_read);
      return fibers::plan_regions(rest ? &*rest : nullptr, threads, *mappings);
    }
    if (!precopying) {
      read_table(inspection, live, source, options.stop);
      return fibers::plan_regions(inspection.table ? &*inspection.table : nullptr, threads, *mappings);
    }
    fibers::ReadOptions read_options{.target_stopped = true};
    read_options.leave_out = [&](const fibers::StackView& now) {
      auto found = std::lower_bound(
          precopy_plan.stacks.begin(), precopy_plan.stacks.end(), now.record,
          [](const fibers::ParkedStack& parked, target::RemoteAddress record) { return parked.record < record; });
      if (found == precopy_plan.stacks.end() || found->record != now.record) return false;
      const auto index = static_cast<std::size_t>(found - precopy_plan.stacks.begin());
      if (!precopy.copied(index) || !fibers::precopy_still_valid(*found, now)) return false;
      precopy.keep(index);
      return true;
    };
    auto rest = fibers::read_fiber_table(live, *root, read_options);
    return fibers::plan_regions(rest ? &*rest : nullptr, threads, *mappings);
  };
  FS_TRY(snapshot, target::capture_live(pid, capture, planner));
  inspection.snapshot = std::move(*snapshot);
  if (go_pause_read.leave_out && inspection.snapshot.memory)
    read_table(inspection, *inspection.snapshot.memory, source, true);
  if (precopying) {
    inspection.precopy->stacks_kept = precopy.kept_count();
    if (inspection.snapshot.memory) read_table(inspection, *inspection.snapshot.memory, source, true);
  }
  if (!options.stop && root && inspection.table && inspection.snapshot.memory)
    fibers::mark_records_changed_during_capture(*inspection.table, *inspection.snapshot.memory);
  if (!options.stop && source.go && inspection.table && inspection.snapshot.memory) {
    fibers::go::mark_goroutines_changed_during_capture(*inspection.table, *source.go, *inspection.snapshot.memory);
    inspection.warnings.push_back(fibers::go::kNoStopCaveat);
  }
  return inspection;
}

Result<Inspection> inspect_core(const std::string& core_path, const CoreInspectOptions& options) {
  Inspection inspection;
  inspection.core_path = core_path;
  FS_TRY(core, target::open_core_file(core_path, {.exe_path = options.exe, .sysroot = options.sysroot}));
  inspection.snapshot = std::move(core->snapshot);
  std::erase_if(inspection.snapshot.threads,
                [](const target::ThreadState& thread) { return thread.tid >= kFiberThreadTidBase; });
  if (!inspection.snapshot.memory) return fail("core file ", core_path, ": no memory could be read from it");
  // Modules are opened from the files on disk the core names (after --exe and --sysroot), except those open_core
  // refused as other files than the process ran (another build-id, another entry point): their symbols and CFI
  // would describe other code, so their frames are left unnamed (the warning says why).
  std::vector<target::Mapping> on_disk = inspection.snapshot.mappings;
  for (target::Mapping& mapping : on_disk) {
    if (mapping.path.empty() || mapping.path.front() != '/') continue;
    const target::CoreBackingFile* file = core->file(mapping.path);
    if (file && file->refusal && file->refusal->other_file()) mapping.path.clear();
    else mapping.path = core->disk_path(mapping.path);
  }
  const FiberSource source = load_modules(inspection, on_disk, inspection.snapshot.exe_path, nullptr);
  // A core has no "now": time in state is measured against the runtime's own clock_ns, which its monitor
  // refreshes about every millisecond (dump_builder falls back to it when target_clock_ns is 0).
  inspection.snapshot.target_clock_ns = 0;
  if (source.found()) read_table(inspection, *inspection.snapshot.memory, source, true);
  return inspection;
}

report::Dump build_dump(Inspection& inspection, const BuildOptions& options) {
  report::Dump dump = build_dump(inspection.snapshot, inspection.table ? &*inspection.table : nullptr,
                                 *inspection.modules, options);
  dump.warnings.insert(dump.warnings.begin(), inspection.warnings.begin(), inspection.warnings.end());
  if (!inspection.core_path.empty()) dump.source = {report::Source::Kind::core, inspection.core_path};
  mark_crash(inspection, dump);
  if (inspection.table_error)
    dump.errors.insert(dump.errors.begin(), report::DumpError{inspection.table_error->message, {}, {}});
  const checks::CheckResult checked = run_checks(inspection);
  for (const checks::Finding& finding : checked.findings)
    if (!options.only_fiber || finding.fiber_id == *options.only_fiber)
      dump.findings.push_back(report::dump_finding(finding));
  return dump;
}

checks::CheckResult run_checks(Inspection& inspection) {
  if (!inspection.table) return {};
  return checks::run_checks({.snapshot = inspection.snapshot,
                             .table = *inspection.table,
                             .symbols = inspection.modules->symbols(),
                             .cfi = inspection.modules->cfi()});
}

}  // namespace fiberscope::session
