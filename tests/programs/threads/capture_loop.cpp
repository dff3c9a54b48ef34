// An inspector process for the signal tests: captures PID in a loop; while the target is stopped the planner
// prints "STOPPED" and sleeps SLEEP_MS, so a test can send this process SIGINT/SIGTERM/SIGHUP mid-capture.
// Usage: capture_loop PID SLEEP_MS [own-handler | write-core OUT]
// With "own-handler" it installs a SIGINT handler that returns (as an interactive tool might); a capture it
// interrupts must then fail with ErrorCode::interrupted, and the program prints "INTERRUPTED" and exits with 3.
// With "write-core OUT" the planner writes a core of the stopped target to OUT (as gcore does), printing
// "WRITING" and sleeping SLEEP_MS at its first memory read, when OUT.tmp.XXXXXX exists.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <thread>

#include "target/core_writer.h"
#include "target/live_capture.h"
#include "target/proc_files.h"

namespace {
volatile sig_atomic_t g_interrupted = 0;
void note_interrupt(int) { g_interrupted = 1; }

// The live memory, pausing at the first read.
class SlowMemory : public fiberscope::target::Memory {
 public:
  SlowMemory(const fiberscope::target::Memory& live, int sleep_ms) : live_(live), sleep_ms_(sleep_ms) {}
  fiberscope::Result<void> read(fiberscope::target::RemoteAddress address, std::span<std::byte> out) const override {
    if (!announced_) {
      announced_ = true;
      std::printf("WRITING\n");
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    }
    return live_.read(address, out);
  }

 private:
  const fiberscope::target::Memory& live_;
  int sleep_ms_;
  mutable bool announced_ = false;
};

int write_core_once(int pid, int sleep_ms, const std::string& out) {
  using namespace fiberscope::target;
  auto mappings = read_maps(pid);
  if (!mappings) return 1;
  auto snapshot = capture_live(pid, {}, [&](const Memory& live, const std::vector<ThreadState>& threads) {
    Snapshot stopped;
    stopped.pid = pid;
    stopped.threads = threads;
    for (const Mapping& mapping : *mappings)
      if (!mapping.path.starts_with("[vvar")) stopped.mappings.push_back(mapping);
    SlowMemory slow(live, sleep_ms);
    (void)write_core(stopped, slow, {}, out);
    return std::vector<AddressRange>{};
  });
  return snapshot ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: capture_loop PID SLEEP_MS [own-handler | write-core OUT]\n");
    return 2;
  }
  if (argc == 5 && std::strcmp(argv[3], "write-core") == 0)
    return write_core_once(std::atoi(argv[1]), std::atoi(argv[2]), argv[4]);
  if (argc == 4 && std::strcmp(argv[3], "own-handler") == 0) {
    struct sigaction action {};
    action.sa_handler = note_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
  }
  int pid = std::atoi(argv[1]);
  int sleep_ms = std::atoi(argv[2]);
  for (;;) {
    auto snapshot = fiberscope::target::capture_live(
        pid, {}, [&](const fiberscope::target::Memory&, const std::vector<fiberscope::target::ThreadState>&) {
          std::printf("STOPPED\n");
          std::fflush(stdout);
          std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
          return std::vector<fiberscope::target::AddressRange>{};
        });
    if (!snapshot && snapshot.error().code == fiberscope::ErrorCode::interrupted && g_interrupted) {
      std::printf("INTERRUPTED\n");
      return 3;
    }
    if (!snapshot) {
      std::fprintf(stderr, "capture_loop: %s\n", snapshot.error().message.c_str());
      return 1;
    }
  }
}
