// SnapshotPump: takes snapshots on a thread of its own so that the ui never waits for a capture — the target's
// pause is milliseconds, but unwinding and symbolizing thousands of fibers afterwards takes longer. Snapshots are
// lean (no fiber arguments: only the details of one fiber show them); the pump also reads the arguments of the
// fiber whose details are shown, from the same inspection, on the same thread.
//
//   SnapshotPump pump(source);
//   if (!pump.busy()) pump.request();
//   if (auto result = pump.take_result()) show(result->dump, result->generation);
//   pump.want_args(fiber_id);  pump.request_args(generation, fiber_id);
//   if (auto args = pump.take_args()) show_args(args->generation, args->fiber_id, args->stack);
//
// Signals: the pump's thread blocks SIGWINCH (curses reads it on the ui thread) and is the one that receives
// SIGINT/SIGTERM/SIGHUP (the ui thread blocks them), so a Ctrl-C during a capture lands where the capture's own
// handler can detach the target at once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "base/result.h"
#include "report/dump.h"

namespace fiberscope::ui {

// One snapshot: its dump, built without fiber arguments (session::BuildOptions::fiber_args = false), and how to
// read one of its fibers' stacks with arguments from the same inspection, which `stack_with_args` keeps alive.
// The pump calls `stack_with_args` on its own thread only: it shares the module caches with the next snapshot.
struct LeanSnapshot {
  report::Dump dump;
  std::function<report::Stack(std::uint64_t fiber_id)> stack_with_args;
};

// Takes one snapshot, or says why none could be taken.
using SnapshotSource = std::function<Result<LeanSnapshot>()>;

// A fiber's stack with its arguments, in the snapshot numbered `generation`.
struct FiberArgs {
  std::uint64_t generation = 0;
  std::uint64_t fiber_id = 0;
  report::Stack stack;
};

struct PumpResult {
  Result<report::Dump> dump;  // lean: fiber frames have no arguments
  double elapsed_ms = 0;      // capture, unwinding, symbols and checks: how long the snapshot took to arrive
  std::uint64_t generation = 0;  // 1, 2, ... for the snapshots taken; failures get none
  std::optional<FiberArgs> wanted_args;  // the want_args() fiber's stack with arguments, when it is in the dump
};

class SnapshotPump {
 public:
  explicit SnapshotPump(SnapshotSource source);
  // Waits for a snapshot in progress (the target is always released by then), then stops the thread.
  ~SnapshotPump();
  SnapshotPump(const SnapshotPump&) = delete;
  SnapshotPump& operator=(const SnapshotPump&) = delete;

  // Starts a snapshot unless one is being taken or waits to be collected.
  void request();
  // True from request() until the result was collected with take_result().
  bool busy() const;
  // The finished snapshot, once.
  std::optional<PumpResult> take_result();
  // Waits for the snapshot requested to finish, then takes it like take_result(); nullopt if none was requested.
  std::optional<PumpResult> wait_result();

  // The fiber whose arguments every snapshot taken from now on comes with (PumpResult::wanted_args), or none.
  void want_args(std::optional<std::uint64_t> fiber_id);
  // Reads the arguments of `fiber_id` in snapshot `generation` (the one shown), replacing an earlier request. A
  // request for a snapshot that a newer one replaced meanwhile is dropped: ask again about the newer one.
  void request_args(std::uint64_t generation, std::uint64_t fiber_id);
  // The arguments read for the last request, once.
  std::optional<FiberArgs> take_args();
  // Waits up to `timeout` for take_args() to have a result; false if none came (the pump was busy, or the
  // request was dropped).
  bool wait_args(std::chrono::milliseconds timeout);

 private:
  void run();
  void take_snapshot(std::unique_lock<std::mutex>& lock);
  void read_args(std::unique_lock<std::mutex>& lock);

  SnapshotSource source_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the pump's thread: a request or stop
  std::condition_variable answered_; // the ui thread: a result or arguments arrived, or a request was dropped
  bool requested_ = false;
  bool stopping_ = false;
  std::optional<PumpResult> result_;
  std::optional<std::uint64_t> wanted_fiber_;
  std::optional<FiberArgs> args_request_;  // generation and fiber id (no stack) until answered or dropped
  std::optional<FiberArgs> args_;
  // Only the pump's thread touches these: the last snapshot's way to its arguments, and its number.
  std::function<report::Stack(std::uint64_t)> stack_with_args_;
  std::uint64_t generation_ = 0;
  std::thread thread_;
};

}  // namespace fiberscope::ui
