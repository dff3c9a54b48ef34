// Internals of fiberscope/runtime.h that its templates need: the park/ready protocol, the syscall scope, the
// state behind Mutex/CondVar/WaitGroup and the Channel<T> core. Not a public API: names here may change.
//
// Blocking follows Go's gopark: a primitive queues a WaitNode for the calling fiber under its own spin lock,
// then calls park(reason, object, unlock, lock). The runtime saves the fiber's context, publishes it WAITING and
// only then runs `unlock`, so a waker that takes the lock next can never see a half-saved fiber.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <new>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "fiberscope/debug_abi.h"

// The assembly stubs (switch.S). entersyscall records the caller's pc/sp and callee-saved registers exactly as
// they are at the call, which no C++ function can observe about its own caller.
extern "C" {
void* fiberscope_entersyscall(std::uint32_t mode);  // returns the worker's ForeignTarget, or null
void fiberscope_exitsyscall(std::uint32_t mode);
}

namespace fiber {

using FiberId = std::uint64_t;

namespace detail {

// Modes passed to the syscall stubs.
inline constexpr std::uint32_t kSyscallMode = 0;
inline constexpr std::uint32_t kForeignMode = 1;

// The runtime's fiber object (G); opaque outside the library.
struct FiberHandle;

// Test-and-test-and-set lock for the tiny critical sections of the primitives (a few pointer updates).
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
      while (locked_.load(std::memory_order_relaxed)) backoff(spins++);
    }
  }
  bool try_lock() noexcept { return !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static void backoff(unsigned spins) noexcept;
  std::atomic<bool> locked_{false};
};

// One parked fiber in a primitive's FIFO. Lives on the parked fiber's stack until it is readied.
struct WaitNode {
  FiberHandle* fiber = nullptr;
  WaitNode* next = nullptr;
  void* payload = nullptr;   // channels: the value being sent, or the optional to receive into
  bool completed = false;    // set by the waker: the operation happened (false: woken by close)
};

// Intrusive FIFO of WaitNodes, guarded by its owner's lock.
struct WaitQueue {
  WaitNode* head = nullptr;
  WaitNode* tail = nullptr;
  bool empty() const noexcept { return head == nullptr; }
  void push(WaitNode* node) noexcept {
    node->next = nullptr;
    if (tail) tail->next = node; else head = node;
    tail = node;
  }
  WaitNode* pop() noexcept {
    WaitNode* node = head;
    if (node) {
      head = node->next;
      if (!head) tail = nullptr;
    }
    return node;
  }
};

// Returns the calling fiber, aborting with `what` in the message when not called from fiber code.
FiberHandle* current_fiber_or_abort(const char* what);

// Parks the calling fiber with the given wait reason and object; `unlock(lock)` runs once the fiber is fully
// saved and published WAITING. Returns when another fiber (or the timer/monitor) calls ready().
void park(std::uint32_t wait_reason, const void* wait_object, void (*unlock)(void*), void* lock);

// Makes a parked fiber runnable again (on the caller's run queue if it has one, else the global queue).
void ready(FiberHandle* fiber);

// Unlock callback for park() on a SpinLock.
void unlock_spin(void* spin_lock);

// The state of a Mutex: `locked` is handed directly to the first waiter on unlock, so waiters never starve.
struct MutexState {
  std::atomic<std::uint32_t> locked{0};
  SpinLock guard;
  WaitQueue waiters;
};

// The waiters of a CondVar.
struct WaitList {
  SpinLock guard;
  WaitQueue waiters;
};

// The state of a WaitGroup.
struct WaitGroupState {
  SpinLock guard;
  long count = 0;
  WaitQueue waiters;
};

// Aborts the process with "fiberscope: <message>" on stderr (Go's throw).
[[noreturn]] void fatal(const char* message);

// Enters the syscall state around a blocking call; both stubs must run in the same frame, hence always_inline.
struct SyscallScope {
  [[gnu::always_inline]] SyscallScope() { fiberscope_entersyscall(kSyscallMode); }
  [[gnu::always_inline]] ~SyscallScope() { fiberscope_exitsyscall(kSyscallMode); }
  SyscallScope(const SyscallScope&) = delete;
  SyscallScope& operator=(const SyscallScope&) = delete;
};

// Spawning in two steps so the callable is constructed in place at the top of the new fiber's stack.
struct SpawnSlot {
  FiberHandle* fiber;
  void* storage;
};
// Takes a pooled fiber (record + stack) and reserves `bytes` aligned to `align` at the top of its stack.
SpawnSlot spawn_prepare(std::size_t bytes, std::size_t align);
// Publishes and queues the fiber; spawn_pc is the return address in the function that called spawn.
FiberId spawn_commit_at(SpawnSlot slot, void (*entry)(void*), std::string_view name, const void* spawn_pc);
// Same, taking the return address of its own caller (an always_inline spawn makes that the user's function).
[[gnu::noinline]] FiberId spawn_commit(SpawnSlot slot, void (*entry)(void*), std::string_view name);
// Runs the runtime's side of a fiber's first switch; the first thing fiber_entry does.
void fiber_started() noexcept;
// Marks the calling fiber DEAD and switches away for good.
[[noreturn]] void fiber_finish() noexcept;

// The first real frame of every fiber: its symbol names the callable, which the debug ABI's start_pc points at.
template <class F>
[[noreturn]] void fiber_entry(void* storage) noexcept {
  fiber_started();
  F* callable = static_cast<F*>(storage);
  (*callable)();
  callable->~F();
  fiber_finish();
}

// Go channel semantics over a spin lock: direct hand-off to a parked peer, else the ring buffer, else park.
template <class T>
class ChannelCore {
 public:
  explicit ChannelCore(std::size_t capacity) : capacity_(capacity) {}
  ChannelCore(const ChannelCore&) = delete;
  ChannelCore& operator=(const ChannelCore&) = delete;

  void send(T value) {
    lock_.lock();
    if (closed_) {
      lock_.unlock();
      fatal("send on closed channel");
    }
    if (WaitNode* receiver = receivers_.pop()) {
      *static_cast<std::optional<T>*>(receiver->payload) = std::move(value);
      receiver->completed = true;
      lock_.unlock();
      ready(receiver->fiber);
      return;
    }
    if (buffer_.size() < capacity_) {
      buffer_.push_back(std::move(value));
      lock_.unlock();
      return;
    }
    WaitNode self;
    self.fiber = current_fiber_or_abort("Channel::send");
    self.payload = &value;
    senders_.push(&self);
    park(FIBERSCOPE_WAIT_CHAN_SEND, this, &unlock_spin, &lock_);
    if (!self.completed) fatal("send on closed channel");
  }

  std::optional<T> recv() {
    std::optional<T> result;
    lock_.lock();
    if (WaitNode* sender = senders_.pop()) {
      T& sent = *static_cast<T*>(sender->payload);
      if (buffer_.empty()) {
        result.emplace(std::move(sent));
      } else {  // a full buffer: take its head, the parked sender's value goes to the tail
        result.emplace(std::move(buffer_.front()));
        buffer_.pop_front();
        buffer_.push_back(std::move(sent));
      }
      sender->completed = true;
      lock_.unlock();
      ready(sender->fiber);
      return result;
    }
    if (!buffer_.empty()) {
      result.emplace(std::move(buffer_.front()));
      buffer_.pop_front();
      lock_.unlock();
      return result;
    }
    if (closed_) {
      lock_.unlock();
      return result;
    }
    WaitNode self;
    self.fiber = current_fiber_or_abort("Channel::recv");
    self.payload = &result;
    receivers_.push(&self);
    park(FIBERSCOPE_WAIT_CHAN_RECV, this, &unlock_spin, &lock_);
    return result;
  }

  void close() {
    lock_.lock();
    if (closed_) {
      lock_.unlock();
      fatal("close of closed channel");
    }
    closed_ = true;
    WaitQueue woken;
    while (WaitNode* node = receivers_.pop()) woken.push(node);
    while (WaitNode* node = senders_.pop()) woken.push(node);
    lock_.unlock();
    // Each node lives on its fiber's stack: read `next` before ready() lets that fiber run and return.
    for (WaitNode* node = woken.head; node != nullptr;) {
      WaitNode* next = node->next;
      ready(node->fiber);
      node = next;
    }
  }

 private:
  SpinLock lock_;
  std::size_t capacity_;
  bool closed_ = false;
  std::deque<T> buffer_;
  WaitQueue receivers_;
  WaitQueue senders_;
};

}  // namespace detail

FiberId spawn(std::function<void()> fn, std::string_view name);

// Starts a new fiber running `fn` (any callable), constructed in place on the fiber's stack; the fiber's start
// function is detail::fiber_entry<F>, so tools see the callable's own symbol at the bottom of its stack.
template <class F>
  requires std::is_invocable_v<std::decay_t<F>&> && (!std::is_same_v<std::decay_t<F>, std::function<void()>>)
[[gnu::always_inline]] inline FiberId spawn(F&& fn, std::string_view name = {}) {
  using Callable = std::decay_t<F>;
  if constexpr (sizeof(Callable) > 4096 || alignof(Callable) > 64) {
    return spawn(std::function<void()>(std::forward<F>(fn)), name);
  } else {
    detail::SpawnSlot slot = detail::spawn_prepare(sizeof(Callable), alignof(Callable));
    ::new (slot.storage) Callable(std::forward<F>(fn));
    return detail::spawn_commit(slot, &detail::fiber_entry<Callable>, name);
  }
}

}  // namespace fiber
