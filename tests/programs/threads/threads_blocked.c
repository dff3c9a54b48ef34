// A plain multi-threaded process with known call chains, for the live-capture tests.
//
// Usage: threads_blocked [WORKERS]   (default 4, at most 64)
// Each worker "worker-N" blocks in read() on a pipe nobody writes, called through
// worker_main -> chain_level_one -> chain_level_two. The main thread ticks `progress_counter` every millisecond,
// so a test can see that the process runs again after a capture. SIGUSR1 increments `signal_count`.
// Prints one "THREAD tid name local_address" line per worker, then
// "READY pid buffer size counter signals" (addresses in hex) and blocks until killed.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64

unsigned char pattern_buffer[8192];
volatile unsigned long progress_counter;
volatile sig_atomic_t signal_count;

static int never_written[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_started = PTHREAD_COND_INITIALIZER;
static int started;

static void on_usr1(int signal_number) {
  (void)signal_number;
  signal_count = signal_count + 1;
}

__attribute__((noinline)) static void chain_level_two(int index) {
  volatile int local = index;
  pthread_mutex_lock(&lock);
  printf("THREAD %ld worker-%d %p\n", (long)syscall(SYS_gettid), index, (void*)&local);
  fflush(stdout);
  ++started;
  pthread_cond_signal(&all_started);
  pthread_mutex_unlock(&lock);
  char byte;
  while (read(never_written[0], &byte, 1) != 0) {
  }
  __asm__ volatile("" ::: "memory");  // keeps the call above from becoming a tail call
}

__attribute__((noinline)) static void chain_level_one(int index) {
  chain_level_two(index);
  __asm__ volatile("" ::: "memory");
}

static void* worker_main(void* argument) {
  int index = (int)(long)argument;
  char name[16];
  snprintf(name, sizeof name, "worker-%d", index);
  pthread_setname_np(pthread_self(), name);
  chain_level_one(index);
  return NULL;
}

int main(int argc, char** argv) {
  int workers = argc > 1 ? atoi(argv[1]) : 4;
  if (workers < 0 || workers > MAX_WORKERS) workers = 4;
  for (size_t i = 0; i < sizeof pattern_buffer; ++i) pattern_buffer[i] = (unsigned char)(i * 7 + 3);
  signal(SIGUSR1, on_usr1);
  if (pipe(never_written) != 0) return 1;
  pthread_t threads[MAX_WORKERS];
  for (int i = 0; i < workers; ++i) pthread_create(&threads[i], NULL, worker_main, (void*)(long)i);
  pthread_mutex_lock(&lock);
  while (started < workers) pthread_cond_wait(&all_started, &lock);
  pthread_mutex_unlock(&lock);
  printf("READY %d %p %zu %p %p\n", (int)getpid(), (void*)pattern_buffer, sizeof pattern_buffer,
         (void*)&progress_counter, (void*)&signal_count);
  fflush(stdout);
  for (;;) {
    struct timespec tick = {0, 1000000};
    nanosleep(&tick, NULL);
    progress_counter = progress_counter + 1;
  }
}
