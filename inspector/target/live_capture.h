// Capturing a live process: the only code that stops the target.
//
//   auto snapshot = capture_live(pid, {}, [&](const Memory& live, const std::vector<ThreadState>& threads) {
//     return regions_to_copy(live, threads);   // e.g. the fiber table and the used part of every stack
//   });
//
// capture_live seizes every thread (PTRACE_SEIZE + PTRACE_INTERRUPT, rescanning /proc/PID/task until no thread
// appears), reads registers and /proc/PID/maps, lets the planner read what it needs to decide which regions to
// copy, copies them with batched process_vm_readv, and detaches — before returning, on every path, and also when
// the inspector receives SIGINT/SIGTERM/SIGHUP meanwhile. It never writes to the target.
//
// Details callers rely on:
// - Failures carry an ErrorCode: no_such_process, permission_denied (the message says why: another tracer, uid,
//   yama ptrace_scope, CAP_SYS_PTRACE), target_exited (exited during the attach, or a zombie), interrupted.
// - On SIGINT/SIGTERM/SIGHUP the handler detaches, restores the disposition the inspector had before the capture
//   and re-raises: by default the inspector dies (the kernel detaches whatever is left); if the inspector's own
//   handler returns instead, capture_live fails with ErrorCode::interrupted. Only one capture runs at a time.
// - Signals that arrive for the target while it is attached are given back on detach; a SIGSTOPped target stays
//   stopped. Threads that cannot be stopped (uninterruptible sleep, a zombie main thread) are listed with an
//   `error` and no registers.
// - The planner's `live` is a ProcessMemory when CaptureOptions::copy_first is empty. Thread names are read before
//   the stop; the few threads born during the attach get theirs after.
// - pause_ms runs from the first PTRACE_INTERRUPT to the last PTRACE_DETACH.
// - Snapshot::mappings is /proc/PID/maps read just before the stop (printing it takes the kernel milliseconds per
//   thousand fiber stacks, too slow for the stop); planned ranges outside it are still attempted.
// - Two ways to shorten the pause further (both optional): CaptureOptions::copy_first names ranges known before
//   the stop (the fiber table's chunks) that are copied first thing inside the pause, straight into the snapshot,
//   and that the planner then reads from that copy; CaptureOptions::precopy carries memory copied while the target
//   still ran (Precopy::copy), of which the planner keeps, inside the pause, only the ranges it can prove unchanged.
//   Kept ranges join the snapshot; the others are never visible in it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "base/result.h"
#include "target/memory.h"
#include "target/precopy.h"
#include "target/snapshot.h"

namespace fiberscope::target {

struct CaptureOptions {
  bool stop = true;                      // false: --no-stop, never ptrace-stop;
                                         // registers come from /proc where possible
  std::uint64_t max_region_bytes = 8u << 20;     // cap on one copied region
  std::uint64_t max_total_bytes = 1u << 30;      // cap on everything copied
  // Ranges closer than this in one readable mapping are copied as one, the gap with them (plan_copies): fewer iovecs
  // for many small neighbours (Go's g structures). 0: exactly what was asked.
  std::uint64_t bridged_gap_bytes = 0;
  // How many bytes the plan is expected to copy, if the caller can guess (e.g. fibers x average used stack).
  // That much memory is allocated and pre-faulted before the target is stopped: faulting in fresh pages costs more
  // than copying into them, so this keeps the pause short. 0: allocate once the plan is known, while stopped.
  std::uint64_t expected_copy_bytes = 0;
  // The caller's own read of /proc/PID/maps, made just before (e.g. to open the modules): used as the snapshot's
  // mappings instead of reading the file again, which with 100k fiber stacks costs the kernel ~0.1 s. Must outlive
  // the call. Null: capture_live reads the maps itself.
  const std::vector<Mapping>* mappings = nullptr;
  // Copied first inside the pause, into the snapshot; the planner's reads inside these ranges are served from that
  // copy (one batched read instead of the planner's many small ones), and the planner's ranges are not copied
  // twice where they overlap them. Their memory is allocated before the stop.
  std::vector<AddressRange> copy_first = {};
  // Memory copied before the stop. The planner keep()s what is still valid; capture_live adds the kept ranges to
  // the snapshot after detaching (a kept range that the planner also asks to copy is copied in the pause instead).
  Precopy* precopy = nullptr;
};

// Decides, while the target is stopped, which address ranges to copy into the snapshot. `live` reads the
// stopped target (inside CaptureOptions::copy_first, from the copy just made; otherwise directly). Ranges may
// overlap or be unreadable; capture_live merges them and records failures as warnings.
using RegionPlanner =
    std::function<std::vector<AddressRange>(const Memory& live, const std::vector<ThreadState>& threads)>;

Result<Snapshot> capture_live(int pid, const CaptureOptions& options, const RegionPlanner& planner);

}  // namespace fiberscope::target
