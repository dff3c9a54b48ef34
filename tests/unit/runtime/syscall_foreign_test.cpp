// fiber::syscall (the handoff while a worker blocks), foreign_call (C on the system stack) and fiber_callback
// (fiber code called from C), nested several levels deep with parking, channels and spawns inside callbacks.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "callback_helpers.h"
#include "fiberscope/runtime.h"
#include "own_debug_table.h"

using namespace std::chrono_literals;

TEST_CASE("syscall returns what the call returns", "[runtime][syscall]") {
  long result = 0;
  pid_t pid = 0;
  fiber::run([&] {
    result = fiber::syscall([] { return 41L + 1; });
    pid = fiber::syscall([] { return ::getpid(); });
  });
  CHECK(result == 42);
  CHECK(pid == ::getpid());
}

TEST_CASE("with one worker, a fiber blocked in a syscall does not stop another fiber", "[runtime][syscall]") {
  // The syscall stays blocked until the other fiber has made 20 steps of ~1 ms, or 10 s pass: with no hand-off of
  // the blocked worker's processor the other fiber cannot run at all, and the deadline fails the test. (A fixed
  // 200 ms window failed on a loaded machine, where 20 steps can take longer than that.)
  std::atomic<bool> blocker_done{false};
  std::atomic<int> progress{0};
  int progress_during_block = -1;
  fiber::run(
      [&] {
        fiber::spawn(
            [&] {
              while (!blocker_done.load()) {
                progress.fetch_add(1);
                fiber::sleep_for(1ms);
              }
            },
            "keeps-going");
        fiber::sleep_for(5ms);  // let keeps-going start
        const int before = progress.load();
        fiber::syscall([&] {
          const auto deadline = std::chrono::steady_clock::now() + 10s;
          while (progress.load() - before < 20 && std::chrono::steady_clock::now() < deadline) ::usleep(1000);
          return 0;
        });
        progress_during_block = progress.load() - before;
        blocker_done = true;
      },
      fiber::Options{.workers = 1});
  INFO("the other fiber made " << progress_during_block << " steps of ~1 ms while the syscall blocked");
  CHECK(progress_during_block >= 20);
}

TEST_CASE("fibers blocked in read on pipes leave the rest of the program running", "[runtime][syscall]") {
  constexpr int kReaders = 6;
  std::vector<int> bytes_read(kReaders, -1);
  std::atomic<int> ticks{0};
  fiber::run(
      [&] {
        std::vector<int> write_ends;
        fiber::WaitGroup readers;
        readers.add(kReaders);
        for (int i = 0; i < kReaders; ++i) {
          int fds[2];
          REQUIRE(::pipe(fds) == 0);
          write_ends.push_back(fds[1]);
          fiber::spawn([&, i, read_fd = fds[0]] {
            char buffer[16];
            bytes_read[static_cast<std::size_t>(i)] =
                static_cast<int>(fiber::syscall([&] { return ::read(read_fd, buffer, sizeof buffer); }));
            ::close(read_fd);
            readers.done();
          });
        }
        for (int t = 0; t < 20; ++t) {  // the readers all block; this fiber must still get to run
          fiber::sleep_for(1ms);
          ticks.fetch_add(1);
        }
        for (int fd : write_ends) {
          CHECK(::write(fd, "abc", 3) == 3);
          ::close(fd);
        }
        readers.wait();
      },
      fiber::Options{.workers = 2});
  CHECK(ticks.load() == 20);
  CHECK(bytes_read == std::vector<int>(kReaders, 3));
}

TEST_CASE("foreign_call passes the argument and returns the C function's result", "[runtime][foreign]") {
  long sum = 0, nothing = -1;
  fiber::run([&] {
    long pair[2] = {40, 2};
    sum = fiber::foreign_call(c_add_pair, pair);
    nothing = fiber::foreign_call(c_do_nothing, nullptr);
  });
  CHECK(sum == 42);
  CHECK(nothing == 0);
}

TEST_CASE("foreign_call runs C on the worker's system stack and a callback runs on the fiber's stack",
          "[runtime][foreign][debug_abi]") {
  std::uint64_t c_local = 0, callback_local = 0;
  std::optional<runtime_test::FiberSnapshot> inside_callback;
  std::vector<std::optional<fiberscope_worker>> workers;
  fiber::run(
      [&] {
        c_callback_request request{};
        request.fn = +[](void* out) -> long {
          volatile int local = 0;
          *static_cast<std::uint64_t*>(out) = reinterpret_cast<std::uint64_t>(&local);
          return local;
        };
        request.arg = &callback_local;
        fiber::foreign_call(c_call_back, &request);
        c_local = request.c_local_address;

        // Once more, looking at the published record from inside the callback.
        request.fn = +[](void* snapshot) -> long {
          *static_cast<std::optional<runtime_test::FiberSnapshot>*>(snapshot) = runtime_test::own_fiber_snapshot();
          return 0;
        };
        request.arg = &inside_callback;
        fiber::foreign_call(c_call_back, &request);
        auto root = runtime_test::read_own<fiberscope_debug_root>(
            reinterpret_cast<std::uint64_t>(runtime_test::find_debug_root()));
        std::string error;
        if (root) workers = runtime_test::read_workers(*root, error);
      },
      fiber::Options{.workers = 1});
  REQUIRE(inside_callback.has_value());
  const fiberscope_fiber& record = inside_callback->record;
  CHECK(record.state == FIBERSCOPE_FIBER_RUNNING);
  CHECK(record.foreign_depth == 2);
  REQUIRE(inside_callback->transitions.size() == 2);
  CHECK(inside_callback->transitions[0].kind == FIBERSCOPE_TRANSITION_CALLBACK);
  CHECK(inside_callback->transitions[1].kind == FIBERSCOPE_TRANSITION_FOREIGN_CALL);
  INFO("fiber stack [" << record.stack_lo << ", " << record.stack_hi << "), C local " << c_local
                       << ", callback local " << callback_local);
  CHECK((callback_local >= record.stack_lo && callback_local < record.stack_hi));
  CHECK_FALSE((c_local >= record.stack_lo && c_local < record.stack_hi));
  // The callback's frames lie below (deeper than) the frame that made the foreign call.
  CHECK(callback_local < inside_callback->transitions[1].from_sp);
  REQUIRE(record.worker >= 0);
  REQUIRE(static_cast<std::size_t>(record.worker) < workers.size());
  REQUIRE(workers[static_cast<std::size_t>(record.worker)].has_value());
  const fiberscope_worker& worker = *workers[static_cast<std::size_t>(record.worker)];
  CHECK((c_local >= worker.sysstack_lo && c_local < worker.sysstack_hi));
}

namespace {

// One level of the nesting test: fiber code (called back from C) that parks in every way it can, spawns a helper
// and, until `levels_left` is 0, goes one foreign call + callback deeper. Returns the depth reached.
struct NestingContext {
  int levels_left;
  fiber::Channel<int>* feed;  // the test's feeder sends one value per request
  std::atomic<int>* spawned_ran;
};

long nested_level(void* context_ptr) {
  auto& context = *static_cast<NestingContext*>(context_ptr);
  fiber::yield();
  const int fed = context.feed->recv().value_or(-1000);
  fiber::sleep_for(100us);
  fiber::Channel<int> from_child;
  fiber::spawn(
      [&from_child, spawned_ran = context.spawned_ran] {
        spawned_ran->fetch_add(1);
        from_child.send(1);
      },
      "spawned-in-callback");
  const int child_value = from_child.recv().value_or(-1000);
  long deeper = 0;
  if (context.levels_left > 0) {
    NestingContext inner{context.levels_left - 1, context.feed, context.spawned_ran};
    c_callback_request request{nested_level, &inner, context.levels_left % 2 == 0 ? 200L : 0L, 0};
    deeper = fiber::foreign_call(c_call_back, &request);  // c_call_back adds 1 to what the callback returns
  }
  return deeper + (fed == 1 && child_value == 1 ? 0 : 1000);
}

}  // namespace

TEST_CASE("foreign calls and callbacks nest four deep while fibers yield, sleep, spawn and wait on channels",
          "[runtime][foreign][callback][stress]") {
  constexpr int kFibers = 12;
  constexpr int kLevels = 4;  // foreign_call -> callback, four times
  std::vector<long> depth_reached(kFibers, -1);
  std::atomic<int> spawned_ran{0};
  fiber::run(
      [&] {
        fiber::Channel<int> feed;
        fiber::WaitGroup nesters;
        nesters.add(kFibers);
        for (int f = 0; f < kFibers; ++f)
          fiber::spawn(
              [&, f] {
                NestingContext outer{kLevels - 1, &feed, &spawned_ran};
                c_callback_request request{nested_level, &outer, 0, 0};
                depth_reached[static_cast<std::size_t>(f)] = fiber::foreign_call(c_call_back, &request);
                nesters.done();
              },
              "nester");
        for (int i = 0; i < kFibers * kLevels; ++i) feed.send(1);
        nesters.wait();
      },
      fiber::Options{.workers = 2});
  CHECK(depth_reached == std::vector<long>(kFibers, kLevels));
  CHECK(spawned_ran.load() == kFibers * kLevels);
}

TEST_CASE("a callback can run a blocking syscall while other fibers keep going", "[runtime][callback][syscall]") {
  // The callback's syscall blocks until the other fiber has taken kSteps steps (or a deadline far beyond any
  // scheduling delay passes). With one processor, every one of those steps needs the processor handed off while
  // this worker stays blocked inside the callback: a missing handoff leaves the count at 0. Counting steps in a
  // fixed 100 ms instead measured how promptly a loaded or sanitized machine schedules threads.
  constexpr int kSteps = 10;
  std::atomic<int> progress{0};
  std::atomic<bool> done{false};
  int progress_during_callback = -1;
  fiber::run(
      [&] {
        fiber::spawn([&] {
          while (!done.load()) {
            progress.fetch_add(1);
            fiber::sleep_for(1ms);
          }
        });
        struct Shared {
          std::atomic<int>* progress;
          int delta;
        } shared{&progress, -1};
        c_callback_request request{};
        request.fn = +[](void* shared_ptr) -> long {
          auto& s = *static_cast<Shared*>(shared_ptr);
          const int before = s.progress->load();
          fiber::syscall([&] {
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while (s.progress->load() - before < kSteps && std::chrono::steady_clock::now() < deadline) {
              ::usleep(1'000);
            }
          });
          s.delta = s.progress->load() - before;
          return 0;
        };
        request.arg = &shared;
        fiber::sleep_for(2ms);
        fiber::foreign_call(c_call_back, &request);
        progress_during_callback = shared.delta;
        done = true;
      },
      fiber::Options{.workers = 1});
  INFO("the other fiber took " << progress_during_callback << " steps while the callback's syscall blocked");
  CHECK(progress_during_callback >= kSteps);
}
