// Building the report model of a dump from a snapshot: the fiber table's records, each fiber's stitched stack,
// each thread's native stack, all symbolized with arguments. Composition only: decoding lives in fibers/,
// unwinding in unwind/, symbols in binary/ (through ModuleMap), printing in report/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "session/module_map.h"
#include "fibers/fiber_table.h"
#include "report/dump.h"
#include "target/snapshot.h"
#include "unwind/unwinder.h"

namespace fiberscope::session {

struct BuildOptions {
  std::optional<std::uint64_t> only_fiber;  // --fiber ID: that fiber alone, no threads
  std::size_t max_depth = 1024;             // --depth N: frames per stack (inlined frames count)
  // false: fiber frames get no arguments (args_known stays false; threads keep theirs), and fibers parked at
  // the same place share one FrameList. Arguments are most of the cost and memory of a dump with many fibers,
  // and reporters get them one fiber at a time (FiberArgsReader) for the fibers they print with arguments.
  bool fiber_args = true;
};

// The dump of `snapshot`. `table` is null when the process has no usable fiber table.
report::Dump build_dump(const target::Snapshot& snapshot, const fibers::FiberTable* table, ModuleMap& modules,
                        const BuildOptions& options);

// One fiber's stack with arguments at a time, from the snapshot a dump was built from with fiber_args = false:
// what a reporter prints for a fiber it shows alone (report::FiberStackSource) and what the ui's details panel
// shows, without ever holding every fiber's arguments at once. The snapshot, table and modules must outlive it.
class FiberArgsReader {
 public:
  FiberArgsReader(const target::Snapshot& snapshot, const fibers::FiberTable* table, ModuleMap& modules,
                  const BuildOptions& options);

  // Fiber `fiber_id`'s stack unwound and symbolized again with arguments, as build_dump with fiber_args = true
  // gives it; empty when the table has no live fiber with that id, or more than one.
  std::optional<report::Stack> stack_with_args(std::uint64_t fiber_id);

 private:
  const target::Snapshot& snapshot_;
  const fibers::FiberTable* table_;
  ModuleMap& modules_;
  std::size_t max_depth_;
  unwind::Unwinder unwinder_;
  std::unordered_map<std::uint64_t, const fibers::FiberRecord*> record_of_;  // on the first call; null: ambiguous
  std::vector<report::Frame> scratch_;                                       // reused from fiber to fiber
};

}  // namespace fiberscope::session
