// Go's syscall protocol: entersyscall / exitsyscall / reentersyscall, and cgocallback (fiber_callback).
//
// Entering saves the caller's pc, sp and callee-saved registers in the fiber record (syscall_pc/sp + context) so
// a reader can unwind the fiber without its thread, and puts the worker's processor in the "syscall" state for
// the monitor to retake. Exiting first checks that the saved frame is still live (the check Go added for issue
// 7978) and then reacquires a processor.
#include <cstdio>
#include <cstring>

#include "runtime_internal.h"

namespace fiber::detail {
namespace {

[[noreturn, gnu::noinline, gnu::cold]] void syscall_frame_invalid(const FiberHandle* g, std::uint64_t syscall_sp,
                                                                  std::uint64_t caller_sp) {
  char message[256];
  std::snprintf(message, sizeof message,
                "fiber %llu: exitsyscall: syscall frame is no longer valid (syscall_sp=%#llx, caller sp=%#llx, "
                "stack [%#llx, %#llx))",
                static_cast<unsigned long long>(g->id), static_cast<unsigned long long>(syscall_sp),
                static_cast<unsigned long long>(caller_sp), static_cast<unsigned long long>(g->stack.lo),
                static_cast<unsigned long long>(g->stack.hi));
  fatal(message);
}

[[noreturn, gnu::noinline, gnu::cold]] void syscall_sp_outside_stack(const FiberHandle* g, std::uint64_t syscall_sp) {
  char message[256];
  std::snprintf(message, sizeof message,
                "fiber %llu: entersyscall: syscall_sp=%#llx outside the fiber's stack [%#llx, %#llx)",
                static_cast<unsigned long long>(g->id), static_cast<unsigned long long>(syscall_sp),
                static_cast<unsigned long long>(g->stack.lo), static_cast<unsigned long long>(g->stack.hi));
  fatal(message);
}

// entersyscall's fiber half, inside the window its caller opened after storing the saved frame (context,
// syscall_pc/sp): the caller is fiber code, so the record says RUNNING on this worker with no wait reason, and
// only the state and its timestamp change. A foreign call does not lock the fiber: until C code calls back, the
// fiber cannot run anywhere else anyway (Go's cgocall does not lock either; cgocallbackg does).
[[gnu::always_inline]] inline void write_syscall_state(FiberHandle* g, fiberscope_fiber* r, std::uint32_t mode,
                                                       std::uint64_t now) {
  const std::uint32_t state = (mode & kForeignMode) ? FIBERSCOPE_FIBER_FOREIGN : FIBERSCOPE_FIBER_SYSCALL;
  if (get(r->state) == FIBERSCOPE_FIBER_RUNNING) [[likely]] {
    put(r->state, state);
    put_if_changed(r->state_since_ns, now);
  } else {
    write_fiber_state(g, state, FIBERSCOPE_WAIT_NONE, nullptr);
  }
}

// entersyscall's worker half: puts the processor in the syscall state for the monitor to retake. The worker record
// is left as it is (RUNNING the fiber, with the processor it had): the fiber record says SYSCALL or FOREIGN, as
// Go's G does while its M publishes nothing (debug_abi.h). Returns where a foreign call's system-stack frames go.
[[gnu::always_inline]] inline ForeignTarget* worker_enter_syscall(Worker* m) {
  Processor* p = m->p;
  m->p = nullptr;
  put_if_changed(m->oldp, p);  // the same processor call after call
  const std::uint64_t status = processor_status(++p->syscall_tick, kProcessorSyscall);
  m->syscall_status = status;
  p->status.store(status, std::memory_order_release);
  return &m->foreign;
}

// Go's reentersyscall(pc, sp) after a callback: publishes the syscall state with `frame` (the foreign call's saved
// frame) in the window the caller opened, and closes it. The record's context still holds exactly that frame
// unless fiber code in the callback switched or made a nested foreign call, and both of those leave a different
// pc or sp (a switch saves a pc inside the scheduler, a nested call a deeper sp): an equal pc and sp means all
// eight registers are already published.
[[gnu::always_inline]] inline ForeignTarget* reenter_syscall(Worker* m, FiberHandle* g, fiberscope_fiber* r,
                                                             const fiberscope_context& frame) {
  if (frame.sp < g->stack.lo || frame.sp >= g->stack.hi) [[unlikely]] {  // Go's entersyscall_bad
    seq_end(r->seq);
    syscall_sp_outside_stack(g, frame.sp);
  }
  const std::uint64_t now = clock_now();
  if (get(r->context.pc) != frame.pc || get(r->context.sp) != frame.sp) put_context(r->context, frame);
  put(r->syscall_pc, frame.pc);
  put(r->syscall_sp, frame.sp);
  write_syscall_state(g, r, kForeignMode, now);
  seq_end(r->seq);
  return worker_enter_syscall(m);
}

// Go's exitsyscall check (issue 7978): the caller's frame must still be at or above the saved syscall sp, and that
// sp inside the fiber's stack (the record's bounds are the fiber's, published at spawn). The caller runs on the
// fiber's stack, so a syscall sp at or above the caller's is at or above stack_lo: only the top is compared.
// Fails with the record's window closed, so a core shows the fiber as it was.
[[gnu::always_inline]] inline void check_syscall_frame(fiberscope_fiber* r, std::uint64_t caller_sp,
                                                       bool window_open) {
  const std::uint64_t syscall_sp = get(r->syscall_sp);
  if (caller_sp > syscall_sp || syscall_sp >= get(r->stack_hi)) [[unlikely]] {
    if (window_open) seq_end(r->seq);
    syscall_frame_invalid(this_worker()->current, syscall_sp, caller_sp);
  }
}

// Leaves the syscall state: gets the old processor back without a CAS (handshake with the monitor's membarrier)
// or with one CAS, unless the monitor retook it. Then publishes the fiber RUNNING; the worker record was not
// changed by the syscall. `window_open`: the fiber record's window is already open (foreign_call's trampoline or
// fiber_callback opened it); it is closed here.
[[gnu::always_inline]] inline void exit_syscall_state(Worker* m, fiberscope_fiber* r, bool window_open) {
  Processor* p = m->oldp;  // set by the matching entersyscall
  std::uint64_t expected = m->syscall_status;
  const std::uint64_t running = processor_status(processor_tick(expected), kProcessorRunning);
  bool reacquired = false;
  if (sched.asymmetric_fence) [[likely]] {
    p->exiting.store(processor_tick(expected), std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the monitor's membarrier is the CPU fence
    if (p->retake_intent.load(std::memory_order_acquire) == 0 &&
        p->status.load(std::memory_order_acquire) == expected) [[likely]] {
      p->status.store(running, std::memory_order_relaxed);  // the monitor will see `exiting` and keep off
      reacquired = true;
    }
  }
  // Without the handshake (or while the monitor is deciding): one CAS arbitrates with the monitor's.
  if (!reacquired) {
    reacquired = p->status.compare_exchange_strong(expected, running, std::memory_order_acq_rel);
  }
  if (!reacquired) [[unlikely]] {
    if (window_open) seq_end(r->seq);
    exitsyscall_slow(m, m->current);
    return;
  }
  m->p = p;
  const std::uint64_t now = clock_now();
  const std::uint64_t r_seq = window_open ? get(r->seq) : seq_begin(r->seq);
  put(r->state, static_cast<std::uint32_t>(FIBERSCOPE_FIBER_RUNNING));
  put_if_changed(r->state_since_ns, now);
  put(r->syscall_pc, std::uint64_t{0});
  put(r->syscall_sp, std::uint64_t{0});
  seq_end(r->seq, r_seq);
}

}  // namespace

std::uint32_t parse_faults(const char* spec) {
  std::uint32_t faults = 0;
  if (!spec) return 0;
  const char* cursor = spec;
  while (*cursor) {
    const char* end = std::strchr(cursor, ',');
    std::size_t length = end ? static_cast<std::size_t>(end - cursor) : std::strlen(cursor);
    std::string_view name(cursor, length);
    if (name == "stale-syscall-frame") {
      faults |= FIBERSCOPE_FAULT_STALE_SYSCALL_FRAME;
    } else if (name == "undead-args") {
      faults |= FIBERSCOPE_FAULT_UNDEAD_ARGS;
    } else if (!name.empty()) {
      std::fprintf(stderr, "fiberscope: FIBERSCOPE_FAULTS: unknown fault '%.*s' ignored\n",
                   static_cast<int>(name.size()), name.data());
    }
    if (!end) break;
    cursor = end + 1;
  }
  return faults;
}

}  // namespace fiber::detail

using namespace fiber::detail;

// Called by the fiberscope_entersyscall stub, which found the calling fiber's record through t_current_record,
// checked the caller's sp against its stack (Go's entersyscall_bad), opened the record's seqlock window and stored
// the caller's frame (context, syscall_pc/sp); `odd_seq` is the count it stored. Publishes the rest, closes the
// window (foreign_call mode: leaves it for the trampoline) and returns where a foreign call's system-stack frames
// go.
extern "C" void* fiberscope_entersyscall_impl(std::uint32_t mode, fiberscope_fiber* r, std::uint64_t odd_seq) {
  Worker* m = t_worker;  // no switch in between: the plain thread-local read is safe
  const std::uint64_t now = clock_now();
  // One test of the mode here, then each mode's code without any (the callers pass constants).
  if (mode == kForeignCallMode) {
    write_syscall_state(m->current, r, kForeignCallMode, now);  // the trampoline closes the window
  } else {
    write_syscall_state(m->current, r, mode & kForeignMode, now);
    seq_end(r->seq, odd_seq);
  }
  return worker_enter_syscall(m);
}

// The stub's abort when the caller's sp is outside the calling fiber's stack (nothing was published).
extern "C" [[noreturn]] void fiberscope_entersyscall_bad(std::uint64_t caller_sp) {
  syscall_sp_outside_stack(this_worker()->current, caller_sp);
}

// Called by the fiberscope_exitsyscall stub with the caller's stack pointer.
// Named FIBERSCOPE_EXITSYSCALL_SYMBOL in the debug ABI: the inspector finds a fiber's real frame through it.
extern "C" void fiberscope_exitsyscall_impl(std::uint32_t mode, std::uint64_t caller_sp) {
  fiberscope_fiber* r = t_current_record;  // read before any switch the slow path may make
  if (!r) return;
  Worker* m = t_worker;
  if (mode != kForeignCallMode) {
    check_syscall_frame(r, caller_sp, /*window_open=*/false);
    exit_syscall_state(m, r, /*window_open=*/false);
    return;
  }
  // foreign_call: the trampoline left the window open after the unlink.
  check_syscall_frame(r, caller_sp, /*window_open=*/true);
  exit_syscall_state(m, r, /*window_open=*/true);
}

// fiber_callback, first half (on the system stack): where on the fiber stack the callback's frames may start.
extern "C" std::uint64_t fiberscope_callback_stack() {
  Worker* m = this_worker();
  FiberHandle* g = m ? m->current : nullptr;
  if (!g || get(g->record->state) != FIBERSCOPE_FIBER_FOREIGN) {
    fatal("fiber_callback called outside fiber::foreign_call");
  }
  const auto* top = reinterpret_cast<const fiberscope_transition*>(get(g->record->transition_top));
  if (!top || top->kind != FIBERSCOPE_TRANSITION_FOREIGN_CALL) fatal("fiber_callback: no foreign call to return to");
  // The foreign trampoline's frame extends 16 bytes below its CFA (from_sp); keep a red zone below that too.
  return (top->from_sp - 16 - 128) & ~std::uint64_t{15};
}

// fiber_callback, second half (on the fiber stack, below the foreign call's frame): Go's cgocallbackg.
extern "C" long fiberscope_callback_run(fiberscope_transition* transition, long (*fn)(void*), void* arg,
                                        std::uint64_t from_sp, std::uint64_t from_pc, std::uint64_t from_fp) {
  Worker* m = this_worker();
  FiberHandle* g = m->current;
  fiberscope_fiber* r = g->record;
  // The 7978 fix: keep the foreign call's syscall frame aside and restore exactly it afterwards.
  fiberscope_context saved_frame;
  saved_frame.pc = get(r->context.pc);
  saved_frame.sp = get(r->context.sp);
  saved_frame.rbp = get(r->context.rbp);
  saved_frame.rbx = get(r->context.rbx);
  saved_frame.r12 = get(r->context.r12);
  saved_frame.r13 = get(r->context.r13);
  saved_frame.r14 = get(r->context.r14);
  saved_frame.r15 = get(r->context.r15);
  const std::uint64_t saved_syscall_pc = get(r->syscall_pc);
  const std::uint64_t saved_syscall_sp = get(r->syscall_sp);

  put(transition->prev, get(r->transition_top));
  put(transition->kind, static_cast<std::uint32_t>(FIBERSCOPE_TRANSITION_CALLBACK));
  put(transition->depth, get(r->foreign_depth) + 1);
  put(transition->from_sp, from_sp);
  put(transition->from_pc, from_pc);
  put(transition->from_fp, from_fp);
  put(transition->to_sp, reinterpret_cast<std::uint64_t>(transition));
  put(transition->saved_syscall_pc, saved_syscall_pc);
  put(transition->saved_syscall_sp, saved_syscall_sp);
  // One window for linking the transition and leaving the syscall state: exit_syscall_state closes it.
  seq_begin(r->seq);
  put(r->transition_top, reinterpret_cast<std::uint64_t>(transition));
  put(r->foreign_depth, get(r->foreign_depth) + 1);
  // The callback's fiber code may park, but its C frames below stay on this worker's system stack: lock the fiber
  // to the worker for the outermost callback (Go's cgocallbackg locks the M). Before exit_syscall_state, whose
  // slow path must already park it in place.
  if (g->callback_depth == 0) {
    g->locked_to = m;
    put(r->flags, get(r->flags) | FIBERSCOPE_FIBER_FLAG_LOCKED);
  }

  // Nested foreign calls from the callback run below the C frames now on the system stack (fiber_callback's
  // frame is 48 bytes under from_sp).
  const std::uint64_t outer_system_sp = m->foreign.system_sp;
  m->foreign.system_sp = (from_sp - 48 - 128) & ~std::uint64_t{15};
  ++g->callback_depth;
  check_syscall_frame(r, reinterpret_cast<std::uint64_t>(transition), /*window_open=*/true);
  exit_syscall_state(m, r, /*window_open=*/true);

  long result = fn(arg);

  m = this_worker();  // the fiber is locked to this worker; re-read anyway, it is a thread-local
  --g->callback_depth;
  m->foreign.system_sp = outer_system_sp;
  // Unlink first (in the same window as the re-entry), so a reader never sees the syscall state with the finished
  // callback still on the chain.
  seq_begin(r->seq);
  put(r->transition_top, get(transition->prev));
  put(r->foreign_depth, get(r->foreign_depth) - 1);
  if (g->callback_depth == 0) {  // back to C code only: it runs on this worker without the lock
    g->locked_to = nullptr;
    put(r->flags, get(r->flags) & ~FIBERSCOPE_FIBER_FLAG_LOCKED);
  }
  if (sched.faults & FIBERSCOPE_FAULT_STALE_SYSCALL_FRAME) [[unlikely]] {
    // The 7978 bug on purpose: a plain entersyscall saves *this* frame, which is popped as soon as we return.
    seq_end(r->seq);
    fiberscope_entersyscall(kForeignMode);
  } else {
    // reentersyscall(saved pc, saved sp): the frame as the callback's own transition record kept it.
    saved_frame.pc = get(transition->saved_syscall_pc);
    saved_frame.sp = get(transition->saved_syscall_sp);
    reenter_syscall(m, g, r, saved_frame);
  }
  return result;
}
