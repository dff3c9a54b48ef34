// fiberscope runtime benchmarks, on one worker (the peers run single-threaded too): yield round trip,
// spawn+finish, syscall enter/exit around an empty call, foreign_call of an empty C function, foreign_call whose
// C code makes one fiber_callback, and unbuffered channel ping-pong.
#include <cstdint>
#include <cstdio>

#include "bench_c_functions.h"
#include "bench_timer.h"
#include "fiberscope/runtime.h"

namespace {

// Two fibers each yield `iterations` times; one operation is a round trip (A -> B -> A).
double yield_round_trip_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    fiber::WaitGroup partner_done;
    partner_done.add(1);
    fiber::spawn(
        [&] {
          for (std::uint64_t i = 0; i < iterations; ++i) fiber::yield();
          partner_done.done();
        },
        "bench-yield-partner");
    for (std::uint64_t i = 0; i < iterations; ++i) fiber::yield();
    partner_done.wait();
  });
}

double spawn_finish_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    for (std::uint64_t i = 0; i < iterations; ++i) {
      fiber::WaitGroup finished;
      finished.add(1);
      fiber::spawn([&finished] { finished.done(); }, "bench-child");
      finished.wait();
    }
  });
}

double syscall_pair_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    for (std::uint64_t i = 0; i < iterations; ++i) fiber::syscall([] {});
  });
}

double foreign_call_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    for (std::uint64_t i = 0; i < iterations; ++i) fiber::foreign_call(empty_c_function, nullptr);
  });
}

double foreign_call_callback_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    bench_callback_request request{+[](void*) -> long { return 0; }, nullptr};
    for (std::uint64_t i = 0; i < iterations; ++i) fiber::foreign_call(c_calls_back_once, &request);
  });
}

// One operation: send on `ping`, the partner receives and answers on `pong`, receive the answer.
double channel_ping_pong_ns(const bench::Plan& plan) {
  return bench::median_ns_per_op(plan, [](std::uint64_t iterations) {
    fiber::Channel<std::uint64_t> ping;
    fiber::Channel<std::uint64_t> pong;
    fiber::WaitGroup partner_done;
    partner_done.add(1);
    fiber::spawn(
        [&] {
          while (auto value = ping.recv()) pong.send(*value);
          partner_done.done();
        },
        "bench-pong");
    for (std::uint64_t i = 0; i < iterations; ++i) {
      ping.send(i);
      pong.recv();
    }
    ping.close();
    partner_done.wait();
  });
}

}  // namespace

int main() {
  const int status = fiber::run(
      [] {
        bench::Plan plan;
        bench::report("yield_round_trip", "fiberscope", yield_round_trip_ns(plan));
        bench::report("spawn_finish", "fiberscope", spawn_finish_ns(plan));
        plan.iterations = 10'000'000;
        bench::report("syscall_pair", "fiberscope", syscall_pair_ns(plan));
        bench::report("foreign_call", "fiberscope", foreign_call_ns(plan));
        plan.iterations = 1'000'000;
        bench::report("foreign_call_callback", "fiberscope", foreign_call_callback_ns(plan));
        bench::report("channel_ping_pong", "fiberscope", channel_ping_pong_ns(plan));
      },
      fiber::Options{.workers = 1});
  if (status != 0) std::fprintf(stderr, "bench_fiberscope: fiber::run failed with status %d\n", status);
  return status;
}
