// Mutex, CondVar and WaitGroup: exclusion, wake-ups, counts, on several workers so that ThreadSanitizer sees
// real parallelism.
#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include <catch2/catch.hpp>

#include "fiberscope/runtime.h"

using namespace std::chrono_literals;

TEST_CASE("Mutex keeps a plain counter exact under contention from many fibers on several workers",
          "[runtime][mutex]") {
  constexpr int kFibers = 64;
  constexpr int kIncrements = 500;
  long counter = 0;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  fiber::run(
      [&] {
        fiber::Mutex lock;
        fiber::WaitGroup all;
        all.add(kFibers);
        for (int i = 0; i < kFibers; ++i)
          fiber::spawn([&, i] {
            for (int n = 0; n < kIncrements; ++n) {
              std::lock_guard<fiber::Mutex> guard(lock);
              if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
              const long before = counter;
              if ((n + i) % 16 == 0) fiber::yield();  // hold the lock across a switch now and then
              counter = before + 1;
              inside.fetch_sub(1);
            }
            all.done();
          });
        all.wait();
      },
      fiber::Options{.workers = 4});
  CHECK(overlaps.load() == 0);
  CHECK(counter == long{kFibers} * kIncrements);
}

TEST_CASE("Mutex try_lock fails while another fiber holds the lock and succeeds once it is free", "[runtime][mutex]") {
  bool failed_while_held = false;
  bool succeeded_when_free = false;
  fiber::run(
      [&] {
        fiber::Mutex lock;
        fiber::Channel<int> held, release;
        fiber::spawn([&] {
          lock.lock();
          held.send(1);
          release.recv();
          lock.unlock();
          held.send(2);
        });
        held.recv();
        failed_while_held = !lock.try_lock();
        release.send(1);
        held.recv();
        succeeded_when_free = lock.try_lock();
        if (succeeded_when_free) lock.unlock();
      },
      fiber::Options{.workers = 2});
  CHECK(failed_while_held);
  CHECK(succeeded_when_free);
}

TEST_CASE("CondVar notify_one wakes one waiter and notify_all wakes the rest", "[runtime][condvar]") {
  constexpr int kWaiters = 6;
  int woken_after_one = -1;
  int woken_after_all = -1;
  fiber::run(
      [&] {
        fiber::Mutex lock;
        fiber::CondVar changed;
        int tickets = 0;  // guarded by lock: each wake-up consumes one ticket, notify_all opens the gate
        bool open = false;
        int woken = 0;
        int waiting = 0;
        fiber::WaitGroup all;
        all.add(kWaiters);
        for (int i = 0; i < kWaiters; ++i)
          fiber::spawn([&] {
            std::unique_lock<fiber::Mutex> guard(lock);
            ++waiting;
            changed.wait(guard, [&] { return open || tickets > 0; });
            if (!open) --tickets;
            ++woken;
            guard.unlock();  // before done(): once main sees the last done, the mutex goes away
            all.done();
          });
        auto count_woken = [&] {
          std::lock_guard<fiber::Mutex> guard(lock);
          return woken;
        };
        auto count_waiting = [&] {
          std::lock_guard<fiber::Mutex> guard(lock);
          return waiting;
        };
        while (count_waiting() < kWaiters) fiber::sleep_for(1ms);
        {
          std::lock_guard<fiber::Mutex> guard(lock);
          tickets = 1;
          changed.notify_one();
        }
        fiber::sleep_for(20ms);
        woken_after_one = count_woken();
        {
          std::lock_guard<fiber::Mutex> guard(lock);
          open = true;
          changed.notify_all();
        }
        all.wait();
        woken_after_all = count_woken();
      },
      fiber::Options{.workers = 2});
  CHECK(woken_after_one == 1);
  CHECK(woken_after_all == kWaiters);
}

TEST_CASE("CondVar carries a producer-consumer queue without losing items", "[runtime][condvar]") {
  constexpr int kItems = 5000;
  long sum = 0;
  fiber::run(
      [&] {
        fiber::Mutex lock;
        fiber::CondVar not_empty;
        std::vector<int> queue;
        bool done = false;
        fiber::WaitGroup consumers;
        consumers.add(3);
        for (int c = 0; c < 3; ++c)
          fiber::spawn([&] {
            std::unique_lock<fiber::Mutex> guard(lock);
            for (;;) {
              not_empty.wait(guard, [&] { return done || !queue.empty(); });
              if (queue.empty()) break;
              sum += queue.back();
              queue.pop_back();
            }
            guard.unlock();  // before done(): once main sees the last done, the mutex goes away
            consumers.done();
          });
        for (int i = 1; i <= kItems; ++i) {
          std::lock_guard<fiber::Mutex> guard(lock);
          queue.push_back(i);
          not_empty.notify_one();
        }
        {
          std::lock_guard<fiber::Mutex> guard(lock);
          done = true;
          not_empty.notify_all();
        }
        consumers.wait();
      },
      fiber::Options{.workers = 3});
  CHECK(sum == long{kItems} * (kItems + 1) / 2);
}

TEST_CASE("WaitGroup wait returns only after every done, for several waiters", "[runtime][waitgroup]") {
  constexpr int kWorkers = 40;
  std::atomic<int> done_count{0};
  std::vector<int> seen_by_waiters(3, -1);
  fiber::run(
      [&] {
        fiber::WaitGroup group;
        group.add(kWorkers);
        fiber::WaitGroup waiters;
        waiters.add(3);
        for (std::size_t w = 0; w < 3; ++w)
          fiber::spawn([&, w] {
            group.wait();
            seen_by_waiters[w] = done_count.load();
            waiters.done();
          });
        for (int i = 0; i < kWorkers; ++i)
          fiber::spawn([&, i] {
            fiber::sleep_for(std::chrono::microseconds(100 * (i % 10)));
            done_count.fetch_add(1);
            group.done();
          });
        waiters.wait();
      },
      fiber::Options{.workers = 2});
  CHECK(seen_by_waiters == std::vector<int>(3, kWorkers));
}

TEST_CASE("WaitGroup wait with nothing added returns at once", "[runtime][waitgroup]") {
  bool returned = false;
  fiber::run([&] {
    fiber::WaitGroup empty;
    empty.wait();
    returned = true;
  });
  CHECK(returned);
}
