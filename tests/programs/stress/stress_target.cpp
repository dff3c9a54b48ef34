// stress_target: a fiber program under load whose threads come and go, for the attach/dump/detach stress test.
//
//   stress_target [--churn-threads N]
//
// Fibers: producers send numbered messages over buffered channels to consumers, which add them to a checksum;
// short-lived fibers are spawned and joined all the time, some cross fiber::syscall and foreign_call. Beside the
// runtime, N plain threads (default 2) each create and join short-lived threads in a loop, so threads are created
// and exit while an inspector attaches. Everything counts what it did.
//
// Prints READY once running. SIGUSR1 prints "STATUS sent=.. received=.. spawned=.. threads=.. rounds=..";
// SIGTERM stops every producer, drains the channels and prints "DONE sent=S received=R checksum_sent=A
// checksum_received=B spawned=F threads=T", then exits 0 if every message sent was received with the same checksum
// (else 3).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fiberscope/runtime.h"

namespace {

constexpr int kPairs = 4;
constexpr std::size_t kChannelCapacity = 16;

std::atomic<bool> stopping{false};
std::atomic<std::uint64_t> sent{0}, received{0}, checksum_sent{0}, checksum_received{0};
std::atomic<std::uint64_t> spawned{0}, threads_created{0}, rounds{0};

void print_status(const char* tag) {
  std::printf("%s sent=%llu received=%llu checksum_sent=%llu checksum_received=%llu spawned=%llu threads=%llu "
              "rounds=%llu\n",
              tag, static_cast<unsigned long long>(sent.load()), static_cast<unsigned long long>(received.load()),
              static_cast<unsigned long long>(checksum_sent.load()),
              static_cast<unsigned long long>(checksum_received.load()),
              static_cast<unsigned long long>(spawned.load()), static_cast<unsigned long long>(threads_created.load()),
              static_cast<unsigned long long>(rounds.load()));
  std::fflush(stdout);
}

// A value a consumer cannot guess: a lost, duplicated or corrupted message changes the checksum.
std::uint64_t mix(std::uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdull;
  return value ^ (value >> 29);
}

long foreign_work(void* argument) {
  auto* value = static_cast<std::uint64_t*>(argument);
  *value = mix(*value);
  return 0;
}

void producer(fiber::Channel<std::uint64_t>& channel, std::uint64_t first) {
  for (std::uint64_t n = first; !stopping.load(std::memory_order_relaxed); n += kPairs) {
    const std::uint64_t value = mix(n);
    channel.send(value);
    sent.fetch_add(1, std::memory_order_relaxed);
    checksum_sent.fetch_add(value, std::memory_order_relaxed);
    if (n % 64 == 0) fiber::sleep_for(std::chrono::microseconds(200));  // load, not a busy loop
  }
  channel.close();
}

void consumer(fiber::Channel<std::uint64_t>& channel) {
  while (auto value = channel.recv()) {
    received.fetch_add(1, std::memory_order_relaxed);
    checksum_received.fetch_add(*value, std::memory_order_relaxed);
  }
}

// Short-lived fibers, spawned and joined in rounds; some block in a syscall or run a foreign call.
void spawner() {
  while (!stopping.load(std::memory_order_relaxed)) {
    fiber::WaitGroup group;
    for (int i = 0; i < 8; ++i) {
      group.add(1);
      spawned.fetch_add(1, std::memory_order_relaxed);
      fiber::spawn(
          [&group, i] {
            std::uint64_t value = static_cast<std::uint64_t>(i);
            if (i % 3 == 0) fiber::syscall([] { return ::usleep(100); });
            if (i % 3 == 1) fiber::foreign_call(foreign_work, &value);
            fiber::yield();
            group.done();
          },
          "short-lived");
    }
    group.wait();
    rounds.fetch_add(1, std::memory_order_relaxed);
    fiber::sleep_for(std::chrono::milliseconds(1));
  }
}

// A plain thread that keeps creating and joining threads, outside the runtime.
void thread_churner() {
  while (!stopping.load(std::memory_order_relaxed)) {
    std::thread worker([] {
      volatile std::uint64_t sink = 0;
      for (int i = 0; i < 20000; ++i) sink = sink + mix(static_cast<std::uint64_t>(i));
    });
    threads_created.fetch_add(1, std::memory_order_relaxed);
    worker.join();
    ::usleep(500);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int churn_threads = 2;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--churn-threads") == 0) churn_threads = std::atoi(argv[i + 1]);

  // Every thread inherits this mask, so SIGUSR1/SIGTERM reach only the sigwait below.
  sigset_t control;
  sigemptyset(&control);
  sigaddset(&control, SIGUSR1);
  sigaddset(&control, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &control, nullptr);

  std::thread signals([&control] {
    for (;;) {
      int signal_number = 0;
      if (sigwait(&control, &signal_number) != 0) continue;
      if (signal_number == SIGUSR1) print_status("STATUS");
      if (signal_number == SIGTERM) {
        stopping.store(true);
        return;
      }
    }
  });
  std::vector<std::thread> churners;
  for (int i = 0; i < churn_threads; ++i) churners.emplace_back(thread_churner);

  fiber::Options options;
  options.workers = 2;
  const int run_status = fiber::run(
      [] {
        std::vector<std::unique_ptr<fiber::Channel<std::uint64_t>>> channels;
        fiber::WaitGroup group;
        for (int pair = 0; pair < kPairs; ++pair) {
          channels.push_back(std::make_unique<fiber::Channel<std::uint64_t>>(kChannelCapacity));
          auto& channel = *channels.back();
          group.add(3);
          fiber::spawn([&channel, &group, pair] { producer(channel, static_cast<std::uint64_t>(pair)); group.done(); },
                       "producer");
          fiber::spawn([&channel, &group] { consumer(channel); group.done(); }, "consumer");
          fiber::spawn([&group] { spawner(); group.done(); }, "spawner");
        }
        std::printf("READY\n");
        std::fflush(stdout);
        group.wait();
      },
      options);

  signals.join();
  for (auto& churner : churners) churner.join();
  print_status("DONE");
  if (run_status != 0) return 2;
  return sent.load() == received.load() && checksum_sent.load() == checksum_received.load() ? 0 : 3;
}
