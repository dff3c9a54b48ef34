// fiber_crashers: processes on runtime_lib that die inside a fiber, for the post-mortem tests (tests/unit/postmortem).
//
//   fiber_crashers segv-fiber      fiber "segv-fiber" writes through a null pointer in crash_in_fiber()
//   fiber_crashers segv-callback   fiber "segv-callback" makes a foreign call whose C code calls back into fiber code,
//                                  and crash_in_callback() writes through a null pointer
//   fiber_crashers stale-frame     fiber "stale-frame" calls back from C and returns: with
//                                  FIBERSCOPE_FAULTS=stale-syscall-frame the runtime aborts with "syscall frame is
//                                  no longer valid"
//   fiber_crashers overflow        fiber "overflow" recurses into its guard page (SIGSEGV)
// Other fibers are parked in a sleep meanwhile ("bystander"), so the dump has more than the crashing one. Prints
// CRASHING just before the crash.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fiberscope/runtime.h"

extern "C" {
struct crasher_request {
  long (*callback)(void*);
  void* callback_argument;
};
long crasher_c_call_back(void* request);
}

namespace {

volatile long sink;

void crashing() {
  std::printf("CRASHING\n");
  std::fflush(stdout);
}

__attribute__((noinline)) void crash_in_fiber(int* target) {
  crashing();
  *static_cast<volatile int*>(target) = 1;
}

__attribute__((noinline)) long crash_in_callback(void* target) {
  crashing();
  *static_cast<volatile int*>(target) = 2;
  return 0;
}

long quick_callback(void*) { return 1; }

// Each level keeps a page of locals alive, so the recursion reaches the guard page in a few dozen calls. The
// limit is never reached (no stack is that deep); it only tells the compiler the recursion ends.
__attribute__((noinline)) long recurse_forever(long depth) {
  volatile char page[4096];
  page[0] = static_cast<char>(depth);
  if (depth == 8) crashing();
  if (depth > (1L << 40)) return 0;
  return recurse_forever(depth + 1) + page[0];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (mode != "segv-fiber" && mode != "segv-callback" && mode != "stale-frame" && mode != "overflow") {
    std::fprintf(stderr, "usage: fiber_crashers segv-fiber|segv-callback|stale-frame|overflow\n");
    return 2;
  }
  fiber::Options options;
  options.workers = 2;
  return fiber::run(
      [&] {
        for (int i = 0; i < 3; ++i)
          fiber::spawn([] { fiber::sleep_for(std::chrono::hours(24)); }, "bystander");
        fiber::sleep_for(std::chrono::milliseconds(20));
        if (mode == "segv-fiber") {
          fiber::spawn([] { crash_in_fiber(nullptr); }, "segv-fiber");
        } else if (mode == "segv-callback") {
          fiber::spawn(
              [] {
                crasher_request request{crash_in_callback, nullptr};
                sink = fiber::foreign_call(crasher_c_call_back, &request);
              },
              "segv-callback");
        } else if (mode == "stale-frame") {
          fiber::spawn(
              [] {
                crasher_request request{quick_callback, nullptr};
                crashing();
                sink = fiber::foreign_call(crasher_c_call_back, &request);
              },
              "stale-frame");
        } else {
          fiber::spawn([] { sink = recurse_forever(0); }, "overflow");
        }
        fiber::sleep_for(std::chrono::seconds(20));
        std::fprintf(stderr, "fiber_crashers: still alive after 20 s\n");
        std::exit(3);
      },
      options);
}
