// FiberTable: the runtime's fibers and workers as the debug ABI publishes them, decoded and validated.
//
//   auto table = read_fiber_table(memory, root_address, {.target_stopped = true});
//   if (!table) -> the root itself is unusable (bad magic, ABI version or struct size mismatch, unreadable)
//   for (auto& fiber : table->fibers) ...   // good records
//   for (auto& error : table->errors) ...   // records, chunks or transition chains that could not be used
//
// Everything is read through target::Memory and treated as hostile: chunk lists are walked with caps and cycle
// detection, each record is checked on its own (a bad one becomes a TableError, the rest still reads), and the
// seqlocks decide whether a record is consistent. No debug-ABI struct leaks out of this header: the model below
// is plain C++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "target/memory.h"
#include "target/remote_address.h"

namespace fiberscope::fibers {

enum class FiberState : std::uint8_t { free, runnable, running, syscall, foreign, waiting, dead };
enum class WaitReason : std::uint8_t { none, sleep, chan_send, chan_receive, mutex, condvar, waitgroup, locked_thread };
enum class WorkerState : std::uint8_t { unused, idle, running, syscall, locked, exited };

// "waiting", "chan receive", "idle": the names the runtime's header gives.
std::string_view state_name(FiberState state);
std::string_view wait_reason_name(WaitReason reason);
std::string_view worker_state_name(WorkerState state);

// How far a record can be trusted, from its seqlock.
enum class Integrity : std::uint8_t {
  consistent,     // even sequence number, unchanged across the read
  in_transition,  // stopped target caught its writer mid-update: used as is, but fields may disagree
  torn,           // --no-stop: the writer kept changing it through every retry; fields may disagree
  changed,        // --no-stop: consistent when read, but rewritten before its stack was copied
};
std::string_view integrity_name(Integrity integrity);

// The registers a context switch preserves: where a parked fiber resumes.
struct SavedContext {
  std::uint64_t pc = 0, sp = 0, rbp = 0, rbx = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
};

// One stack switch of a fiber (see fiberscope_transition in the debug ABI, and fibers/go/go_reader.h for Go's).
struct Transition {
  enum class Kind : std::uint8_t { foreign_call, callback };
  target::RemoteAddress address;  // where the record lives (inside the trampoline's frame)
  Kind kind = Kind::foreign_call;
  std::uint32_t depth = 0;        // 1 for the outermost
  std::uint64_t from_sp = 0, from_pc = 0, from_fp = 0, to_sp = 0;
  std::uint64_t saved_syscall_pc = 0, saved_syscall_sp = 0;  // callbacks only
  // Empty for runtime_lib, whose switches are where a walk leaves a stack. Go's are found by code: the walk's piece
  // ends at the first frame whose pc lies in this function (asmcgocall, cgocallback), and that same frame goes on
  // on the other stack at switch_sp, with the registers the piece recovered for it.
  target::AddressRange switch_function;
  std::uint64_t switch_sp = 0;
};

struct FiberRecord {
  std::size_t index = 0;               // position in the table (chunk first_index + slot)
  target::RemoteAddress address;       // of the record
  Integrity integrity = Integrity::consistent;
  std::uint64_t sequence = 0;          // the seqlock value the record was read at
  std::uint64_t id = 0;
  FiberState state = FiberState::free;
  WaitReason wait_reason = WaitReason::none;
  std::uint64_t wait_object = 0;
  std::string name;
  target::AddressRange stack;          // usable stack [lo, hi), grows down from hi
  std::uint64_t guard_lo = 0;
  SavedContext context;                // valid while not running on a worker
  std::uint64_t syscall_pc = 0, syscall_sp = 0;
  std::uint64_t state_since_ns = 0;
  std::optional<std::uint32_t> worker_index;  // the worker running it or locked to it
  std::uint32_t foreign_depth = 0;
  target::RemoteAddress transition_top;
  std::uint64_t spawn_pc = 0, start_pc = 0, parent_id = 0, created_ns = 0;
  bool is_main = false;
  bool is_locked = false;
  std::vector<Transition> transitions;  // innermost first, read from transition_top through `prev`
  std::string transition_error;         // why the chain stopped early, empty if it did not
  // The runtime's own words, where it has finer ones than the enums (Go: "GC sweep wait", "preempted"); empty
  // otherwise. wait_reason_label / state_label below pick them first.
  std::string wait_reason_text;
  std::string state_text;

  bool is_live() const { return state != FiberState::free && state != FiberState::dead; }
};

// What the header of `fiber` says: the runtime's own words when it has them, else the enum's name.
std::string_view wait_reason_label(const FiberRecord& fiber);
std::string_view state_label(const FiberRecord& fiber);

struct WorkerRecord {
  std::size_t index = 0;
  target::RemoteAddress address;
  Integrity integrity = Integrity::consistent;
  int tid = 0;
  WorkerState state = WorkerState::unused;
  std::uint64_t current_fiber = 0;        // id, 0 if none
  target::RemoteAddress current_record;   // that fiber's record, null if none
  target::AddressRange system_stack;      // may be empty if the runtime did not publish it
  target::AddressRange signal_stack;      // where its signal handlers run (Go: the M's gsignal), empty if unknown
  std::uint64_t state_since_ns = 0;
  std::optional<std::uint32_t> processor;
};

// A part of the table that could not be used; everything else still reads.
struct TableError {
  enum class Where : std::uint8_t { fiber_record, worker_record, fiber_chunk, worker_chunk, transition };
  Where where = Where::fiber_record;
  std::size_t index = 0;          // record index (or chunk number for chunks)
  target::RemoteAddress address;  // of the record or chunk
  std::uint64_t fiber_id = 0;     // transitions: the fiber whose chain broke
  std::string message;            // "fiber record 12 at 0x7f..: stack_lo 0x.. >= stack_hi 0x.."
};

struct FiberTable {
  // Which runtime the table comes from, as data for the layers above (they never test for a runtime): what a
  // fiber is called ("fiber", "goroutine"), whether fibers have names, the runtime and its version.
  std::string fiber_noun = "fiber";
  bool fibers_named = true;
  std::string runtime = "runtime_lib";
  // Where the liveness of a suspended frame's variables comes from: what the runtime's own readers (a collector,
  // a traceback) trust. runtime_lib: DWARF locations; Go: the functions' stack maps (its garbage collector's).
  enum class FrameLiveness : std::uint8_t { dwarf_locations, go_stack_maps };
  FrameLiveness frame_liveness = FrameLiveness::dwarf_locations;
  // The runtime's function that checks a saved syscall frame on the way out (Go's "syscall frame is no longer
  // valid"); its CFA is the caller sp it compares with. Empty: the debug ABI's (FIBERSCOPE_EXITSYSCALL_SYMBOL).
  std::string syscall_exit_check;
  target::RemoteAddress root_address;  // the debug ABI's root; null for Go
  std::uint32_t abi_version = 0;
  std::uint64_t fibers_live = 0, fibers_created = 0;
  std::uint64_t clock_ns = 0;
  std::uint64_t stack_bytes = 0, guard_bytes = 0;
  std::uint32_t processors = 0;
  std::uint32_t faults = 0;  // FIBERSCOPE_FAULT_* bits
  bool running = false;
  std::vector<FiberRecord> fibers;    // every used, valid record (dead ones included), table order
  std::vector<WorkerRecord> workers;  // every valid worker record
  std::vector<TableError> errors;
  std::vector<target::AddressRange> chunk_ranges;  // header + used records of every chunk read (for captures)

  const WorkerRecord* worker(std::uint32_t index) const;
  // The worker running `fiber` or locked to it: the record's own worker index, else the worker whose
  // current_record names it (a fiber in a syscall has handed its worker index back but keeps the thread).
  const WorkerRecord* worker_of(const FiberRecord& fiber) const;
  const FiberRecord* fiber_by_id(std::uint64_t id) const;
};

// What a fiber record says about its stack, decoded without the rest (name, transitions): enough to copy a parked
// fiber's stack before a stop, and to tell inside the stop whether that copy still holds (fibers/stack_precopy.h).
struct StackView {
  target::RemoteAddress record;     // address of the record
  std::uint64_t sequence = 0;       // its seqlock value
  FiberState state = FiberState::free;
  target::AddressRange stack;       // [stack_lo, stack_hi) as published (not validated)
  std::uint64_t context_sp = 0;     // the saved context's sp
  bool has_transitions = false;     // transition_top or foreign_depth set: stacks cross, never pre-copied
};

// Caps on what a hostile table can make the reader do.
struct ReadOptions {
  bool target_stopped = true;          // false: the target runs (--no-stop), torn records are retried
  unsigned torn_retries = 4;           // re-reads of a torn record before it is marked torn
  std::size_t max_chunks = 4096;       // per list
  std::size_t max_fiber_records = 2'000'000;
  std::size_t max_worker_records = 4096;
  std::uint32_t max_chunk_capacity = 1u << 20;
  std::size_t max_transition_depth = 64;
  std::uint64_t max_stack_bytes = 1ull << 30;  // a fiber stack claiming more is invalid
  // Fiber records for which this returns true are not decoded into FiberTable::fibers (nor checked): the capture's
  // planner leaves out fibers whose stacks were copied before the stop and reads the whole table after it.
  std::function<bool(const StackView&)> leave_out = nullptr;
};

// Reads the table whose root is at `root`. Fails only when the root is unusable; bad chunks, records and
// transition chains become entries of FiberTable::errors.
Result<FiberTable> read_fiber_table(const target::Memory& memory, target::RemoteAddress root,
                                    const ReadOptions& options = {});

// The table's memory and its fiber records' stack views, without decoding the records: what a capture needs to
// copy parked fibers' stacks before stopping the target.
struct StackScan {
  std::vector<StackView> fibers;                   // every used record with a fiber state, table order
  std::vector<target::AddressRange> table_ranges;  // the root and every chunk, with room for records added since
};

// Reads the table at `root` once, as is (no seqlock retries: whoever uses a view decides whether to trust it).
// Fails, like read_fiber_table, only when the root is unusable; bad chunks end the walk early.
Result<StackScan> scan_fiber_stacks(const target::Memory& memory, target::RemoteAddress root,
                                    const ReadOptions& options = {});

// For a table read from a running target (--no-stop): marks `changed` every consistent fiber record whose seqlock
// value in `snapshot` — copied after the table was read, together with the stacks — differs from the one it was
// read at. Such a fiber moved while its stack was being copied, so its record and its stack need not agree.
void mark_records_changed_during_capture(FiberTable& table, const target::Memory& snapshot);

}  // namespace fiberscope::fibers
