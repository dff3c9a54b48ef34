// The Go reader: every goroutine and every M of a Go process (Go 1.19 as Debian builds it), decoded into the one
// fiber model (fibers/fiber_table.h) so that stitching, checks and reports never ask which runtime they look at.
//
//   auto runtime = go::load_go_runtime(symbols);     // before the stop: layouts from DWARF, globals from .symtab
//   auto table = go::read_go_table(memory, *runtime, {});   // inside the stop: allgs, allm, waitReasonStrings
//
// Layouts come from the binary's DWARF by member name (runtime.g, runtime.m, runtime.gobuf, runtime.stack), the
// _G* status values from its DW_TAG_constants; a missing member or one of an unexpected size is an error naming
// it and the Go version. Everything read from the target is hostile: lengths are capped, pointers checked, the
// allm list walked with a cap and cycle detection, and a bad goroutine becomes a TableError beside the good ones.
//
// cgo: a goroutine in a cgo call runs C on its M's g0 stack. asmcgocall (asm_amd64.s) saves, 64 bytes below
// g0.sched.sp aligned to 16, the distance from the goroutine's stack top to its sp (40(SP)) and the g (48(SP));
// cgocallback saves the previous g0.sched.sp at 0(SP) of its g0 frame and sets g0.sched.sp to that frame. Their
// chain, m.ncgo levels deep, becomes the record's Transitions (switch_function: asmcgocall, cgocallback), which
// fibers/fiber_stacks.cpp follows to show C frames between the Go frames of callbacks and of the cgo call.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "binary/symbolizer.h"
#include "fibers/fiber_table.h"
#include "target/memory.h"
#include "target/remote_address.h"

namespace fiberscope::fibers::go {

// Where a field lives in a structure: byte offset and size (1, 2, 4 or 8).
struct Field {
  std::uint64_t offset = 0;
  std::uint64_t size_bytes = 0;
  bool operator==(const Field&) const = default;
};

// The members of runtime.g the reader uses.
struct GFields {
  Field goid, status, wait_reason, wait_since, stack_lo, stack_hi, sched_sp, sched_pc, sched_bp, syscall_sp,
      syscall_pc, m, locked_m, go_pc, start_pc, parent_goid;  // parent_goid: Go 1.21+, size 0 before
  bool operator==(const GFields&) const = default;
};

// The members of runtime.m the reader uses.
struct MFields {
  Field id, procid, curg, g0, gsignal, alllink, incgo, ncgo, locked_g;
  bool operator==(const MFields&) const = default;
};

// What the reader needs of one Go binary, resolved before the target is stopped.
struct GoRuntime {
  std::string version;        // "go1.19.8", from the DWARF producer, else from .go.buildinfo
  bool layout_from_dwarf = false;  // false: the binary has no DWARF and the Go version's known layout was used
  std::uint64_t g_size = 0, m_size = 0;
  GFields g;
  MFields m;
  // _Gidle ... _Gpreempted and the _Gscan bit.
  std::uint32_t g_idle = 0, g_runnable = 1, g_running = 2, g_syscall = 3, g_waiting = 4, g_dead = 6,
                g_copystack = 8, g_preempted = 9, g_scan = 0x1000;
  bool status_from_dwarf = false;  // false: the named table of the Go version's runtime2.go was used
  target::RemoteAddress allgs, allglen, allm, wait_reason_strings;
  std::uint64_t wait_reason_count = 0;          // entries of waitReasonStrings ([N]string)
  target::AddressRange asmcgocall, cgocallback;  // code ranges, for the stack switches of cgo
};

// True when a module of `symbols` is a Go program (runtime.buildVersion, or a .go.buildinfo section).
bool is_go_program(binary::Symbolizer& symbols);

// Resolves layouts and addresses from the Go executable among `symbols`' modules. Fails naming what is missing.
// Without DWARF (-ldflags=-w) the layouts of the Go versions the reader knows (go1.19) are used; the symbols
// (runtime.allgs, ...) still come from .symtab, so a binary stripped of it (-s) is refused.
Result<std::shared_ptr<const GoRuntime>> load_go_runtime(binary::Symbolizer& symbols);

struct GoReadOptions {
  std::size_t max_goroutines = 2'000'000;
  std::size_t max_ms = 4096;
  std::uint64_t max_stack_bytes = 1ull << 30;  // a goroutine stack claiming more is invalid
  std::uint32_t max_cgo_depth = 64;            // nested cgo calls followed per goroutine
  // Asked, inside the stop, about each goroutine on no M (so with no cgo transitions) once its state, stack and
  // saved context are decoded: true leaves it out of the table (session::inspect_live: its stack was planned
  // before the stop and nothing of its record changed since, so the pause need not decode it).
  std::function<bool(const FiberRecord&)> leave_out = nullptr;
};

// Reads every goroutine (runtime.allgs) and every M (runtime.allm) through `memory`. Fails only when the roots
// themselves (allgs, allglen, allm) cannot be read; bad goroutines and Ms become FiberTable::errors.
Result<FiberTable> read_go_table(const target::Memory& memory, const GoRuntime& runtime,
                                 const GoReadOptions& options = {});

// What --no-stop costs on Go, for the dump's warnings: the runtime has no seqlock, so a g read while its
// goroutine runs may mix two moments.
inline constexpr const char* kNoStopCaveat =
    "--no-stop on Go: goroutines were read while they ran (Go has no seqlock); a record may mix two moments, and "
    "those seen changing before their stacks were copied are marked 'changed during the capture'";

// For a table read from a running target: marks `changed` every live goroutine whose state, saved sp/pc, m or
// syscall sp in `snapshot` (copied after the table was read, with the stacks) differs from what was read. Such a
// goroutine moved while its stack was being copied: its frames are not unwound over that copy as if it were exact.
void mark_goroutines_changed_during_capture(FiberTable& table, const GoRuntime& runtime,
                                            const target::Memory& snapshot);

}  // namespace fiberscope::fibers::go
