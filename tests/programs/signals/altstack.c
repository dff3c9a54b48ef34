// altstack MODE: a thread interrupted by a signal whose handler runs on an alternate signal stack (sigaltstack), or
// on the thread's own stack, so an unwinder must follow the handler's frames across the signal frame back into
// the interrupted code.
//   syscall      the handler (SA_ONSTACK) blocks in read() on a pipe nobody writes; prints READY
//   computing    the handler (SA_ONSTACK) spins; prints READY
//   off-stack    the handler (no SA_ONSTACK, on the thread's stack) blocks in read(); prints READY
//   overflow     the thread recurses until its stack overflows; the SIGSEGV handler on the altstack prints
//                "OVERFLOW" and aborts (a kernel core with every recursion frame below the handler's)
// The interrupted code is always altstack_interrupted_level2 <- altstack_interrupted_level1 <- altstack_thread.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int never_written[2];
static volatile int handler_entered;
static volatile unsigned long spin_counter;
static const char* mode = "";
static volatile int recursion_limit = 1 << 30;  // never reached: the stack overflows first

__attribute__((noinline)) static void altstack_handler_blocks(int depth) {
  char byte;
  handler_entered = 1;
  while (read(never_written[0], &byte, 1) != 0) {
  }
  __asm__ volatile("" ::"r"(depth) : "memory");  // keeps the call above from becoming a tail call
}

__attribute__((noinline)) static void altstack_handler_spins(int depth) {
  handler_entered = 1;
  for (;;) spin_counter = spin_counter + (unsigned long)depth;
}

static void on_signal(int signal_number) {
  if (signal_number == SIGSEGV) {
    static const char text[] = "OVERFLOW\n";
    if (write(1, text, sizeof text - 1) < 0) _exit(3);
    abort();
  }
  if (strcmp(mode, "computing") == 0) altstack_handler_spins(1);
  altstack_handler_blocks(1);
}

__attribute__((noinline)) static int altstack_recurse(int depth) {
  volatile char pad[256];
  pad[0] = (char)depth;
  if (depth < recursion_limit) return altstack_recurse(depth + 1) + pad[0];
  return pad[0];
}

__attribute__((noinline)) static void altstack_interrupted_level2(void) {
  if (strcmp(mode, "overflow") == 0) altstack_recurse(0);
  for (;;) spin_counter = spin_counter + 1;  // computing when the signal arrives
}

__attribute__((noinline)) static void altstack_interrupted_level1(void) {
  altstack_interrupted_level2();
  __asm__ volatile("" ::: "memory");
}

static void* altstack_thread(void* unused) {
  (void)unused;
  static char alternate[64 * 1024];
  stack_t stack = {.ss_sp = alternate, .ss_size = sizeof alternate, .ss_flags = 0};
  if (sigaltstack(&stack, NULL) != 0) abort();
  altstack_interrupted_level1();
  return NULL;
}

int main(int argc, char** argv) {
  mode = argc > 1 ? argv[1] : "";
  const int on_stack = strcmp(mode, "off-stack") != 0;
  if (strcmp(mode, "syscall") != 0 && strcmp(mode, "computing") != 0 && on_stack && strcmp(mode, "overflow") != 0) {
    fprintf(stderr, "usage: %s syscall|computing|off-stack|overflow\n", argv[0]);
    return 2;
  }
  if (pipe(never_written) != 0) return 1;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  action.sa_flags = on_stack ? SA_ONSTACK : 0;
  sigaction(SIGUSR1, &action, NULL);
  action.sa_flags = SA_ONSTACK;
  sigaction(SIGSEGV, &action, NULL);
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, 256 * 1024);  // small: the overflow comes soon and the core stays small
  pthread_t thread;
  pthread_create(&thread, &attributes, altstack_thread, NULL);
  if (strcmp(mode, "overflow") == 0) {
    pthread_join(thread, NULL);
    return 1;  // not reached: the handler aborts
  }
  usleep(20 * 1000);  // into the computing loop
  pthread_kill(thread, SIGUSR1);
  while (!handler_entered) usleep(1000);
  usleep(20 * 1000);  // into read() or the spin
  printf("READY\n");
  fflush(stdout);
  pthread_join(thread, NULL);
  return 0;
}
