// fiber::foreign_call, Go's cgocall: entersyscall at pc X, then the trampoline at pc Y runs C code on the
// worker's system stack. This file is always compiled with -O2 -g (see CMakeLists.txt) because the inspector's
// stale-argument check compares the DWARF locations of `fn` and `arg` at X and Y in exactly this code.
//
// foreign_call keeps both arguments alive past Y (Go's KeepAlive fix for issue 17785), so their locations agree
// at X and Y. foreign_call_without_keepalive is the same function without that fix: FIBERSCOPE_FAULTS=undead-args
// routes every call through it so the inspector can be tested against the real bug.
#include "runtime_internal.h"

namespace fiber::detail {

[[gnu::noinline]] long foreign_call_without_keepalive(long (*fn)(void*), void* arg) {
  void* target = fiberscope_entersyscall(kForeignCallMode);  // X
  if (!target) return fn(arg);
  long result = fiberscope_foreign_trampoline(fn, arg, target);  // Y
  fiberscope_exitsyscall(kForeignCallMode);
  return result;
}

}  // namespace fiber::detail

namespace fiber {

[[gnu::noinline]] long foreign_call(long (*fn)(void*), void* arg) {
  if (__builtin_expect(detail::sched.faults & FIBERSCOPE_FAULT_UNDEAD_ARGS, 0)) {
    return detail::foreign_call_without_keepalive(fn, arg);
  }
  void* target = fiberscope_entersyscall(detail::kForeignCallMode);  // X
  if (!target) return fn(arg);
  long result = fiberscope_foreign_trampoline(fn, arg, target);  // Y
  asm volatile("" : : "r"(fn), "r"(arg));  // KeepAlive(fn, arg): live, in the same place, at X and at Y
  fiberscope_exitsyscall(detail::kForeignCallMode);
  return result;
}

}  // namespace fiber
