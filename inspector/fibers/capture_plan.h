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

// The address ranges to copy (possibly overlapping; plan_copies merges them). `table` may be null (no runtime).
std::vector<target::AddressRange> plan_regions(const FiberTable* table,
                                               const std::vector<target::ThreadState>& threads,
                                               const std::vector<target::Mapping>& mappings,
                                               const PlanOptions& options = {});

}  // namespace fiberscope::fibers
