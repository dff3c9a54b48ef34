// Shared by the C++ benchmark programs: times a loop several times and prints the median, in the one line format
// that bench/run.sh collects:
//
//   BENCH name=<benchmark> impl=<fiberscope|boost.context|boost.fiber|go> ns_per_op=<median>
//
// The Go peer (bench/go/main.go) prints the same format with the same rounding.
// Time is wall-clock time, or with BENCH_CLOCK=cpu the process's CPU time, which a loaded machine inflates less.
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace bench {

struct Plan {
  int repetitions = 7;                   // samples; the median is reported
  std::uint64_t iterations = 1'000'000;  // operations per sample
};

// Now, in nanoseconds, on the clock BENCH_CLOCK chose.
inline double now_ns() {
  static const bool cpu_clock = [] {
    const char* choice = std::getenv("BENCH_CLOCK");
    return choice != nullptr && std::strcmp(choice, "cpu") == 0;
  }();
  if (cpu_clock) {
    timespec now{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec);
  }
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs `body(iterations)` once to warm up, then `plan.repetitions` times, and returns the median ns per iteration.
template <class Body>
double median_ns_per_op(const Plan& plan, Body&& body) {
  body(std::max<std::uint64_t>(plan.iterations / 10, 1));
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(plan.repetitions));
  for (int repetition = 0; repetition < plan.repetitions; ++repetition) {
    const double start = now_ns();
    body(plan.iterations);
    samples.push_back((now_ns() - start) / static_cast<double>(plan.iterations));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Prints one result line and flushes, so a partial run still leaves its figures behind.
inline void report(const char* name, const char* impl, double ns_per_op) {
  std::printf("BENCH name=%s impl=%s ns_per_op=%.1f\n", name, impl, ns_per_op);
  std::fflush(stdout);
}

}  // namespace bench
