#include "target/live_capture.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <system_error>
#include <thread>
#include <utility>

#include "target/copy_plan.h"
#include "target/proc_files.h"
#include "target/process_memory.h"
#include "target/registers.h"
#include "target/stop_session.h"

namespace fiberscope::target {

namespace {

using Clock = StopSession::Clock;

constexpr std::uint64_t kHugePageBytes = 2u << 20;

std::string pid_text(int pid) { return std::to_string(pid); }

// Explains a failure to read /proc/PID/maps in the terms the CLI maps to advice and exit codes.
Error maps_error(int pid, const Error& error) {
  if (error.code == ErrorCode::permission_denied) return attach_permission_error(pid);
  if (error.code == ErrorCode::no_such_process)
    return Error{"process " + pid_text(pid) + " exited before it could be attached", ErrorCode::target_exited};
  return error.with_context("reading the memory map");
}

// One anonymous mapping for every copied byte: no per-region allocation and no zero-filling by us. Its pages are
// faulted in up front (MADV_POPULATE_WRITE, as huge pages when big enough): faulting 4 KiB pages one by one inside
// process_vm_readv costs several times the copy itself (measured: 220 ms vs 30 ms for 156 MB).
struct Arena {
  std::shared_ptr<const std::byte[]> owner;
  std::byte* bytes = nullptr;
  std::uint64_t size_bytes = 0;
};
// Faults in the pages of [bytes, bytes + size_bytes) (Linux 5.14+; older kernels fault during the copy instead).
// Zeroing fresh pages costs about as much as the copy (measured: ~100 ms for 95 MB on a loaded 2-CPU machine),
// and when no reservation was made it happens inside the pause: big arenas are populated by two threads.
void populate(std::byte* bytes, std::uint64_t size_bytes) {
#ifdef MADV_POPULATE_WRITE
  constexpr std::uint64_t kParallelFromBytes = 16u << 20;
  const std::uint64_t half = (size_bytes / 2) & ~(kHugePageBytes - 1);  // page-aligned, whole huge pages
  if (size_bytes < kParallelFromBytes || std::thread::hardware_concurrency() < 2) {
    ::madvise(bytes, size_bytes, MADV_POPULATE_WRITE);
    return;
  }
  std::thread helper;
  try {
    helper = std::thread([=] { ::madvise(bytes + half, size_bytes - half, MADV_POPULATE_WRITE); });
  } catch (const std::system_error&) {
    ::madvise(bytes + half, size_bytes - half, MADV_POPULATE_WRITE);  // no thread to spare: do it here
  }
  ::madvise(bytes, half, MADV_POPULATE_WRITE);
  if (helper.joinable()) helper.join();
#else
  (void)bytes;
  (void)size_bytes;
#endif
}

Arena allocate_arena(std::uint64_t size_bytes) {
  if (size_bytes == 0) return {};
  void* memory = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return {};
  if (size_bytes >= kHugePageBytes) ::madvise(memory, size_bytes, MADV_HUGEPAGE);
  auto* bytes = static_cast<std::byte*>(memory);
  populate(bytes, size_bytes);
  return {std::shared_ptr<const std::byte[]>(
              bytes, [size_bytes](const std::byte* p) { ::munmap(const_cast<std::byte*>(p), size_bytes); }),
          bytes, size_bytes};
}

// Splits a large batch over a few threads. With thousands of small ranges the cost is per range (the kernel pins
// each remote range's pages under the target's mmap lock, which it takes shared), so threads scale it.
void read_in_parallel(const ProcessMemory& live, std::span<ProcessMemory::BatchRead> requests) {
  constexpr std::size_t kMinRequestsPerThread = 2048;
  std::size_t threads = std::min<std::size_t>({std::max(1u, std::thread::hardware_concurrency()), 4,
                                               requests.size() / kMinRequestsPerThread});
  if (threads <= 1) {
    live.read_batch(requests);
    return;
  }
  std::vector<std::thread> helpers;
  std::size_t per_thread = (requests.size() + threads - 1) / threads;
  for (std::size_t first = per_thread; first < requests.size(); first += per_thread) {
    auto part = requests.subspan(first, std::min(per_thread, requests.size() - first));
    try {
      helpers.emplace_back([&live, part] { live.read_batch(part); });
    } catch (const std::system_error&) {
      live.read_batch(part);  // no thread to spare (RLIMIT_NPROC): read it here
    }
  }
  live.read_batch(requests.first(per_thread));
  for (std::thread& helper : helpers) helper.join();
}

std::uint64_t total_bytes(std::span<const AddressRange> ranges) {
  std::uint64_t total = 0;
  for (AddressRange range : ranges) total += range.size_bytes();
  return total;
}

// Copies `ranges` (sorted, disjoint, none already in `memory`) into `memory` with batched reads. The ranges that
// fit in `reserved` go there, in order; the rest get an arena of their own, faulted in now (inside the pause), so an
// under-estimated reservation costs only its shortfall. Unreadable parts become warnings.
void copy_ranges(RegionMemory& memory, const ProcessMemory& live, const std::vector<AddressRange>& ranges,
                 Arena reserved, std::vector<std::string>& warnings) {
  const std::uint64_t total = total_bytes(ranges);
  if (total == 0) return;

  struct Part {
    Arena arena;
    std::size_t first = 0, end = 0;  // ranges[first, end) live in this arena, back to back
    std::uint64_t used_bytes = 0;
  };
  std::vector<Part> parts;
  std::size_t fitting = 0;
  std::uint64_t prefix_bytes = 0;
  while (fitting < ranges.size() && ranges[fitting].size_bytes() <= reserved.size_bytes - prefix_bytes)
    prefix_bytes += ranges[fitting++].size_bytes();
  if (fitting > 0) parts.push_back({std::move(reserved), 0, fitting, prefix_bytes});
  if (fitting < ranges.size()) {
    Arena rest = allocate_arena(total - prefix_bytes);
    if (!rest.bytes) {
      warnings.push_back("cannot allocate " + hex(total - prefix_bytes) + " bytes to copy target memory: " +
                         std::to_string(ranges.size() - fitting) + " ranges not copied");
    } else {
      parts.push_back({std::move(rest), fitting, ranges.size(), total - prefix_bytes});
    }
  }

  std::vector<ProcessMemory::BatchRead> requests;
  requests.reserve(ranges.size());
  for (const Part& part : parts) {
    std::uint64_t offset = 0;
    for (std::size_t i = part.first; i < part.end; ++i) {
      requests.push_back({ranges[i].start, std::span<std::byte>(part.arena.bytes + offset, ranges[i].size_bytes())});
      offset += ranges[i].size_bytes();
    }
  }
  read_in_parallel(live, requests);

  std::size_t failures = 0;
  std::size_t request_index = 0;
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  for (Part& part : parts) {
    std::vector<RegionMemory::ArenaSlice> slices;
    slices.reserve(part.end - part.first);
    std::uint64_t offset = 0;
    for (std::size_t i = part.first; i < part.end; ++i) {
      const auto& request = requests[request_index++];
      AddressRange copied{ranges[i].start, ranges[i].start + request.bytes_read};
      // Ranges split at a mapping boundary that were both read lie back to back in the arena too: one region, so
      // reads may span them.
      if (!slices.empty() && slices.back().range.end == copied.start &&
          slices.back().arena_offset + slices.back().range.size_bytes() == offset) {
        slices.back().range.end = copied.end;
      } else if (!copied.empty()) {
        slices.push_back({copied, offset});
      }
      if (request.bytes_read < request.out.size() && failures++ < 8)
        warnings.push_back("could not copy " + hex(request.out.size() - request.bytes_read) + " bytes at " +
                           (ranges[i].start + request.bytes_read).to_string() + " (unreadable)");
      offset += ranges[i].size_bytes();
    }
    // An over-estimated reservation gives its unused whole pages back (the mapping itself stays until the
    // snapshot goes, so nothing else can be mapped there before the final munmap).
    const std::uint64_t used_pages_end = (part.used_bytes + page - 1) / page * page;
    if (part.arena.size_bytes > used_pages_end)
      ::madvise(part.arena.bytes + used_pages_end, part.arena.size_bytes - used_pages_end, MADV_DONTNEED);
    if (auto added = memory.add_arena(std::move(part.arena.owner), part.arena.size_bytes, slices); !added)
      warnings.push_back("copied memory dropped: " + added.error().message);  // our own invariant; never expected
  }
  if (failures > 8) warnings.push_back(std::to_string(failures - 8) + " more ranges could not be copied fully");
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
  // A zombie main thread with live siblings is a running process; a zombie with no other thread has exited.
  if ((status->state == 'Z' || status->state == 'X') && tids->size() <= 1)
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

Precopy Precopy::copy(int pid, std::vector<AddressRange> ranges, std::span<const Mapping> mappings,
                      std::uint64_t max_total_bytes) {
  Precopy precopy;
  const std::size_t count = ranges.size();
  precopy.ranges_ = std::move(ranges);
  precopy.arena_offsets_.assign(count, 0);
  precopy.copied_.assign(count, false);
  precopy.kept_.assign(count, false);

  // Which ranges may be copied: inside one readable mapping (a guard page or a hole would make a partial copy)
  // and disjoint from every other range (a snapshot's regions are disjoint; overlapping requests come from a
  // hostile table and are simply left to the pause).
  std::vector<std::size_t> order;
  order.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const AddressRange range = precopy.ranges_[i];
    if (range.empty()) continue;
    auto mapping = std::upper_bound(mappings.begin(), mappings.end(), range.start,
                                    [](RemoteAddress start, const Mapping& m) { return start < m.range.end; });
    if (mapping == mappings.end() || !mapping->readable || !mapping->range.contains(range.start) ||
        range.end > mapping->range.end)
      continue;
    order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return precopy.ranges_[a].start < precopy.ranges_[b].start;
  });
  std::vector<bool> usable(count, false);
  for (std::size_t k = 0; k < order.size(); ++k) {
    const AddressRange range = precopy.ranges_[order[k]];
    const bool overlaps_previous = k > 0 && precopy.ranges_[order[k - 1]].end > range.start;
    const bool overlaps_next = k + 1 < order.size() && precopy.ranges_[order[k + 1]].start < range.end;
    usable[order[k]] = !overlaps_previous && !overlaps_next;
  }

  std::uint64_t total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!usable[i]) continue;
    const std::uint64_t size = precopy.ranges_[i].size_bytes();
    if (size > max_total_bytes - total) {
      usable[i] = false;
      continue;
    }
    precopy.arena_offsets_[i] = total;
    total += size;
  }
  if (total == 0) return precopy;
  Arena arena = allocate_arena(total);
  if (!arena.bytes) return precopy;

  std::vector<ProcessMemory::BatchRead> requests;
  std::vector<std::size_t> request_index;
  requests.reserve(count);
  request_index.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (!usable[i]) continue;
    requests.push_back({precopy.ranges_[i].start, std::span<std::byte>(arena.bytes + precopy.arena_offsets_[i],
                                                                        precopy.ranges_[i].size_bytes())});
    request_index.push_back(i);
  }
  ProcessMemory live(pid);
  read_in_parallel(live, requests);
  for (std::size_t r = 0; r < requests.size(); ++r) {
    if (requests[r].bytes_read != requests[r].out.size()) continue;
    precopy.copied_[request_index[r]] = true;
    precopy.copied_bytes_ += requests[r].bytes_read;
  }
  precopy.arena_ = std::move(arena.owner);
  precopy.arena_bytes_ = total;
  return precopy;
}

void Precopy::keep(std::size_t index) {
  if (copied(index)) kept_[index] = true;
}

void Precopy::discard(std::size_t index) {
  if (index < kept_.size()) kept_[index] = false;
}

std::size_t Precopy::kept_count() const {
  return static_cast<std::size_t>(std::count(kept_.begin(), kept_.end(), true));
}

void Precopy::add_kept_to(RegionMemory& memory, std::vector<std::string>& warnings) const {
  std::vector<RegionMemory::ArenaSlice> slices;
  slices.reserve(kept_count());
  for (std::size_t i = 0; i < ranges_.size(); ++i)
    if (kept(i)) slices.push_back({ranges_[i], arena_offsets_[i]});
  if (auto added = memory.add_arena(arena_, arena_bytes_, slices); !added)
    warnings.push_back("stacks copied before the stop dropped: " + added.error().message);  // never expected
}

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
