// crasher_threads MODE: a multi-threaded C program for core file tests.
//
// It fills a global buffer with a known pattern, starts three worker threads that block in
// worker_wait_level1 -> worker_wait_level2, and prints what a test checks the core against:
//   PATTERN <address> <size>       the buffer (byte i holds (i * 7 + 3) & 0xff)
//   CODE <address> <hex bytes>     the first 16 bytes of crasher_marker_function (read-only text)
//   THREAD <tid>                   once per worker
// Then, by MODE:
//   segv   a fourth thread prints "FAULT <address> TID <tid>" and writes to that unmapped address (SIGSEGV)
//   abort  a fourth thread prints "ABORT TID <tid>" and calls abort() (SIGABRT)
//   ready  prints "READY" and blocks until killed (for gdb's gcore and fiberscope's write_core)
// Like most programs, it also maps a data file (crasher_data.txt in its working directory, as a locale archive
// would be), whose pages a kernel core omits, and its workers name themselves "worker" (a core records no name).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { kWorkers = 3, kPatternBytes = 8192, kThreadStackBytes = 256 * 1024 };

// An address in the lowest 64 KiB, which Linux never maps (vm.mmap_min_addr), so writing to it faults there.
#define FAULT_ADDRESS ((uintptr_t)0x4321)

unsigned char pattern_buffer[kPatternBytes];
static pthread_barrier_t workers_started;

static int current_tid(void) { return (int)syscall(SYS_gettid); }

__attribute__((noinline)) int crasher_marker_function(int value) { return value * 3 + 1; }

__attribute__((noinline)) static void worker_wait_level2(void) {
  for (;;) pause();
}

__attribute__((noinline)) static void worker_wait_level1(void) {
  worker_wait_level2();
  __asm__ volatile("");  // keeps the call from becoming a tail call
}

static void* worker_main(void* unused) {
  (void)unused;
  pthread_setname_np(pthread_self(), "worker");
  printf("THREAD %d\n", current_tid());
  fflush(stdout);
  pthread_barrier_wait(&workers_started);
  worker_wait_level1();
  return NULL;
}

__attribute__((noinline)) static void crash_by_segv(void) {
  printf("FAULT 0x%lx TID %d\n", (unsigned long)FAULT_ADDRESS, current_tid());
  fflush(stdout);
  *(volatile int*)FAULT_ADDRESS = 42;
}

__attribute__((noinline)) static void crash_by_abort(void) {
  printf("ABORT TID %d\n", current_tid());
  fflush(stdout);
  abort();
}

static void* crasher_main(void* mode) {
  if (strcmp((const char*)mode, "segv") == 0) crash_by_segv();
  else crash_by_abort();
  return NULL;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "segv") != 0 && strcmp(mode, "abort") != 0 && strcmp(mode, "ready") != 0) {
    fprintf(stderr, "usage: %s segv|abort|ready\n", argv[0]);
    return 2;
  }
  FILE* data = fopen("crasher_data.txt", "w+");
  if (!data || fputs("not code: a data file mapped like a locale archive\n", data) < 0 || fflush(data) != 0 ||
      mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fileno(data), 0) == MAP_FAILED) {
    perror("crasher_data.txt");
    return 2;
  }
  for (int i = 0; i < kPatternBytes; ++i) pattern_buffer[i] = (unsigned char)((i * 7 + 3) & 0xff);
  printf("PATTERN %p %d\n", (void*)pattern_buffer, kPatternBytes);
  // Through an integer: ISO C has no direct conversion from a function pointer to an object pointer.
  uintptr_t code_address = (uintptr_t)&crasher_marker_function;
  const unsigned char* code = (const unsigned char*)code_address;
  printf("CODE 0x%lx ", (unsigned long)code_address);
  for (int i = 0; i < 16; ++i) printf("%02x", code[i]);
  printf("\n");
  fflush(stdout);

  // Small stacks keep the cores small (the default 8 MiB each would make them ~35 MB of mostly zeros).
  pthread_attr_t small_stack;
  pthread_attr_init(&small_stack);
  pthread_attr_setstacksize(&small_stack, kThreadStackBytes);
  pthread_barrier_init(&workers_started, NULL, kWorkers + 1);
  pthread_t workers[kWorkers];
  for (int i = 0; i < kWorkers; ++i) pthread_create(&workers[i], &small_stack, worker_main, NULL);
  pthread_barrier_wait(&workers_started);

  if (strcmp(mode, "ready") == 0) {
    printf("READY\n");
    fflush(stdout);
    for (;;) pause();
  }
  pthread_t crasher;
  pthread_create(&crasher, &small_stack, crasher_main, (void*)mode);
  pthread_join(crasher, NULL);
  return 1;  // not reached: the crasher kills the process
}
