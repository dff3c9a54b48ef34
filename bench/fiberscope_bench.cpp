// fiberscope runtime benchmarks, on one worker (the peers run single-threaded too): yield round trip,
// spawn+finish, syscall enter/exit around an empty call, foreign_call of an empty C function, foreign_call whose
// C code makes one fiber_callback, and unbuffered channel ping-pong.
//
//   bench_fiberscope [name...]   runs only the named benchmarks (e.g. foreign_call), for profiling one of them
#include <cstdint>
#include <cstdio>
#include <cstring>

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

struct Benchmark {
  const char* name;
  std::uint64_t iterations;
  double (*ns_per_op)(const bench::Plan&);
};

constexpr Benchmark kBenchmarks[] = {
    {"yield_round_trip", 1'000'000, yield_round_trip_ns},
    {"spawn_finish", 1'000'000, spawn_finish_ns},
    {"syscall_pair", 10'000'000, syscall_pair_ns},
    {"foreign_call", 10'000'000, foreign_call_ns},
    {"foreign_call_callback", 1'000'000, foreign_call_callback_ns},
    {"channel_ping_pong", 1'000'000, channel_ping_pong_ns},
};

// True when `name` was asked for on the command line (or nothing was, which asks for all).
bool selected(const char* name, int argc, char** argv) {
  if (argc <= 1) return true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    bool known = false;
    for (const Benchmark& benchmark : kBenchmarks) known = known || std::strcmp(argv[i], benchmark.name) == 0;
    if (!known) {
      std::fprintf(stderr, "bench_fiberscope: unknown benchmark '%s'\n", argv[i]);
      return 2;
    }
  }
  const int status = fiber::run(
      [argc, argv] {
        for (const Benchmark& benchmark : kBenchmarks) {
          if (!selected(benchmark.name, argc, argv)) continue;
          bench::Plan plan;
          plan.iterations = benchmark.iterations;
          bench::report(benchmark.name, "fiberscope", benchmark.ns_per_op(plan));
        }
      },
      fiber::Options{.workers = 1});
  if (status != 0) std::fprintf(stderr, "bench_fiberscope: fiber::run failed with status %d\n", status);
  return status;
}
