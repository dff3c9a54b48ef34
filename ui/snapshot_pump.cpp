#include "ui/snapshot_pump.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>

#include "ui/terminal.h"

namespace fiberscope::ui {

SnapshotPump::SnapshotPump(SnapshotSource source) : source_(std::move(source)) {
  // A new thread inherits the creating thread's signal mask: set the pump's mask around the creation.
  sigset_t pump_mask, previous;
  pthread_sigmask(SIG_SETMASK, nullptr, &pump_mask);
  sigaddset(&pump_mask, SIGWINCH);
  for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) sigdelset(&pump_mask, signal_number);
  pthread_sigmask(SIG_SETMASK, &pump_mask, &previous);
  thread_ = std::thread([this] { run(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

SnapshotPump::~SnapshotPump() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void SnapshotPump::request() {
  {
    std::lock_guard lock(mutex_);
    if (requested_ || result_) return;
    requested_ = true;
  }
  wake_.notify_all();
}

bool SnapshotPump::busy() const {
  std::lock_guard lock(mutex_);
  return requested_ || result_.has_value();
}

std::optional<PumpResult> SnapshotPump::take_result() {
  std::lock_guard lock(mutex_);
  std::optional<PumpResult> result = std::move(result_);
  result_.reset();
  return result;
}

std::optional<PumpResult> SnapshotPump::wait_result() {
  std::unique_lock lock(mutex_);
  answered_.wait(lock, [&] { return result_.has_value() || !requested_; });
  std::optional<PumpResult> result = std::move(result_);
  result_.reset();
  return result;
}

void SnapshotPump::want_args(std::optional<std::uint64_t> fiber_id) {
  std::lock_guard lock(mutex_);
  wanted_fiber_ = fiber_id;
}

void SnapshotPump::request_args(std::uint64_t generation, std::uint64_t fiber_id) {
  {
    std::lock_guard lock(mutex_);
    args_request_ = FiberArgs{generation, fiber_id, {}};
    args_.reset();
  }
  wake_.notify_all();
}

std::optional<FiberArgs> SnapshotPump::take_args() {
  std::lock_guard lock(mutex_);
  std::optional<FiberArgs> args = std::move(args_);
  args_.reset();
  return args;
}

bool SnapshotPump::wait_args(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return answered_.wait_for(lock, timeout, [&] { return args_.has_value() || !args_request_; }) && args_.has_value();
}

void SnapshotPump::run() {
  // Decoding hostile input is where fiberscope could overflow its stack: the crash handlers must still run here.
  CrashSignalStack signal_stack;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || requested_ || args_request_; });
    if (stopping_) return;
    // Arguments first: they take milliseconds and the user is looking at the details that wait for them.
    if (args_request_) {
      read_args(lock);
    } else {
      take_snapshot(lock);
    }
    answered_.notify_all();
  }
}

// Called and returns with `lock` held; the source and the arguments' reader run without it.
void SnapshotPump::take_snapshot(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  const auto start = std::chrono::steady_clock::now();
  Result<LeanSnapshot> snapshot = source_();
  std::optional<FiberArgs> wanted_args;
  std::uint64_t generation = 0;
  if (snapshot) {
    // The wanted fiber is read after the build, so that details opened during a long build get their arguments.
    lock.lock();
    const std::optional<std::uint64_t> wanted = wanted_fiber_;
    lock.unlock();
    // The previous snapshot's inspection is released here, on the only thread that used it. A failed snapshot
    // replaces nothing: the ui keeps showing the last one, whose arguments can still be read.
    stack_with_args_ = std::move(snapshot->stack_with_args);
    generation = ++generation_;
    const auto& fibers = snapshot->dump.fibers;
    if (wanted && std::any_of(fibers.begin(), fibers.end(), [&](const report::Fiber& f) { return f.id == *wanted; }))
      wanted_args = FiberArgs{generation, *wanted, stack_with_args_(*wanted)};
  }
  const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
  Result<report::Dump> dump = snapshot ? Result<report::Dump>(std::move(snapshot->dump))
                                       : std::unexpected(std::move(snapshot.error()));
  lock.lock();
  result_ = PumpResult{std::move(dump), elapsed.count(), generation, std::move(wanted_args)};
  requested_ = false;
}

// Called and returns with `lock` held. The request stays in place while it is served, so that wait_args() knows
// an answer is coming.
void SnapshotPump::read_args(std::unique_lock<std::mutex>& lock) {
  const std::uint64_t generation = args_request_->generation, fiber_id = args_request_->fiber_id;
  if (generation != generation_ || !stack_with_args_) {  // dropped: that snapshot was replaced
    args_request_.reset();
    return;
  }
  lock.unlock();
  report::Stack stack = stack_with_args_(fiber_id);
  lock.lock();
  // A different request that came meanwhile is served next; this answer is about a fiber no longer asked for.
  if (args_request_ && args_request_->generation == generation && args_request_->fiber_id == fiber_id) {
    args_ = FiberArgs{generation, fiber_id, std::move(stack)};
    args_request_.reset();
  }
}

}  // namespace fiberscope::ui
