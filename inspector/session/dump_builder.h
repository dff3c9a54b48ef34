// Building the report model of a dump from a snapshot: the fiber table's records, each fiber's stitched stack,
// each thread's native stack, all symbolized with arguments. Composition only: decoding lives in fibers/,
// unwinding in unwind/, symbols in binary/ (through ModuleMap), printing in report/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "session/module_map.h"
#include "fibers/fiber_table.h"
#include "report/dump.h"
#include "target/snapshot.h"

namespace fiberscope::session {

struct BuildOptions {
  std::optional<std::uint64_t> only_fiber;  // --fiber ID: that fiber alone, no threads
  std::size_t max_depth = 1024;             // --depth N: frames per stack (inlined frames count)
  // false: fiber frames get no arguments (args_known stays false; threads keep theirs), and fibers parked at
  // the same place share one FrameList. Arguments are most of the cost and memory of a dump with many fibers,
  // and grouped text does not print them (add_fiber_args fills in the fibers it prints one by one).
  bool fiber_args = true;
};

// The dump of `snapshot`. `table` is null when the process has no usable fiber table.
report::Dump build_dump(const target::Snapshot& snapshot, const fibers::FiberTable* table, ModuleMap& modules,
                        const BuildOptions& options);

// In a dump built with fiber_args = false: unwinds and symbolizes the fibers `fiber_ids` again, with arguments
// (their stacks then share nothing). Ids not in the dump are skipped.
void add_fiber_args(report::Dump& dump, std::span<const std::uint64_t> fiber_ids, const target::Snapshot& snapshot,
                    const fibers::FiberTable* table, ModuleMap& modules, const BuildOptions& options);

}  // namespace fiberscope::session
