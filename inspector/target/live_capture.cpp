#include "target/live_capture.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "target/arena.h"
#include "target/copy_plan.h"
#include "target/proc_files.h"
#include "target/process_memory.h"
#include "target/registers.h"
#include "target/stop_session.h"

namespace fiberscope::target {

namespace {

using Clock = StopSession::Clock;

std::string pid_text(int pid) { return std::to_string(pid); }

// Explains a failure to read /proc/PID/maps in the terms the CLI maps to advice and exit codes.
Error maps_error(int pid, const Error& error) {
  if (error.code == ErrorCode::permission_denied) return attach_permission_error(pid);
  if (error.code == ErrorCode::no_such_process)
    return Error{"process " + pid_text(pid) + " exited before it could be attached", ErrorCode::target_exited};
  return error.with_context("reading the memory map");
}

// What the planner reads inside the pause when CaptureOptions::copy_first was given: those ranges from their copy
// (already in the snapshot), everything else from the stopped target.
class PauseMemory final : public Memory {
 public:
  PauseMemory(const RegionMemory& copied, const ProcessMemory& live) : copied_(copied), live_(live) {}
  Result<void> read(RemoteAddress address, std::span<std::byte> out) const override {
    if (auto region = copied_.region_containing(address); region && region->contains(address, out.size()))
      return copied_.read(address, out);
    return live_.read(address, out);
  }

 private:
  const RegionMemory& copied_;
  const ProcessMemory& live_;
};

std::uint64_t monotonic_now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

// Fills in names of threads whose name was not read before the stop.
void fill_names(int pid, std::vector<ThreadState>& threads) {
  for (ThreadState& thread : threads) {
    if (!thread.name.empty()) continue;
    if (auto name = thread_name(pid, thread.tid)) thread.name = std::move(*name);
  }
}

// The memory map: the caller's fresh copy when it passed one, else /proc/PID/maps read now.
Result<std::vector<Mapping>> current_maps(int pid, const CaptureOptions& options, std::vector<std::string>& warnings) {
  if (options.mappings) return *options.mappings;
  auto mappings = read_maps(pid, &warnings);
  if (!mappings) return std::unexpected(maps_error(pid, mappings.error()));
  return mappings;
}

// --no-stop: what /proc says of each thread of the running target: sp and pc of a thread blocked in the kernel.
// `blocked_in` gets each listed thread's state when its registers were read. Threads that exited are left out.
Result<std::vector<ThreadState>> running_threads(int pid, const std::vector<int>& tids,
                                                 std::vector<SyscallState>& blocked_in) {
  std::vector<ThreadState> threads;
  for (int tid : tids) {
    ThreadState thread;
    thread.tid = tid;
    if (auto name = thread_name(pid, tid)) thread.name = std::move(*name);
    auto syscall_state = read_syscall(pid, tid);
    if (!syscall_state) {
      if (syscall_state.error().code == ErrorCode::permission_denied)
        return std::unexpected(attach_permission_error(pid));
      if (syscall_state.error().code == ErrorCode::no_such_process) continue;  // the thread exited meanwhile
      thread.error = syscall_state.error().message;
    } else if (syscall_state->running) {
      thread.error = "running on a CPU: registers unknown without stopping the target";
    } else {
      Registers registers;
      registers.set(Reg::rsp, syscall_state->stack_pointer);
      registers.set(Reg::rip, syscall_state->program_counter);
      thread.registers = registers;
    }
    threads.push_back(std::move(thread));
    blocked_in.push_back(syscall_state.value_or(SyscallState{}));
  }
  if (threads.empty())
    return fail_code(ErrorCode::target_exited, "process ", pid_text(pid), " exited while being read");
  return threads;
}

// The registers were read before the table and the stacks: a thread that left its system call meanwhile (and maybe
// entered another, deeper in the same fiber's stack) would be unwound over stack memory that no longer holds its
// frames. Its registers are kept only if the kernel still shows the same call, sp and pc.
void forget_moved_registers(int pid, std::vector<ThreadState>& threads, const std::vector<SyscallState>& blocked_in) {
  for (std::size_t i = 0; i < threads.size(); ++i) {
    ThreadState& thread = threads[i];
    if (!thread.registers) continue;
    auto again = read_syscall(pid, thread.tid);
    if (!again || again->running || again->syscall_number != blocked_in[i].syscall_number ||
        again->stack_pointer != blocked_in[i].stack_pointer ||
        again->program_counter != blocked_in[i].program_counter) {
      thread.registers.reset();
      thread.error = "left its system call while the running target was read: registers unknown";
    }
  }
}

// --no-stop: the target runs on while its threads, the fiber table and the stacks are read.
Result<Snapshot> capture_running(Snapshot snapshot, const std::vector<int>& tids, const CaptureOptions& options,
                                 const RegionPlanner& planner) {
  const int pid = snapshot.pid;
  std::vector<SyscallState> blocked_in;  // per thread of the snapshot
  FS_TRY(threads, running_threads(pid, tids, blocked_in));
  snapshot.threads = std::move(*threads);
  FS_TRY(mappings, current_maps(pid, options, snapshot.warnings));
  snapshot.mappings = std::move(*mappings);

  ProcessMemory live(pid);
  std::vector<AddressRange> requested = planner ? planner(live, snapshot.threads) : std::vector<AddressRange>{};
  auto ranges = plan_copies(requested, snapshot.mappings, options, snapshot.warnings);
  auto memory = std::make_unique<RegionMemory>();
  copy_ranges(*memory, live, ranges, Arena{}, snapshot.warnings);
  forget_moved_registers(pid, snapshot.threads, blocked_in);
  snapshot.memory = std::move(memory);
  snapshot.target_clock_ns = monotonic_now_ns();
  snapshot.target_was_stopped = false;
  snapshot.pause_ms.reset();
  return snapshot;
}

// The threads of `pid`, once it is known to be a process that can be captured: it exists, is no zombie and, for a
// capture that stops it, has no tracer.
Result<std::vector<int>> capturable_threads(int pid, const CaptureOptions& options) {
  if (pid <= 0) return fail_code(ErrorCode::no_such_process, "no process with pid ", pid_text(pid));
  FS_TRY(status, replace_if_gone(read_status(pid),
                                 fail_code(ErrorCode::no_such_process, "no process with pid ", pid_text(pid))));
  FS_TRY(tids, replace_if_gone(list_threads(pid), fail_code(ErrorCode::target_exited, "process ", pid_text(pid),
                                                            " exited before it could be attached")));
  // A zombie main thread with live siblings is a running process; a zombie with no other thread has exited. An
  // exec from another thread passes through a zombie leader too, then hands its pid on: read the state again,
  // after the listing, as a real zombie never comes back.
  auto is_zombie = [](const ProcessStatus& read) { return read.state == 'Z' || read.state == 'X'; };
  if (is_zombie(*status) && tids->size() <= 1 && is_zombie(read_status(pid).value_or(*status)))
    return fail_code(ErrorCode::target_exited, "process ", pid_text(pid),
                     " is a zombie: it has exited and its parent (pid ", pid_text(status->parent_pid),
                     ") has not reaped it yet; there is nothing left to inspect");
  if (options.stop && status->tracer_pid != 0) return std::unexpected(attach_permission_error(pid));
  return tids;
}

// Thread names read before the stop, sorted by tid.
using EarlyNames = std::vector<std::pair<int, std::string>>;

EarlyNames names_before_stop(int pid, const std::vector<int>& tids) {
  EarlyNames names;
  names.reserve(tids.size());
  for (int tid : tids)
    if (auto name = thread_name(pid, tid)) names.emplace_back(tid, std::move(*name));
  return names;
}

void apply_early_names(EarlyNames& names, std::vector<ThreadState>& threads) {
  for (ThreadState& thread : threads) {
    auto found = std::lower_bound(names.begin(), names.end(), thread.tid,
                                  [](const auto& entry, int tid) { return entry.first < tid; });
    if (found != names.end() && found->first == thread.tid) thread.name = std::move(found->second);
  }
}

// Withdraws the precopied ranges that overlap what is copied in the pause (`ranges`, `copied_first`): regions of
// a snapshot are disjoint, so such a range is copied again with the rest, which only costs time. Planners that
// keep what they do not ask for never do this. Returns the withdrawn ranges.
std::vector<AddressRange> withdraw_overlapping(Precopy& precopy, const std::vector<AddressRange>& ranges,
                                               const std::vector<AddressRange>& copied_first) {
  std::vector<AddressRange> withdrawn;
  for (std::size_t i = 0; i < precopy.size(); ++i) {
    if (!precopy.kept(i)) continue;
    const AddressRange range = precopy.range(i);
    if (overlaps_any(range, ranges) || overlaps_any(range, copied_first)) {
      precopy.discard(i);
      withdrawn.push_back(range);
    }
  }
  return withdrawn;
}

// Inside the pause: what the planner asks to copy, planned against the maps, less what copy_first already copied
// into `memory`.
Result<std::vector<AddressRange>> plan_inside_pause(const RegionMemory& memory, const ProcessMemory& live,
                                                    bool copied_first_any, Snapshot& snapshot,
                                                    const CaptureOptions& options, const RegionPlanner& planner,
                                                    const StopSession& session) {
  const std::vector<AddressRange> copied_first = memory.ranges();
  PauseMemory pause_memory(memory, live);
  const Memory& planner_memory = copied_first_any ? static_cast<const Memory&>(pause_memory) : live;
  std::vector<AddressRange> requested =
      planner ? planner(planner_memory, snapshot.threads) : std::vector<AddressRange>{};
  FS_TRY_DISCARD(session.not_interrupted());
  auto ranges = plan_copies(requested, snapshot.mappings, options, snapshot.warnings);
  if (options.precopy) {
    std::vector<AddressRange> again = withdraw_overlapping(*options.precopy, ranges, copied_first);
    if (!again.empty()) {
      requested.insert(requested.end(), again.begin(), again.end());
      ranges = plan_copies(requested, snapshot.mappings, options, snapshot.warnings);
    }
  }
  if (!copied_first.empty()) ranges = subtract_ranges(ranges, copied_first);
  return ranges;
}

// Stops the target, reads its threads, copies what the planner asks for, and lets it run again.
Result<Snapshot> capture_stopped(Snapshot snapshot, const std::vector<int>& tids, const CaptureOptions& options,
                                 const RegionPlanner& planner) {
  const int pid = snapshot.pid;
  // The memory map now, while the target runs: with one mapping per fiber stack the kernel takes ~2 ms per 1000
  // mappings to print it, far more than the whole stop may last. plan_copies copes with mappings made since.
  FS_TRY(mappings, current_maps(pid, options, snapshot.warnings));
  snapshot.mappings = std::move(*mappings);
  // Names now, while the target runs, to keep the stop short; threads found later are named after detaching.
  EarlyNames early_names = names_before_stop(pid, tids);
  Arena reserved = allocate_arena(std::min(options.expected_copy_bytes, options.max_total_bytes));
  // copy_first is known now: planned against the maps and given its own arena before the stop.
  std::vector<AddressRange> first_ranges =
      plan_copies(options.copy_first, snapshot.mappings, options, snapshot.warnings);
  Arena first_arena = allocate_arena(total_bytes(first_ranges));

  StopSession session(pid);
  FS_TRY_DISCARD(session.begin());
  FS_TRY_DISCARD(session.attach_all(tids, snapshot.warnings));

  // ---- The target is stopped from here until detach_all(): nothing slow in between. ----
  snapshot.threads = session.thread_states();
  apply_early_names(early_names, snapshot.threads);
  ProcessMemory live(pid);
  auto memory = std::make_unique<RegionMemory>();
  copy_ranges(*memory, live, first_ranges, std::move(first_arena), snapshot.warnings);
  FS_TRY(ranges, plan_inside_pause(*memory, live, !first_ranges.empty(), snapshot, options, planner, session));
  copy_ranges(*memory, live, *ranges, std::move(reserved), snapshot.warnings);
  snapshot.target_clock_ns = monotonic_now_ns();

  session.detach_all();
  auto pause_end = Clock::now();
  // ---- The target runs again. ----

  FS_TRY_DISCARD(session.not_interrupted());
  if (options.precopy) options.precopy->add_kept_to(*memory, snapshot.warnings);
  snapshot.memory = std::move(memory);
  snapshot.pause_ms = std::chrono::duration<double, std::milli>(pause_end - session.first_interrupt()).count();
  snapshot.target_was_stopped = true;
  fill_names(pid, snapshot.threads);
  return snapshot;
}

}  // namespace

Result<Snapshot> capture_live(int pid, const CaptureOptions& options, const RegionPlanner& planner) {
  FS_TRY(tids, capturable_threads(pid, options));
  Snapshot snapshot;
  snapshot.pid = pid;
  if (auto path = exe_path(pid)) {
    snapshot.exe_path = std::move(*path);
  } else {
    snapshot.warnings.push_back(path.error().message);
  }
  if (!options.stop) return capture_running(std::move(snapshot), *tids, options, planner);
  return capture_stopped(std::move(snapshot), *tids, options, planner);
}

}  // namespace fiberscope::target
