// scale_target: the inspector benchmark's fiber process. N fibers, each parked at call depth 15 (a chain of
// distinct noinline functions, descend<1> .. descend<15>), spread over the blocked states a server's fibers sit in:
// channel receive, channel send, mutex, sleep and condvar, plus a few fibers blocked in read(2) inside
// fiber::syscall (each of those holds a worker thread).
//
//   scale_target --fibers N [--syscalls K (default 4)] [--workers W (default 2)] [--stack-kib S (default 16)]
//
// Prints `scale_target: pid P, ...` then `READY` once every fiber has reached its blocking call, and runs until
// SIGTERM or SIGINT. 100k fibers need 100k stacks with a guard page each, i.e. about 200k mappings: more than
// the default vm.max_map_count (65530); bench/run_inspector.sh raises it.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string>
#include <string_view>

#include "fiberscope/runtime.h"

using namespace std::chrono_literals;

namespace {

constexpr int kDepth = 15;

struct ScaleOptions {
  unsigned fibers = 1000;
  unsigned syscalls = 4;
  unsigned workers = 2;
  unsigned stack_kib = 16;
};

enum class Blocking { chan_receive, chan_send, mutex, sleep, condvar, syscall_read };

// The objects the fibers block on. Nothing ever sends, receives, unlocks or notifies, so every fiber stays put.
struct Blockers {
  fiber::Channel<int> never_sent;
  fiber::Channel<int> never_received;  // unbuffered: every send waits for a receiver
  fiber::Mutex held;                   // locked by the main fiber for good
  fiber::Mutex condvar_lock;
  fiber::CondVar never_notified;
  int pipe_read_fd = -1;               // nobody writes to the pipe
  std::atomic<unsigned> parked{0};     // fibers that reached their blocking call
};

[[gnu::noinline]] void block(Blockers& blockers, Blocking how) {
  blockers.parked.fetch_add(1, std::memory_order_relaxed);
  switch (how) {
    case Blocking::chan_receive: (void)blockers.never_sent.recv(); break;
    case Blocking::chan_send: blockers.never_received.send(1); break;
    case Blocking::mutex: blockers.held.lock(); break;
    case Blocking::sleep: fiber::sleep_for(24h); break;
    case Blocking::condvar: {
      std::unique_lock<fiber::Mutex> lock(blockers.condvar_lock);
      blockers.never_notified.wait(lock);
      break;
    }
    case Blocking::syscall_read: {
      char byte;
      (void)fiber::syscall([&] { return ::read(blockers.pipe_read_fd, &byte, 1); });
      break;
    }
  }
  asm volatile("" ::: "memory");  // no tail call into the blocking function: block() stays a frame
}

// Each level is its own function (a distinct template instance), and the empty asm after the call keeps the
// compiler from turning it into a tail call, so all 15 frames are really on the stack.
template <int Level>
[[gnu::noinline]] void descend(Blockers& blockers, Blocking how) {
  if constexpr (Level == kDepth) {
    block(blockers, how);
  } else {
    descend<Level + 1>(blockers, how);
  }
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] int wait_for_shutdown_signal(const sigset_t& signals) {
  for (;;) {
    const int signal_number = fiber::syscall([&] { return ::sigwaitinfo(&signals, nullptr); });
    if (signal_number > 0) return signal_number;
  }
}

void run_scale(const ScaleOptions& options, const sigset_t& shutdown_signals) {
  static Blockers blockers;  // outlives every fiber: the process ends with _Exit
  int fds[2];
  if (::pipe(fds) != 0) {
    std::perror("scale_target: pipe");
    std::_Exit(1);
  }
  blockers.pipe_read_fd = fds[0];
  blockers.held.lock();

  constexpr Blocking kCrowd[] = {Blocking::chan_receive, Blocking::chan_send, Blocking::mutex, Blocking::sleep,
                                 Blocking::condvar};
  const unsigned syscalls = std::min(options.syscalls, options.fibers);
  for (unsigned k = 0; k < options.fibers; ++k) {
    const Blocking how = k < syscalls ? Blocking::syscall_read : kCrowd[k % std::size(kCrowd)];
    fiber::spawn([how] { descend<1>(blockers, how); }, "scale-" + std::to_string(k));
  }
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (blockers.parked.load(std::memory_order_relaxed) < options.fibers) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "scale_target: only %u of %u fibers parked after 120 s\n", blockers.parked.load(),
                   options.fibers);
      std::_Exit(1);
    }
    fiber::sleep_for(5ms);
  }
  fiber::sleep_for(100ms);  // the last ones counted themselves just before parking
  std::printf("scale_target: pid %d, %u fibers (%u in syscalls) at depth %d, %u workers, %u KiB stacks\nREADY\n",
              int(::getpid()), options.fibers, syscalls, kDepth, options.workers, options.stack_kib);
  std::fflush(stdout);
  const int signal_number = wait_for_shutdown_signal(shutdown_signals);
  std::printf("scale_target: %s, exiting\n", ::strsignal(signal_number));
  std::fflush(stdout);
  std::_Exit(0);  // the fibers block forever by design
}

bool parse_count(const char* text, unsigned min, unsigned max, unsigned& out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long value = std::strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < min || value > max) return false;
  out = static_cast<unsigned>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ScaleOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    unsigned* target = nullptr;
    unsigned min = 1, max = 1'000'000;
    if (arg == "--fibers") {
      target = &options.fibers;
    } else if (arg == "--syscalls") {
      target = &options.syscalls;
      min = 0, max = 64;
    } else if (arg == "--workers") {
      target = &options.workers;
      max = 256;
    } else if (arg == "--stack-kib") {
      target = &options.stack_kib;
      min = 16, max = 1024;
    }
    if (!target || i + 1 >= argc || !parse_count(argv[i + 1], min, max, *target)) {
      std::fprintf(stderr,
                   "usage: scale_target --fibers N [--syscalls K (default 4)] [--workers W (default 2)] "
                   "[--stack-kib S (default 16)]\n");
      return 2;
    }
    ++i;
  }
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  if (int error = pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr); error != 0) {
    std::fprintf(stderr, "scale_target: pthread_sigmask: %s\n", std::strerror(error));
    return 1;
  }
  return fiber::run([&] { run_scale(options, shutdown_signals); },
                    fiber::Options{.workers = options.workers, .stack_bytes = std::size_t{options.stack_kib} * 1024});
}
