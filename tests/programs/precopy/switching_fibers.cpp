// switching_fibers: fibers that never move beside fibers that switch all the time, for the stack pre-copy test.
//
//   switching_fibers [--parked N (default 300)] [--switchers M (default 6)]
//
// "parked-K"   parked_level_one -> parked_level_two -> Channel::recv on a channel nobody sends to     [chan receive]
// "switcher-K" switcher_main loops forever, parking alternately at two places with different call chains and
//              frame sizes, so a stack copied at one place and unwound from the other would show foreign frames:
//                path A: path_a_one -> path_a_two -> fiber::yield                                     [runnable]
//                path B: path_b_one -> path_b_two -> path_b_three -> fiber::sleep_for(20 us)           [sleep]
// Prints READY once every parked fiber is blocked and the switchers run, then runs until killed.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fiberscope/runtime.h"

namespace {

std::atomic<int> parked{0};
std::atomic<long> switches{0};
fiber::Channel<int>* never_sent;
volatile long sink;

// Uses a result after the call, so -O2 cannot turn the call into a jump (a tail call has no frame to show).
template <class T>
T after_call(T value) {
  asm volatile("" : "+r"(value)::"memory");
  return value;
}

__attribute__((noinline)) int parked_level_two(int tag) {
  parked.fetch_add(1, std::memory_order_release);
  return after_call(never_sent->recv().value_or(0)) + tag;
}

__attribute__((noinline)) int parked_level_one(int tag) { return after_call(parked_level_two(tag + 1)) + 1; }

__attribute__((noinline)) long path_a_two(long round) {
  volatile char frame_a[48];
  std::memset(const_cast<char*>(frame_a), 'a', sizeof frame_a);
  fiber::yield();
  return after_call(round + frame_a[round % sizeof frame_a]);
}

__attribute__((noinline)) long path_a_one(long round) { return after_call(path_a_two(round)) + 1; }

__attribute__((noinline)) long path_b_three(long round) {
  volatile char frame_b[200];
  std::memset(const_cast<char*>(frame_b), 'b', sizeof frame_b);
  fiber::sleep_for(std::chrono::microseconds(20));
  return after_call(round + frame_b[round % sizeof frame_b]);
}

__attribute__((noinline)) long path_b_two(long round) { return after_call(path_b_three(round)) + 2; }

__attribute__((noinline)) long path_b_one(long round) { return after_call(path_b_two(round)) + 3; }

__attribute__((noinline)) void switcher_main() {
  for (long round = 0;; ++round) {
    sink = (round % 2 == 0) ? path_a_one(round) : path_b_one(round);
    switches.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int parked_count = 300;
  int switcher_count = 6;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--parked") == 0) parked_count = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--switchers") == 0) switcher_count = std::atoi(argv[i + 1]);
  }
  fiber::Options options;
  options.workers = 2;
  options.stack_bytes = 64 * 1024;
  return fiber::run(
      [&] {
        fiber::Channel<int> channel;
        never_sent = &channel;
        for (int k = 1; k <= parked_count; ++k)
          fiber::spawn([k] { sink = parked_level_one(k); }, "parked-" + std::to_string(k));
        for (int k = 1; k <= switcher_count; ++k)
          fiber::spawn([] { switcher_main(); }, "switcher-" + std::to_string(k));
        while (parked.load(std::memory_order_acquire) < parked_count ||
               switches.load(std::memory_order_relaxed) < 100 * switcher_count)
          fiber::sleep_for(std::chrono::milliseconds(1));
        std::printf("READY\n");
        std::fflush(stdout);
        fiber::sleep_for(std::chrono::hours(24));
      },
      options);
}
