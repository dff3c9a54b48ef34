// A multi-threaded C program whose every thread stays parked, so gdb's `thread apply all bt` and fiberscope's
// dump of the same process can be compared frame by frame (tests/unit/cli/gdb_comparison_test.cpp).
// Threads: one blocked in read() on a pipe nobody writes, one in pthread_cond_wait, one in nanosleep, one in
// sem_wait, each through a chain of calls with integer arguments; main in pthread_join. Prints READY when all are
// parked (an approximation: each thread announces itself just before it blocks; the test waits a little more).
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int never_written[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_signalled = PTHREAD_COND_INITIALIZER;
static sem_t never_posted;
static pthread_barrier_t parked;

__attribute__((noinline)) static int park_in_read(int depth, long tag) {
  char byte = 0;
  pthread_barrier_wait(&parked);
  while (read(never_written[0], &byte, 1) != 0) {
  }
  return depth + (int)tag + byte;
}

__attribute__((noinline)) static int park_in_cond(int depth, long tag) {
  pthread_mutex_lock(&lock);
  pthread_barrier_wait(&parked);
  for (;;) pthread_cond_wait(&never_signalled, &lock);
  return depth + (int)tag;
}

__attribute__((noinline)) static int park_in_sleep(int depth, long tag) {
  pthread_barrier_wait(&parked);
  for (;;) {
    struct timespec hour = {3600, 0};
    nanosleep(&hour, NULL);
  }
  return depth + (int)tag;
}

__attribute__((noinline)) static int park_in_sem(int depth, long tag) {
  pthread_barrier_wait(&parked);
  for (;;) sem_wait(&never_posted);
  return depth + (int)tag;
}

typedef int (*parker)(int, long);

__attribute__((noinline)) static int descend(parker park, int depth, long tag) {
  if (depth > 0) return descend(park, depth - 1, tag) + 1;
  return park(depth, tag);
}

static void* thread_main(void* argument) {
  static const parker parkers[] = {park_in_read, park_in_cond, park_in_sleep, park_in_sem};
  const long index = (long)argument;
  char name[16];
  snprintf(name, sizeof name, "compare-%ld", index);
  pthread_setname_np(pthread_self(), name);
  descend(parkers[index], (int)index + 1, 100 + index);
  return NULL;
}

int main(void) {
  enum { kThreads = 4 };
  if (pipe(never_written) != 0 || sem_init(&never_posted, 0, 0) != 0) return 1;
  pthread_barrier_init(&parked, NULL, kThreads + 1);
  pthread_t threads[kThreads];
  for (long i = 0; i < kThreads; ++i) pthread_create(&threads[i], NULL, thread_main, (void*)i);
  pthread_barrier_wait(&parked);
  printf("READY\n");
  fflush(stdout);
  pthread_join(threads[0], NULL);
  return 0;
}
