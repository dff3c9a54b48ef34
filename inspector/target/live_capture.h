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
#pragma once

#include <functional>
#include <vector>

#include "base/result.h"
#include "target/memory.h"
#include "target/snapshot.h"

namespace fiberscope::target {

struct CaptureOptions {
  bool stop = true;                      // false: --no-stop, never ptrace-stop; registers come from /proc where possible
  std::uint64_t max_region_bytes = 8u << 20;     // cap on one copied region
  std::uint64_t max_total_bytes = 1u << 30;      // cap on everything copied
  // How many bytes the plan is expected to copy, if the caller can guess (e.g. fibers x average used stack).
  // That much memory is allocated and pre-faulted before the target is stopped: faulting in fresh pages costs more
  // than copying into them, so this keeps the pause short. 0: allocate once the plan is known, while stopped.
  std::uint64_t expected_copy_bytes = 0;
};

// Decides, while the target is stopped, which address ranges to copy into the snapshot. `live` reads the
// stopped target directly. Ranges may overlap or be unreadable; capture_live merges them and records failures
// as warnings.
using RegionPlanner =
    std::function<std::vector<AddressRange>(const Memory& live, const std::vector<ThreadState>& threads)>;

Result<Snapshot> capture_live(int pid, const CaptureOptions& options, const RegionPlanner& planner);

}  // namespace fiberscope::target
