// Unwinder: from a thread's or fiber's registers to its list of frames, through target memory and module CFI.
//
//   Unwinder unwinder(modules);                                  // one per snapshot: it caches CFI rows by pc
//   StackRegion stacks[] = {{fiber_stack, StackKind::fiber, 17}, {thread_stack, StackKind::system, tid}};
//   UnwindResult result = unwinder.unwind(registers, *snapshot.memory, {.stacks = stacks});
//   for (const Frame& f : result.frames) symbolize(f.lookup_pc());
//   if (!result.complete()) print(result.stop_message);        // e.g. "no CFI for pc 0x401136"
//
// Each step uses CFI (.eh_frame, then .debug_frame, then a Go binary's pclntab frame sizes); a return address at the
// first byte of a signal trampoline (libc's __restore_rt, Go's runtime.sigreturn: recognised by their code) reads
// the interrupted registers from the rt_sigframe; where nothing else applies it follows the rbp chain. A
// return-address rule of "undefined" (`.cfi_undefined rip`) or a return address of 0 ends the stack cleanly, and so
// do Go's own ends of stacks: a TOPFRAME function (goexit, mstart, rt0_go; not sigtramp, whose caller is the
// kernel's signal frame), or a caller frame in a function that switches stacks (SPWRITE: mcall, systemstack,
// asmcgocall, morestack), where this stack's frames end and the logical stack continues on another one (the fiber
// readers stitch those). Every step is bounded: reads go through Memory, the CFA must stay inside the known stacks
// and move up within one stack (moving to another known stack is a legitimate stack switch; past a signal frame, so
// is moving to an unlisted one, where sp must move up too), a repeated (pc, sp) is a loop, and the depth is capped.
// A stopped unwind keeps the frames it found and says why. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "target/memory.h"
#include "target/registers.h"
#include "target/remote_address.h"
#include "unwind/cfi_row.h"
#include "unwind/module_cfi.h"

namespace fiberscope::unwind {

enum class StackKind : std::uint8_t { unknown, system, fiber };

// A stack the caller knows about: frames are labelled with the one their sp lies in.
struct StackRegion {
  target::AddressRange range;
  StackKind kind = StackKind::unknown;
  std::uint64_t id = 0;  // fiber id or thread id, as the caller likes
};

// How a frame's registers were recovered from its callee.
enum class FrameMethod : std::uint8_t {
  start,          // frame 0: the registers the unwind started from
  eh_frame,       // the callee's .eh_frame row
  debug_frame,    // the callee's .debug_frame row
  go_pclntab,     // the callee's frame size from its Go pclntab (pcsp), where no CFI covers a Go function
  frame_pointer,  // the callee's rbp chain (no CFI covered the callee's pc)
  signal_frame,   // the rt_sigframe below a signal trampoline that no CFI describes
};

struct Frame {
  target::RemoteAddress pc;
  // True for caller frames: pc is a return address and lookups (CFI, symbols, lines) use pc - 1. False for frame 0
  // and for a frame interrupted by a signal, whose pc is the exact instruction.
  bool pc_is_return_address = false;
  target::RemoteAddress cfa;            // null when not known (the unwind stopped at this frame before finding it)
  target::RemoteAddress sp;
  target::Registers registers;          // the registers known in this frame (callee-saved ones the CFI recovered)
  FrameMethod recovered_by = FrameMethod::start;
  bool is_signal_trampoline = false;    // the kernel's sigreturn trampoline: its caller is the interrupted code
  StackKind stack_kind = StackKind::unknown;
  std::uint64_t stack_id = 0;
  bool on_known_stack = false;          // sp lies in one of the caller's StackRegions

  // The address to look up CFI, symbols and line tables with. A signal trampoline is entered by the kernel's
  // "return" to its first byte: that byte names it, the byte before belongs to some other function.
  target::RemoteAddress lookup_pc() const { return pc_is_return_address && !is_signal_trampoline ? pc - 1 : pc; }
};

enum class StopReason : std::uint8_t {
  end_of_stack,       // clean: undefined return address (.cfi_undefined rip) or a return address of 0
  no_cfi,             // no CFI covers the pc and neither fallback applies
  bad_cfi,            // the CFI covering the pc is malformed or cannot be applied
  missing_register,   // a rule needs a register whose value is not known in this frame
  read_failed,        // target memory needed by a rule could not be read
  cfa_outside_stack,  // the CFA left every known stack
  cfa_not_increasing, // the CFA moved down within one stack
  loop,               // the same (pc, sp) came back
  max_depth,          // the depth cap was reached
};

// "end of stack", "no CFI", ... for reports.
const char* stop_reason_name(StopReason reason);

struct UnwindResult {
  std::vector<Frame> frames;
  StopReason stop_reason = StopReason::end_of_stack;
  std::string stop_message;  // empty for a clean end; otherwise what stopped the unwind, with addresses

  bool complete() const { return stop_reason == StopReason::end_of_stack; }
};

struct UnwindOptions {
  std::size_t max_depth = 1024;
  std::span<const StackRegion> stacks;  // the known stacks
  bool require_cfa_in_stacks = true;    // stop when a CFA leaves every known stack (no effect if `stacks` is empty)
  bool use_frame_pointers = true;       // follow rbp where no CFI covers a pc
};

// Why a step could not recover the caller.
struct StepError {
  StopReason reason = StopReason::bad_cfi;
  std::string message;
};

// One step from a frame: the frame's own CFA and its caller (none at a clean end of the stack).
struct StepOutcome {
  target::RemoteAddress cfa;
  bool frame_is_signal_trampoline = false;
  std::optional<Frame> caller;  // stack labels are left for the caller of step() to fill
};

class Unwinder {
 public:
  explicit Unwinder(const CfiSource& modules) : modules_(modules) {}

  // Unwinds from `start` (rip and rsp at least) reading `memory`.
  UnwindResult unwind(const target::Registers& start, const target::Memory& memory,
                      const UnwindOptions& options = {});

  // Recovers the caller of `frame` (no bounds checks beyond the reads): the building block of unwind() and of
  // stack stitching.
  std::expected<StepOutcome, StepError> step(const Frame& frame, const target::Memory& memory,
                                             bool use_frame_pointers = true);

  // The CFI row that describes target address `lookup_pc`, computed once per pc; an Error names what is missing
  // or malformed. The row lives until the Unwinder is destroyed.
  Result<const CfiRow*> row_for(std::uint64_t lookup_pc);

  struct CacheStats {
    std::size_t entries = 0;
    std::size_t hits = 0;
    std::size_t misses = 0;
  };
  CacheStats cache_stats() const { return {cache_.size(), hits_, misses_}; }

 private:
  struct CachedRow {
    enum class Status : std::uint8_t { found, no_cfi, error } status = Status::no_cfi;
    CfiRow row;
    const ModuleCfi* module = nullptr;
    FrameMethod method = FrameMethod::eh_frame;
    std::string message;  // no_cfi / error: why
    std::uint8_t go_flag = 0;  // the Go function's funcFlag bits (kGoFuncFlag*), for Go binaries
    bool next_is_signal_trampoline = false;  // lookup_pc + 1 starts a sigreturn trampoline
  };

  const CachedRow& lookup(std::uint64_t lookup_pc);
  CachedRow compute(std::uint64_t lookup_pc) const;
  std::expected<StepOutcome, StepError> step_with_row(const Frame& frame, const CachedRow& cached,
                                                      const target::Memory& memory) const;
  std::optional<std::expected<StepOutcome, StepError>> step_signal_trampoline(const Frame& frame,
                                                                               const ModuleCfi* module,
                                                                               const target::Memory& memory) const;
  // Whether a sigreturn trampoline (libc's __restore_rt, Go's runtime.sigreturn) starts at target address `pc`.
  bool starts_signal_trampoline(std::uint64_t pc, const target::Memory& memory) const;
  std::expected<StepOutcome, StepError> step_frame_pointer(const Frame& frame, const target::Memory& memory) const;

  const CfiSource& modules_;
  std::unordered_map<std::uint64_t, CachedRow> cache_;
  std::size_t hits_ = 0;
  std::size_t misses_ = 0;
};

}  // namespace fiberscope::unwind
