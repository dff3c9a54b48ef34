// Boost.Context peer: the cost of a bare stackful context switch, the floor under any fiber runtime's yield.
// One operation is a resume round trip (main -> fiber -> main), reported under the yield benchmark's name so the
// rows line up with fiberscope's yield round trip.
#include <boost/context/fiber.hpp>

#include <cstdint>
#include <utility>

#include "bench_timer.h"

namespace ctx = boost::context;

static double resume_round_trip_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    ctx::fiber partner{[](ctx::fiber&& caller) {
      for (;;) caller = std::move(caller).resume();
      return std::move(caller);
    }};
    for (std::uint64_t i = 0; i < iterations; ++i) partner = std::move(partner).resume();
    // `partner` is destroyed suspended: Boost.Context unwinds its stack with a forced_unwind exception.
  });
}

int main() {
  bench::Plan plan;
  plan.iterations = 10'000'000;
  bench::report("yield_round_trip", "boost.context", resume_round_trip_ns(plan));
  return 0;
}
