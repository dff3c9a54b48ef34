// SnapshotPump: takes snapshots on a thread of its own so that the ui never waits for a capture — the target's
// pause is milliseconds, but unwinding and symbolizing thousands of fibers afterwards takes longer.
//
//   SnapshotPump pump([&] { return take_dump(); });
//   if (!pump.busy()) pump.request();
//   if (auto result = pump.take_result()) show(result->dump);
//
// Signals: the pump's thread blocks SIGWINCH (curses reads it on the ui thread) and is the one that receives
// SIGINT/SIGTERM/SIGHUP (the ui thread blocks them), so a Ctrl-C during a capture lands where the capture's own
// handler can detach the target at once.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "base/result.h"
#include "report/dump.h"

namespace fiberscope::ui {

// One snapshot of the target as a report model, or why none could be taken.
using DumpSource = std::function<Result<report::Dump>()>;

struct PumpResult {
  Result<report::Dump> dump;
  double elapsed_ms = 0;  // capture, unwinding, symbols and checks: how long the snapshot took to arrive
};

class SnapshotPump {
 public:
  explicit SnapshotPump(DumpSource source);
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

 private:
  void run();
  DumpSource source_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_ = false;
  bool stopping_ = false;
  std::optional<PumpResult> result_;
  std::thread thread_;
};

}  // namespace fiberscope::ui
