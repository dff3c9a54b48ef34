// What a capture copies for a fiber process, and where its fiber table is.
//
//   auto root = locate_debug_root(mappings);                  // before stopping: symbol lookup on the mapped files
//   capture_live(pid, options, [&](const Memory& live, const auto& threads) {
//     table = read_fiber_table(live, *root, ...);              // read while stopped, from the live target
//     return plan_regions(table ? &*table : nullptr, threads, mappings);
//   });
//
// plan_regions asks for the root and the chunks, the used part of every live fiber's stack, the used part of
// every thread's stack and the system stacks of workers in foreign calls. Each stack is capped at
// PlanOptions::max_stack_bytes, keeping the innermost part (where unwinding starts). target::plan_copies clips the
// ranges to readable mappings and applies the capture-wide caps.
//
// Pre-copy (how session::inspect_live keeps the pause short with many fibers): plan_stack_precopy picks, from a
// scan of the running target's table, the parked fibers whose stacks can be copied before the stop; inside the
// stop, precopy_still_valid keeps a copy only if the fiber's record has the same even seqlock value and the fiber is
// still parked without transitions. Every switch away from a fiber and every state change opens the record's
// seqlock window, so such a fiber was not resumed in between: the frames in the copy (return addresses, saved
// registers, its own locals) are the frames it has. What is weaker: bytes other fibers write into a parked fiber's
// stack (an intrusive wait node, a value handed over) may be older in the copy than at the stop.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "binary/symbolizer.h"
#include "fibers/fiber_table.h"
#include "target/remote_address.h"
#include "target/snapshot.h"

namespace fiberscope::fibers {

struct PlanOptions {
  std::uint64_t red_zone_bytes = 128;          // System V: leaf functions may use 128 bytes below sp
  std::uint64_t max_stack_bytes = 4u << 20;    // per stack, innermost part kept (fiber stacks default to 256 KiB)
  std::uint64_t max_chunk_bytes = 64u << 20;   // per chunk of the fiber table
};

// Finds `fiberscope_debug_root` in the files mapped by the process (.symtab, else .dynsym, so stripped binaries
// work) and returns its address in the process. Fails with "no fiber table found (not built on fiberscope
// runtime?)" when no mapped file defines it.
Result<target::RemoteAddress> locate_debug_root(const binary::Symbolizer& symbols);

// A guess, made before the target is stopped, of how many bytes plan_regions will ask to copy: every live fiber's
// record plus `used_stack_bytes` of its stack. Pass it as target::CaptureOptions::expected_copy_bytes so the
// copy's memory is faulted in before the pause rather than inside it. Reads only the root; 0 if it is unusable.
std::uint64_t expected_copy_bytes(const target::Memory& running, target::RemoteAddress root,
                                  std::uint64_t used_stack_bytes = 1024);

// The lowest stack pointer known for `fiber` inside its stack: the saved context for parked fibers, the thread's
// rsp for running ones, syscall_sp and the transition records for fibers in a syscall or foreign call.
std::optional<std::uint64_t> lowest_known_sp(const FiberRecord& fiber, const FiberTable& table,
                                             const std::vector<target::ThreadState>& threads);

// The thread running on `worker`, if the capture has its registers.
const target::ThreadState* thread_of(const WorkerRecord& worker, const std::vector<target::ThreadState>& threads);

// The part of a parked fiber's stack that holds its frames: [sp, hi), keeping the innermost max_stack_bytes, where
// sp is its saved context's. No red zone: nothing below a parked fiber's sp is live (the switch returned there).
// Empty if sp lies outside [lo, hi].
std::optional<target::AddressRange> parked_stack_part(std::uint64_t sp, target::AddressRange stack,
                                                      const PlanOptions& options = {});

// A parked fiber whose stack is copied before the stop: its record, the seqlock value read then, and the range.
struct ParkedStack {
  target::RemoteAddress record;
  std::uint64_t sequence = 0;
  target::AddressRange used;
};

// What to copy before stopping the target: the stacks (sorted by record address) and the table's own memory (root
// and chunks, copied first thing inside the stop: target::CaptureOptions::copy_first).
struct StackPrecopyPlan {
  std::vector<ParkedStack> stacks;
  std::vector<target::AddressRange> table_ranges;
  std::size_t live_fibers = 0;  // live records in the scan, pre-copied or not
};

// Picks the fibers of `scan` that look parked (even seqlock value, runnable or waiting, no transitions, sp inside
// a plausible stack). A wrong guess costs only a copy: nothing is trusted before precopy_still_valid.
StackPrecopyPlan plan_stack_precopy(const StackScan& scan, const PlanOptions& options = {});

// The reconcile rule: true if `now`, the fiber's record read inside the stop, proves the copy of `before` is still
// its stack (same record, same even seqlock value, runnable or waiting, no transitions, same used range).
bool precopy_still_valid(const ParkedStack& before, const StackView& now, const PlanOptions& options = {});

// The address ranges to copy (possibly overlapping; plan_copies merges them). `table` may be null (no runtime).
std::vector<target::AddressRange> plan_regions(const FiberTable* table,
                                               const std::vector<target::ThreadState>& threads,
                                               const std::vector<target::Mapping>& mappings,
                                               const PlanOptions& options = {});

}  // namespace fiberscope::fibers
