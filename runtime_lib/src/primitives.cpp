// Mutex, CondVar and WaitGroup on top of park/ready. Each keeps its waiters in a FIFO under a spin lock; park's
// continuation releases that lock only after the waiter is fully parked (Go's gopark unlockf).
#include <sched.h>

#include "runtime_internal.h"

namespace fiber::detail {

void SpinLock::backoff(unsigned spins) noexcept {
  if (spins < 128) {
    __builtin_ia32_pause();
  } else {
    sched_yield();  // the holder may have been preempted
  }
}

namespace {

// Readies every node of a detached queue; each node lives on its fiber's stack, so read `next` first.
void ready_all(WaitNode* node) {
  while (node) {
    WaitNode* next = node->next;
    ready(node->fiber);
    node = next;
  }
}

}  // namespace
}  // namespace fiber::detail

namespace fiber {

using namespace detail;

void Mutex::lock() {
  std::uint32_t unlocked = 0;
  if (state_.locked.compare_exchange_strong(unlocked, 1, std::memory_order_acquire)) return;
  WaitNode self;
  self.fiber = current_fiber_or_abort("fiber::Mutex::lock");
  state_.guard.lock();
  unlocked = 0;
  if (state_.locked.compare_exchange_strong(unlocked, 1, std::memory_order_acquire)) {
    state_.guard.unlock();
    return;
  }
  state_.waiters.push(&self);
  park(FIBERSCOPE_WAIT_MUTEX, this, &unlock_spin, &state_.guard);
  // unlock() handed the mutex to us directly: `locked` stayed 1.
}

bool Mutex::try_lock() {
  std::uint32_t unlocked = 0;
  return state_.locked.compare_exchange_strong(unlocked, 1, std::memory_order_acquire);
}

void Mutex::unlock() {
  state_.guard.lock();
  WaitNode* next = state_.waiters.pop();
  if (!next) {
    state_.locked.store(0, std::memory_order_release);
    state_.guard.unlock();
    return;
  }
  FiberHandle* owner = next->fiber;
  state_.guard.unlock();
  ready(owner);  // hand-off: FIFO order, so no waiter starves
}

void CondVar::wait(std::unique_lock<Mutex>& lock) {
  WaitNode self;
  self.fiber = current_fiber_or_abort("fiber::CondVar::wait");
  struct Release {
    SpinLock* guard;
    Mutex* mutex;
  } release{&waiters_.guard, lock.mutex()};
  waiters_.guard.lock();
  waiters_.waiters.push(&self);
  // Both unlocks run once this fiber is parked, so a notify cannot slip in between unlocking and parking.
  park(
      FIBERSCOPE_WAIT_CONDVAR, this,
      [](void* argument) {
        auto* r = static_cast<Release*>(argument);
        SpinLock* guard = r->guard;  // `r` lives on the parked fiber's stack: read it before it may resume
        Mutex* mutex = r->mutex;
        mutex->unlock();
        guard->unlock();
      },
      &release);
  lock.mutex()->lock();
}

void CondVar::notify_one() {
  waiters_.guard.lock();
  WaitNode* node = waiters_.waiters.pop();
  FiberHandle* fiber = node ? node->fiber : nullptr;
  waiters_.guard.unlock();
  if (fiber) ready(fiber);
}

void CondVar::notify_all() {
  waiters_.guard.lock();
  WaitNode* all = waiters_.waiters.head;
  waiters_.waiters = WaitQueue{};
  waiters_.guard.unlock();
  ready_all(all);
}

void WaitGroup::add(long n) {
  state_.guard.lock();
  state_.count += n;
  if (state_.count < 0) {
    state_.guard.unlock();
    fatal("fiber::WaitGroup: negative counter");
  }
  WaitNode* all = nullptr;
  if (state_.count == 0) {
    all = state_.waiters.head;
    state_.waiters = WaitQueue{};
  }
  state_.guard.unlock();
  ready_all(all);
}

void WaitGroup::done() { add(-1); }

void WaitGroup::wait() {
  state_.guard.lock();
  if (state_.count == 0) {
    state_.guard.unlock();
    return;
  }
  WaitNode self;
  self.fiber = current_fiber_or_abort("fiber::WaitGroup::wait");
  state_.waiters.push(&self);
  park(FIBERSCOPE_WAIT_WAITGROUP, this, &unlock_spin, &state_.guard);
}

}  // namespace fiber
