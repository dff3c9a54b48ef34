// runtime_faults: commits, on request, the failures the runtime must catch itself. Run as a child process by
// tests/unit/runtime/runtime_faults_test.cpp.
//
//   runtime_faults callback        foreign_call -> C -> fiber_callback -> fiber code that yields and sleeps.
//                                  Exits 0; with FIBERSCOPE_FAULTS=stale-syscall-frame the runtime must abort
//                                  with "syscall frame is no longer valid" and the fiber id.
//   runtime_faults overflow        a fiber named "deep-recursion" recurses until it hits its guard page: the
//                                  runtime must name the fiber on stderr, then die by SIGSEGV.
//   runtime_faults send-on-closed  sends on a closed channel: aborts, as in Go.
//
// Before the failure it prints `fiber <id>` for the fiber concerned on stderr, so the test can look for the id.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "fiberscope/runtime.h"
#include "runtime_faults_c.h"

namespace {

void announce_fiber(const char* what) {
  std::fprintf(stderr, "runtime_faults: %s in fiber %llu\n", what, static_cast<unsigned long long>(fiber::current()));
  std::fflush(stderr);
}

long callback_that_parks(void* calls_ptr) {
  auto& calls = *static_cast<int*>(calls_ptr);
  fiber::yield();
  fiber::sleep_for(std::chrono::milliseconds(1));
  return ++calls;
}

int run_callback() {
  int calls = 0;
  long result = 0;
  const int status = fiber::run(
      [&] {
        fiber::spawn(
            [&] {
              announce_fiber("foreign call with callback");
              faults_callback_request request{callback_that_parks, &calls};
              result = fiber::foreign_call(faults_c_call_back, &request);
            },
            "callback-caller");
      },
      fiber::Options{.workers = 2});
  if (status != 0 || result != 1 || calls != 1) {
    std::fprintf(stderr, "runtime_faults: callback returned %ld after %d calls (run status %d)\n", result, calls,
                 status);
    return 1;
  }
  return 0;
}

// The frame padding keeps each level on the stack; `limit` comes from the command line so the recursion is not
// provably infinite to the compiler.
[[gnu::noinline]] long recurse_deeper(long depth, long limit) {
  volatile char frame_padding[512];
  frame_padding[0] = static_cast<char>(depth);
  if (depth >= limit) return frame_padding[0];
  return recurse_deeper(depth + 1, limit) + frame_padding[0];
}

int run_overflow(long limit) {
  long sink = 0;
  fiber::run([&] {
    fiber::spawn(
        [&] {
          announce_fiber("unbounded recursion");
          sink = recurse_deeper(0, limit);
        },
        "deep-recursion");
  });
  std::fprintf(stderr, "runtime_faults: recursion returned %ld without overflowing\n", sink);
  return 1;
}

int run_send_on_closed() {
  fiber::run([] {
    fiber::Channel<int> channel(1);
    channel.close();
    announce_fiber("send on a closed channel");
    channel.send(1);
  });
  std::fprintf(stderr, "runtime_faults: send on a closed channel returned\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode == "callback") return run_callback();
  if (mode == "overflow") return run_overflow(1L << 40);
  if (mode == "send-on-closed") return run_send_on_closed();
  std::fprintf(stderr, "usage: runtime_faults callback|overflow|send-on-closed\n");
  return 2;
}
