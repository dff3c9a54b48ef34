// An inspector process for the signal tests: captures PID in a loop; while the target is stopped the planner
// prints "STOPPED" and sleeps SLEEP_MS, so a test can send this process SIGINT/SIGTERM/SIGHUP mid-capture.
// Usage: capture_loop PID SLEEP_MS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "target/live_capture.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: capture_loop PID SLEEP_MS\n");
    return 2;
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
    if (!snapshot) {
      std::fprintf(stderr, "capture_loop: %s\n", snapshot.error().message.c_str());
      return 1;
    }
  }
}
