// fiber_states: fibers parked in every state with known call chains and argument values, for `fiberscope dump`.
//
//   fiber_states [--corrupt=magic|records|cycle] [--sleepers=N]
//
// Fibers (names and chains are what the tests expect):
//   "chan-waiter"   chan_level_one(depth=7) -> chan_level_two(depth=7, tag=4660) -> Channel::recv   [chan receive]
//   "sleeper"       sleep_outer(seconds=3600) -> sleep_inlined (always_inline) -> sleep_for       [sleep]
//   "mutex-waiter"  mutex_level_one(id=42) -> Mutex::lock                                         [mutex]
//   "syscaller"     syscall_level_one(fd) -> fiber::syscall(read on a pipe)                        [syscall]
//   "runner"        runner_level_one(marker=99) -> poll(2) called directly: the fiber stays running  [running]
//   "nested-ffi"    ffi_level_one -> foreign_call(c_outer) -> c_call_back -> fiber_callback -> ffi_callback
//                   -> foreign_call(c_block_in_poll)                                               [foreign]
// --sleepers=N adds N fibers "sleeper-1".."sleeper-N" parked like "sleeper", with seconds=3601..3600+N (same
// frames, different arguments).
// Prints READY when all are in place, then blocks. --corrupt damages the fiber table after READY's line
// (and prints CORRUPTED): a bad magic, garbage in some records, or a cyclic transition chain.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fiberscope/debug_abi.h"
#include "fiberscope/runtime.h"

extern "C" struct fiberscope_debug_root fiberscope_debug_root;
extern "C" long c_outer(void* request);
extern "C" long c_block_in_poll(void* fd_pointer);

namespace {

std::atomic<int> parked{0};
int never_readable[2];  // a pipe nobody writes to
fiber::Channel<int>* channel;
fiber::Mutex* mutex;

// Marks the caller as about to block; the optimizer must not move it past the blocking call.
void about_to_block() { parked.fetch_add(1, std::memory_order_release); }

// Uses a result after the call, so -O2 cannot turn the call into a jump (a tail call has no frame to show).
template <class T>
T after_call(T value) {
  asm volatile("" : "+r"(value)::"memory");
  return value;
}
volatile long sink;

__attribute__((noinline)) int chan_level_two(int depth, int tag) {
  about_to_block();
  auto value = after_call(channel->recv().value_or(0));
  return value + depth + tag;
}

__attribute__((noinline)) int chan_level_one(int depth) { return after_call(chan_level_two(depth, 0x1234)) + 1; }

__attribute__((always_inline)) inline void sleep_inlined(long seconds) {
  about_to_block();
  fiber::sleep_for(std::chrono::seconds(seconds));
}

__attribute__((noinline)) void sleep_outer(long seconds) {
  sleep_inlined(seconds);
  asm volatile("" ::: "memory");  // keep a frame after the inlined call
}

__attribute__((noinline)) void mutex_level_one(int id) {
  about_to_block();
  mutex->lock();
  mutex->unlock();
  asm volatile("" ::"r"(id) : "memory");
}

__attribute__((noinline)) long syscall_level_one(int fd) {
  about_to_block();
  char byte;
  return after_call(fiber::syscall([&] { return ::read(fd, &byte, 1); }));
}

__attribute__((noinline)) int runner_level_one(int marker) {
  about_to_block();
  pollfd watched{never_readable[0], POLLIN, 0};
  // Called directly, not through fiber::syscall: the fiber stays "running" while its thread sleeps in the kernel.
  return after_call(::poll(&watched, 1, -1)) + marker;
}

struct CallbackRequest {
  long (*callback)(void*);
  void* argument;
};

__attribute__((noinline)) long ffi_callback(void* fd_pointer) {
  about_to_block();
  return after_call(fiber::foreign_call(c_block_in_poll, fd_pointer));
}

__attribute__((noinline)) long ffi_level_one(int fd) {
  CallbackRequest request{ffi_callback, &fd};
  return after_call(fiber::foreign_call(c_outer, &request));
}

void corrupt(const std::string& how) {
  if (how == "magic") {
    fiberscope_debug_root.magic ^= 0xff;
  } else if (how == "records") {
    // Garbage in the second and third fiber records; the others must still be dumped.
    auto* chunk = reinterpret_cast<fiberscope_chunk*>(fiberscope_debug_root.fiber_chunks);
    auto* records = reinterpret_cast<unsigned char*>(chunk + 1);
    for (int index : {1, 2}) {
      auto* record = reinterpret_cast<fiberscope_fiber*>(records + index * chunk->record_size);
      record->state = 77;
      record->stack_lo = ~0ull;
    }
  } else if (how == "cycle") {
    // The nested foreign call's innermost transition points back at itself.
    auto* chunk = reinterpret_cast<fiberscope_chunk*>(fiberscope_debug_root.fiber_chunks);
    auto* records = reinterpret_cast<unsigned char*>(chunk + 1);
    for (unsigned index = 0; index < chunk->used; ++index) {
      auto* record = reinterpret_cast<fiberscope_fiber*>(records + index * chunk->record_size);
      if (std::strcmp(record->name, "nested-ffi") == 0 && record->transition_top) {
        auto* top = reinterpret_cast<fiberscope_transition*>(record->transition_top);
        top->prev = record->transition_top;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string corruption;
  int sleepers = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--corrupt=", 10) == 0) corruption = argv[i] + 10;
    if (std::strncmp(argv[i], "--sleepers=", 11) == 0) sleepers = std::atoi(argv[i] + 11);
  }
  if (::pipe(never_readable) != 0) return 1;
  fiber::Options options;
  options.workers = 4;
  return fiber::run(
      [&] {
        fiber::Channel<int> local_channel;
        fiber::Mutex local_mutex;
        channel = &local_channel;
        mutex = &local_mutex;
        mutex->lock();  // held by main forever: mutex-waiter blocks
        fiber::spawn([] { sink = chan_level_one(7); }, "chan-waiter");
        fiber::spawn([] { sleep_outer(3600); }, "sleeper");
        fiber::spawn([] { mutex_level_one(42); }, "mutex-waiter");
        fiber::spawn([] { sink = syscall_level_one(never_readable[0]); }, "syscaller");
        fiber::spawn([] { sink = runner_level_one(99); }, "runner");
        fiber::spawn([] { sink = ffi_level_one(never_readable[0]); }, "nested-ffi");
        for (int k = 1; k <= sleepers; ++k)
          fiber::spawn([k] { sleep_outer(3600 + k); }, "sleeper-" + std::to_string(k));
        while (parked.load(std::memory_order_acquire) < 6 + sleepers) fiber::sleep_for(std::chrono::milliseconds(2));
        fiber::sleep_for(std::chrono::milliseconds(20));  // let the last ones reach their blocking call
        std::printf("READY\n");
        std::fflush(stdout);
        if (!corruption.empty()) {
          corrupt(corruption);
          std::printf("CORRUPTED\n");
          std::fflush(stdout);
        }
        fiber::sleep_for(std::chrono::hours(24));
      },
      options);
}
