// Boost.Fiber peer: yield round trip, spawn+finish and unbuffered channel ping-pong on one thread, with the
// default round-robin scheduler, measured the same way as the fiberscope runtime.
#include <boost/fiber/all.hpp>

#include <cstdint>

#include "bench_timer.h"

namespace fibers = boost::fibers;

// Two fibers each yield `iterations` times; one operation is a round trip (A -> B -> A).
static double yield_round_trip_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    fibers::fiber partner{[iterations] {
      for (std::uint64_t i = 0; i < iterations; ++i) boost::this_fiber::yield();
    }};
    for (std::uint64_t i = 0; i < iterations; ++i) boost::this_fiber::yield();
    partner.join();
  });
}

static double spawn_finish_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    for (std::uint64_t i = 0; i < iterations; ++i) {
      fibers::fiber child{[] {}};
      child.join();
    }
  });
}

// One operation: send on `ping`, the partner receives and answers on `pong`, receive the answer.
static double channel_ping_pong_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    fibers::unbuffered_channel<std::uint64_t> ping;
    fibers::unbuffered_channel<std::uint64_t> pong;
    fibers::fiber partner{[&] {
      std::uint64_t value = 0;
      while (ping.pop(value) == fibers::channel_op_status::success) pong.push(value);
    }};
    std::uint64_t answer = 0;
    for (std::uint64_t i = 0; i < iterations; ++i) {
      ping.push(i);
      pong.pop(answer);
    }
    ping.close();
    partner.join();
  });
}

int main() {
  bench::Plan plan;
  bench::report("yield_round_trip", "boost.fiber", yield_round_trip_ns(plan));
  bench::report("spawn_finish", "boost.fiber", spawn_finish_ns(plan));
  bench::report("channel_ping_pong", "boost.fiber", channel_ping_pong_ns(plan));
  return 0;
}
