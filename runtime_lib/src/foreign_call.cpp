// fiber::foreign_call, Go's cgocall: entersyscall at pc X, then the trampoline at pc Y runs C code on the
// worker's system stack. This file is always compiled with -O2 -g (see CMakeLists.txt) because the inspector's
// stale-argument check compares the DWARF locations of the frame's variables at X and Y in exactly this code.
//
// foreign_call keeps both arguments alive past Y (Go's KeepAlive fix for issue 17785), so their locations agree
// at X and Y. foreign_call_without_keepalive is the same function without that fix: FIBERSCOPE_FAULTS=undead-args
// routes every call through it so the inspector can be tested against the real bug. Neither has any other named
// local live at X (the trampoline target is passed straight from entersyscall's return register), so a healthy
// call produces no finding.
#include "runtime_internal.h"

namespace fiber::detail {

[[gnu::noinline]] long foreign_call_without_keepalive(long (*fn)(void*), void* arg) {
  long result = fiberscope_foreign_trampoline(fn, arg, fiberscope_entersyscall(kForeignCallMode));  // X, then Y
  // The 17785 bug: past Y the arguments are dead, so the compiler may reuse their registers (it does here), and
  // a reader that starts from the saved pc X believes they are still live and reads whatever is there now.
  // `result` stays in its register through the asm so that nothing is scheduled between Y and the reuse.
  asm volatile("" : "+r"(result) : : "rbx", "rbp", "r12", "r13", "r14", "r15");
  fiberscope_exitsyscall(kForeignCallMode);
  return result;
}

}  // namespace fiber::detail

namespace fiber {

[[gnu::noinline]] long foreign_call(long (*fn)(void*), void* arg) {
  if (__builtin_expect(detail::sched.faults & FIBERSCOPE_FAULT_UNDEAD_ARGS, 0)) {
    return detail::foreign_call_without_keepalive(fn, arg);
  }
  long result = fiberscope_foreign_trampoline(fn, arg, fiberscope_entersyscall(detail::kForeignCallMode));  // X, Y
  asm volatile("" : : "r"(fn), "r"(arg));  // KeepAlive(fn, arg): live, in the same place, at X and at Y
  fiberscope_exitsyscall(detail::kForeignCallMode);
  return result;
}

}  // namespace fiber
