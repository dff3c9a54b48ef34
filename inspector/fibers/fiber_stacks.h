// Where each fiber's stack walk starts, and the walk itself, stitched across foreign calls and callbacks.
//
//   auto start = starting_registers(fiber, table, snapshot.threads);   // thread, saved context or syscall frame
//   auto stack = unwind_fiber(unwinder, fiber, table, snapshot.threads, *snapshot.memory, {.max_depth = 64});
//   for (const unwind::Frame& frame : stack.frames) ... frame.stack_kind says fiber or system stack
//
// A fiber in a foreign call has frames on two stacks: callback frames (fiber stack), C frames (its worker's
// system stack), then the foreign-call frame and its callers (fiber stack), nested to any depth. The unwinder
// walks one piece at a time; where a piece leaves its stack or stops at a trampoline, the walk continues from
// the runtime's transition record (from_sp/from_pc/from_fp). If the CFI itself crossed the switch, its answer is
// cross-checked with the record and a disagreement is noted.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"
#include "fibers/fiber_table.h"
#include "target/memory.h"
#include "target/snapshot.h"
#include "unwind/unwinder.h"

namespace fiberscope::fibers {

struct FiberStart {
  enum class Source : std::uint8_t {
    thread,         // the registers of the worker thread running it
    saved_context,  // a parked fiber's saved context
    syscall_frame,  // syscall_pc / syscall_sp: in a syscall or foreign call with no thread registers
  };
  target::Registers registers;
  Source source = Source::thread;
  int tid = 0;        // the worker thread, 0 if none
  std::string note;   // why a weaker source was used, empty otherwise
};

// The registers the unwind of `fiber` starts from. Fails for dead fibers and when no source is usable.
Result<FiberStart> starting_registers(const FiberRecord& fiber, const FiberTable& table,
                                      const std::vector<target::ThreadState>& threads);

struct FiberStack {
  std::vector<unwind::Frame> frames;  // innermost first; stack_kind is fiber or system
  bool complete = false;              // reached the fiber's bottom frame
  std::string stop_message;           // why not, empty when complete
  bool truncated = false;             // stopped at max_depth
  std::vector<std::string> notes;     // cross-check disagreements, weaker start sources
};

struct FiberUnwindOptions {
  std::size_t max_depth = 1024;
};

// Unwinds `fiber` from its starting registers through every transition.
FiberStack unwind_fiber(unwind::Unwinder& unwinder, const FiberRecord& fiber, const FiberTable& table,
                        const std::vector<target::ThreadState>& threads, const target::Memory& memory,
                        const FiberUnwindOptions& options = {});

}  // namespace fiberscope::fibers
