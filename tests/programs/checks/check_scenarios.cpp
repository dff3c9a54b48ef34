// check_scenarios: fibers in exactly the situations `fiberscope check` must judge, for tests/unit/checks.
//
//   check_scenarios stale-frame      "callback-then-block": foreign_call -> C -> fiber_callback (returns) -> C blocks.
//                                    With FIBERSCOPE_FAULTS=stale-syscall-frame its syscall_sp is in popped frames.
//   check_scenarios blocked-foreign  "foreign-blocker": blocked in C inside foreign_call (undead-args scenario).
//   check_scenarios dangling         "dangling-caller": blocked in a foreign call whose argument points into the
//                                    stack of the finished fiber "short-lived".
//   check_scenarios corrupt=outside|wrong-function|no-frame
//                                    "corrupted": blocked in a foreign call, then its own record is rewritten:
//                                    syscall_sp past its stack, syscall_pc in another function, syscall_sp 8 bytes
//                                    off its frame.
//   check_scenarios healthy          fibers blocked in every healthy way: a syscall, a foreign call, a syscall
//                                    inside a callback, and nested callbacks three deep ending in a blocking call.
//   check_scenarios churn            thousands of short fibers through syscalls, foreign calls and nested callbacks,
//                                    forever.
// Prints READY once every fiber is in place (and CORRUPTED after corrupting), then runs until killed.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "fiberscope/debug_abi.h"
#include "fiberscope/runtime.h"

extern "C" {
extern struct fiberscope_debug_root fiberscope_debug_root;
struct scenario_request {
  long (*callback)(void*);
  void* callback_argument;
  int block_fd;
};
long scenario_c_block(void* fd_pointer);
long scenario_c_callback_then_block(void* request);
long scenario_c_nest(void* request);
long scenario_c_block_carrying(void* carried);
long scenario_c_quick(void* value);
extern int scenario_block_fd;
}

long nest_level_quick(void* level_pointer);

namespace {

int never_readable[2];  // a pipe nobody writes to
std::atomic<int> in_place{0};
volatile long sink;

void ready() {
  std::printf("READY\n");
  std::fflush(stdout);
}

// Waits (as the main fiber) until `count` fibers said they are about to block, then lets them get there.
void wait_in_place(int count) {
  while (in_place.load(std::memory_order_acquire) < count) fiber::sleep_for(std::chrono::milliseconds(1));
  fiber::sleep_for(std::chrono::milliseconds(30));
}

long quick_callback(void*) {
  in_place.fetch_add(1, std::memory_order_release);
  return 1;
}

__attribute__((noinline)) long call_back_then_block() {
  scenario_request request{quick_callback, nullptr, never_readable[0]};
  return fiber::foreign_call(scenario_c_callback_then_block, &request);
}

__attribute__((noinline)) long block_in_foreign_call() {
  in_place.fetch_add(1, std::memory_order_release);
  return fiber::foreign_call(scenario_c_block, &never_readable[0]);
}

__attribute__((noinline)) long block_in_syscall() {
  in_place.fetch_add(1, std::memory_order_release);
  char byte;
  return fiber::syscall([&] { return ::read(never_readable[0], &byte, 1); });
}

long syscall_in_callback(void*) { return block_in_syscall(); }

// Nested callbacks: level 3 blocks in C, levels 1 and 2 call back again.
long nest_level(void* level_pointer) {
  const long level = reinterpret_cast<long>(level_pointer);
  if (level >= 3) return block_in_foreign_call();
  scenario_request request{nest_level, reinterpret_cast<void*>(level + 1), -1};
  return fiber::foreign_call(scenario_c_nest, &request);
}

void* dead_stack_pointer;
std::atomic<bool> short_lived_done{false};

__attribute__((noinline)) void leave_a_pointer() {
  volatile long local = 42;
  dead_stack_pointer = const_cast<long*>(&local);
  short_lived_done.store(true, std::memory_order_release);
}

__attribute__((noinline)) long carry_dangling_pointer() {
  in_place.fetch_add(1, std::memory_order_release);
  return fiber::foreign_call(scenario_c_block_carrying, dead_stack_pointer);
}

fiberscope_fiber* record_of(fiber::FiberId id) {
  for (auto* chunk = reinterpret_cast<fiberscope_chunk*>(fiberscope_debug_root.fiber_chunks); chunk;
       chunk = reinterpret_cast<fiberscope_chunk*>(chunk->next)) {
    auto* records = reinterpret_cast<unsigned char*>(chunk + 1);
    for (unsigned index = 0; index < chunk->used; ++index) {
      auto* record = reinterpret_cast<fiberscope_fiber*>(records + index * chunk->record_size);
      if (record->id == id) return record;
    }
  }
  return nullptr;
}

// Rewrites the blocked fiber's syscall frame under its seqlock, as a buggy runtime would.
void corrupt(fiber::FiberId id, std::string_view how) {
  fiberscope_fiber* record = record_of(id);
  if (!record) return;
  auto* seq = reinterpret_cast<std::atomic<std::uint64_t>*>(&record->seq);
  seq->fetch_add(1);
  if (how == "outside") record->syscall_sp = record->stack_hi + 64;
  else if (how == "wrong-function") record->syscall_pc = reinterpret_cast<std::uint64_t>(&leave_a_pointer) + 4;
  else if (how == "no-frame") record->syscall_sp += 8;
  seq->fetch_add(1);
}

void churn() {
  // Each worker fiber loops through every kind of stack switch; short-lived fibers are spawned all the time.
  for (int w = 0; w < 6; ++w) {
    fiber::spawn(
        [w] {
          for (long round = 0;; ++round) {
            sink = fiber::syscall([] { return ::getppid(); });
            sink = fiber::foreign_call(scenario_c_quick, reinterpret_cast<void*>(round));
            scenario_request request{nest_level_quick, reinterpret_cast<void*>(1L), -1};
            sink = fiber::foreign_call(scenario_c_nest, &request);
            if (round % 4 == w % 4)
              fiber::spawn([] { sink = fiber::foreign_call(scenario_c_quick, nullptr); }, "short");
            fiber::yield();
          }
        },
        "churner");
  }
}

}  // namespace

// Nested callbacks that return at once, three deep (used by the churn).
long nest_level_quick(void* level_pointer) {
  const long level = reinterpret_cast<long>(level_pointer);
  if (level >= 3) return fiber::syscall([] { return ::getppid(); });
  scenario_request request{nest_level_quick, reinterpret_cast<void*>(level + 1), -1};
  return fiber::foreign_call(scenario_c_nest, &request);
}

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  if (::pipe(never_readable) != 0) return 1;
  scenario_block_fd = never_readable[0];
  fiber::Options options;
  options.workers = mode == "churn" ? 2 : 4;
  return fiber::run(
      [&] {
        if (mode == "stale-frame") {
          fiber::spawn([] { sink = call_back_then_block(); }, "callback-then-block");
          wait_in_place(1);
        } else if (mode == "blocked-foreign") {
          fiber::spawn([] { sink = block_in_foreign_call(); }, "foreign-blocker");
          wait_in_place(1);
        } else if (mode == "dangling") {
          // The caller exists before the short-lived fiber, so the finished fiber's stack is not reused for it.
          fiber::spawn(
              [] {
                while (!short_lived_done.load(std::memory_order_acquire))
                  fiber::sleep_for(std::chrono::milliseconds(1));
                fiber::sleep_for(std::chrono::milliseconds(10));  // let "short-lived" finish
                sink = carry_dangling_pointer();
              },
              "dangling-caller");
          fiber::spawn([] { leave_a_pointer(); }, "short-lived");
          wait_in_place(1);
        } else if (mode.starts_with("corrupt=")) {
          const fiber::FiberId id = fiber::spawn([] { sink = block_in_foreign_call(); }, "corrupted");
          wait_in_place(1);
          ready();
          corrupt(id, mode.substr(8));
          std::printf("CORRUPTED\n");
          std::fflush(stdout);
          fiber::sleep_for(std::chrono::hours(24));
          return;
        } else if (mode == "healthy") {
          fiber::spawn([] { sink = block_in_syscall(); }, "syscall-blocker");
          fiber::spawn([] { sink = block_in_foreign_call(); }, "foreign-blocker");
          fiber::spawn(
              [] {
                scenario_request request{syscall_in_callback, nullptr, -1};
                sink = fiber::foreign_call(scenario_c_nest, &request);
              },
              "syscall-in-callback");
          fiber::spawn([] { sink = nest_level(reinterpret_cast<void*>(1L)); }, "nested-three");
          wait_in_place(4);
        } else if (mode == "churn") {
          churn();
        } else {
          std::fprintf(stderr,
                       "usage: check_scenarios stale-frame|blocked-foreign|dangling|corrupt=...|healthy|churn\n");
          std::exit(2);
        }
        ready();
        fiber::sleep_for(std::chrono::hours(24));
      },
      options);
}
