// fiberscope runtime: an M:N fiber scheduler with Go's syscall, foreign-call and callback semantics.
//
//   int main() {
//     return fiber::run([] {
//       fiber::Channel<int> ch;
//       fiber::spawn([&] { ch.send(42); }, "producer");
//       auto v = ch.recv();                                   // parks this fiber, not the thread
//       fiber::syscall([] { ::usleep(1000); });               // blocks the worker; its queue moves on
//       fiber::foreign_call(+[](void*) -> long { return 0; }, nullptr);  // C code on the system stack
//     });
//   }
//
// Every fiber and worker is published through the debug ABI (fiberscope/debug_abi.h) for fiberscope to read.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "fiberscope/detail/runtime_detail.h"

namespace fiber {

using FiberId = std::uint64_t;

struct Options {
  unsigned workers = 0;                    // run-queue owners (Go's GOMAXPROCS); 0 = hardware threads
  std::size_t stack_bytes = 256 * 1024;    // usable stack per fiber, rounded up to pages; a guard page lies below
};

// Starts the workers, runs `main` as the first fiber and returns when every fiber has finished.
// Returns 0, or a non-zero value if the runtime could not start (errno-style message on stderr).
int run(std::function<void()> main, Options options = {});

// Starts a new fiber running `fn`; `name` is truncated to 31 bytes. Returns its id (ids are never reused).
FiberId spawn(std::function<void()> fn, std::string_view name = {});

// Gives up the worker to other runnable fibers.
void yield();

// Parks the calling fiber for at least `duration`.
void sleep_for(std::chrono::nanoseconds duration);

// Id of the calling fiber, 0 when not called from a fiber.
FiberId current();

// Runs `f` as a blocking system call: the fiber's syscall frame is saved (entersyscall) and, if `f` blocks, a
// monitor hands this worker's run queue to a spare worker so the other fibers keep running (exitsyscall).
template <class F>
decltype(auto) syscall(F&& f) {
  detail::SyscallScope scope;  // entersyscall in the constructor, exitsyscall in the destructor
  return std::forward<F>(f)();
}

// The cgocall analogue: enters the syscall state, runs `fn(arg)` on the worker's system (thread) stack and
// returns its result. `fn` may call back into fiber code with fiber_callback.
long foreign_call(long (*fn)(void*), void* arg);

class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void lock();
  bool try_lock();
  void unlock();

 private:
  detail::MutexState state_;
};

class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  void wait(std::unique_lock<Mutex>& lock);
  template <class Predicate>
  void wait(std::unique_lock<Mutex>& lock, Predicate ready) {
    while (!ready()) wait(lock);
  }
  void notify_one();
  void notify_all();

 private:
  detail::WaitList waiters_;
};

class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;
  void add(long n);
  void done();
  void wait();

 private:
  detail::WaitGroupState state_;
};

// Go-style channel: capacity 0 is a rendezvous. recv() returns std::nullopt once closed and drained.
// send() on a closed channel aborts, as in Go.
template <class T>
class Channel {
 public:
  explicit Channel(std::size_t capacity = 0) : core_(capacity) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  void send(T value) { core_.send(std::move(value)); }
  std::optional<T> recv() { return core_.recv(); }
  void close() { core_.close(); }

 private:
  detail::ChannelCore<T> core_;
};

}  // namespace fiber

// The cgocallback analogue, called by foreign code running inside fiber::foreign_call: runs `fn(arg)` back on
// the calling fiber's stack, below the foreign-call frame, and returns its result. The fiber code may block,
// yield, spawn and make nested foreign calls.
extern "C" long fiber_callback(long (*fn)(void*), void* arg);
