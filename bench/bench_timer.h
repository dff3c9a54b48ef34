// Shared by the C++ benchmark programs: times a loop several times and prints the median, in the one line format
// that bench/run.sh collects:
//
//   BENCH name=<benchmark> impl=<fiberscope|boost.context|boost.fiber|go> ns_per_op=<median>
//
// The Go peer (bench/go/main.go) prints the same format with the same rounding.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace bench {

struct Plan {
  int repetitions = 7;                   // samples; the median is reported
  std::uint64_t iterations = 1'000'000;  // operations per sample
};

// Runs `body(iterations)` once to warm up, then `plan.repetitions` times, and returns the median ns per iteration.
template <class Body>
double median_ns_per_op(const Plan& plan, Body&& body) {
  body(std::max<std::uint64_t>(plan.iterations / 10, 1));
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(plan.repetitions));
  for (int repetition = 0; repetition < plan.repetitions; ++repetition) {
    const auto start = std::chrono::steady_clock::now();
    body(plan.iterations);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    samples.push_back(std::chrono::duration<double, std::nano>(elapsed).count() /
                      static_cast<double>(plan.iterations));
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
