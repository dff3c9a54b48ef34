// thread_target: the threads-only comparison's process. N plain pthreads (default 100), no fiber runtime, each
// blocked at call depth 10 (distinct noinline functions walk<1> .. walk<10>) in one of: read(2) on a pipe nobody
// writes, pthread_cond_wait on a condition nobody signals, nanosleep.
//
//   thread_target [--threads N]
//
// Prints `thread_target: pid P, ...` then `READY` once every thread has reached its blocking call, and runs until
// SIGTERM or SIGINT.
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

constexpr int kDepth = 10;

enum class Blocking { pipe_read, condvar, sleep };

int g_pipe_read_fd = -1;
pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_never_signalled = PTHREAD_COND_INITIALIZER;
std::atomic<unsigned> g_parked{0};

[[gnu::noinline]] void block(Blocking how) {
  g_parked.fetch_add(1, std::memory_order_relaxed);
  switch (how) {
    case Blocking::pipe_read: {
      char byte;
      while (::read(g_pipe_read_fd, &byte, 1) < 0 && errno == EINTR) {
      }
      break;
    }
    case Blocking::condvar:
      pthread_mutex_lock(&g_lock);
      for (;;) pthread_cond_wait(&g_never_signalled, &g_lock);
    case Blocking::sleep:
      for (;;) {
        timespec day{86400, 0};
        ::nanosleep(&day, nullptr);
      }
  }
  for (;;) ::pause();
}

// Distinct functions per level; the empty asm after the call prevents tail calls, so every level is a frame.
template <int Level>
[[gnu::noinline]] void walk(Blocking how) {
  if constexpr (Level == kDepth) {
    block(how);
  } else {
    walk<Level + 1>(how);
  }
  asm volatile("" ::: "memory");
}

void* thread_main(void* argument) {
  walk<1>(static_cast<Blocking>(reinterpret_cast<std::uintptr_t>(argument)));
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 100;
  if (argc == 3 && std::string_view(argv[1]) == "--threads") {
    threads = static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10));
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: thread_target [--threads N (default 100)]\n");
    return 2;
  }
  if (threads == 0 || threads > 10000) {
    std::fprintf(stderr, "thread_target: --threads wants 1..10000\n");
    return 2;
  }
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGTERM);
  sigaddset(&shutdown_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);  // inherited by every thread: main takes them
  int fds[2];
  if (::pipe(fds) != 0) {
    std::perror("thread_target: pipe");
    return 1;
  }
  g_pipe_read_fd = fds[0];
  for (unsigned k = 0; k < threads; ++k) {
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, 256 * 1024);
    auto* how = reinterpret_cast<void*>(static_cast<std::uintptr_t>(k % 3));
    if (int error = pthread_create(&thread, &attributes, thread_main, how); error != 0) {
      std::fprintf(stderr, "thread_target: pthread_create: %s\n", std::strerror(error));
      return 1;
    }
    pthread_attr_destroy(&attributes);
  }
  while (g_parked.load() < threads) ::usleep(1000);
  ::usleep(50'000);  // the last ones counted themselves just before blocking
  std::printf("thread_target: pid %d, %u threads at depth %d\nREADY\n", int(::getpid()), threads, kDepth);
  std::fflush(stdout);
  int signal_number = 0;
  while (sigwait(&shutdown_signals, &signal_number) != 0) {
  }
  std::_Exit(0);
}
