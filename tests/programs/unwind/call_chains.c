// call_chains: threads parked in known call chains, for checking the unwinder against gdb.
//
// The main thread and two workers block in main|thread_main -> level_a -> level_b -> level_c -> blocker (a read on
// a pipe nobody writes); a third worker runs fault_a -> fault_b, which faults on purpose; its SIGSEGV handler
// blocks in on_fault -> handler_wait -> blocker, so its stack crosses a signal frame. Prints READY once every
// thread has reached its blocker, then blocks until killed. Built at -O0 and -O2, with and without frame
// pointers, and with CFI only in .debug_frame.
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

static int never_written[2];
static atomic_int threads_blocked;
static volatile int sink;
static volatile int keep_blocking = 1;  // never cleared: it only keeps -O2 from treating blocker as noreturn
static int* volatile fault_address = (int*)16;  // unmapped: writing there raises SIGSEGV

NOINLINE int blocker(int depth) {
  atomic_fetch_add(&threads_blocked, 1);
  char byte;
  while (keep_blocking) {
    if (read(never_written[0], &byte, 1) == 1) sink += byte;
  }
  return depth;
}

// Distinct constants keep -O2's identical-code folding from merging these; the + after each call keeps it from
// becoming a tail call, so every level keeps its own frame.
NOINLINE int level_c(int depth) { return blocker(depth + 3) + 3; }
NOINLINE int level_b(int depth) { return level_c(depth + 2) + 2; }
NOINLINE int level_a(int depth) { return level_b(depth + 1) + 1; }

NOINLINE int handler_wait(int signal_number) { return blocker(signal_number + 7) + 7; }
NOINLINE void on_fault(int signal_number) { sink += handler_wait(signal_number); }

NOINLINE int fault_b(int depth) {
  *fault_address = depth;
  return depth + 5;
}
NOINLINE int fault_a(int depth) { return fault_b(depth + 4) + 4; }

NOINLINE void* thread_main(void* arg) {
  sink += level_a((int)(long)arg);
  return NULL;
}

NOINLINE void* fault_thread_main(void* arg) {
  sink += fault_a((int)(long)arg);
  return NULL;
}

int main(void) {
  if (pipe(never_written) != 0) return 1;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_fault;
  sigaction(SIGSEGV, &action, NULL);

  pthread_t threads[3];
  pthread_create(&threads[0], NULL, thread_main, (void*)10L);
  pthread_create(&threads[1], NULL, thread_main, (void*)20L);
  pthread_create(&threads[2], NULL, fault_thread_main, (void*)30L);
  while (atomic_load(&threads_blocked) < 3) usleep(1000);
  printf("READY\n");
  fflush(stdout);
  // Let the workers get from the counter into read() before anyone looks.
  struct timespec pause_time = {0, 50 * 1000 * 1000};
  nanosleep(&pause_time, NULL);
  return level_a(0);
}
