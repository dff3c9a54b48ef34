// An inspector process for the signal tests: captures PID in a loop; while the target is stopped the planner
// prints "STOPPED" and sleeps SLEEP_MS, so a test can send this process SIGINT/SIGTERM/SIGHUP mid-capture.
// Usage: capture_loop PID SLEEP_MS [own-handler]
// With "own-handler" it installs a SIGINT handler that returns (as an interactive tool might); a capture it
// interrupts must then fail with ErrorCode::interrupted, and the program prints "INTERRUPTED" and exits with 3.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "target/live_capture.h"

namespace {
volatile sig_atomic_t g_interrupted = 0;
void note_interrupt(int) { g_interrupted = 1; }
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: capture_loop PID SLEEP_MS [own-handler]\n");
    return 2;
  }
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
