#include "ui/snapshot_pump.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>

namespace fiberscope::ui {

SnapshotPump::SnapshotPump(DumpSource source) : source_(std::move(source)) {
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

void SnapshotPump::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || requested_; });
      if (stopping_) return;
    }
    const auto start = std::chrono::steady_clock::now();
    Result<report::Dump> dump = source_();
    const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
    std::lock_guard lock(mutex_);
    result_ = PumpResult{std::move(dump), elapsed.count()};
    requested_ = false;
  }
}

}  // namespace fiberscope::ui
