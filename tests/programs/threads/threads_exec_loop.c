// A process that keeps exec'ing itself from a non-main thread while sibling threads run, for captures that must
// never block on an exec (the kernel's de_thread waits, holding the lock PTRACE_SEIZE takes, until the tracer reaps
// the siblings it killed). Each image starts four threads that nap in a loop and a fifth that execs /proc/self/exe
// after 0-7 ms. Argument: the generation (absent in the first). Prints "READY pid" once, then runs until killed.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char generation_text[32];

static void* nap_forever(void* unused) {
  (void)unused;
  for (;;) {
    struct timespec nap = {0, 100000};
    nanosleep(&nap, NULL);
  }
  return NULL;
}

static void* exec_soon(void* argument) {
  long generation = (long)argument;
  struct timespec nap = {0, 1000000L * (generation % 8)};
  nanosleep(&nap, NULL);
  snprintf(generation_text, sizeof generation_text, "%ld", generation + 1);
  char* const arguments[] = {"threads_exec_loop", generation_text, NULL};
  execv("/proc/self/exe", arguments);
  perror("execv");
  exit(1);
}

int main(int argc, char** argv) {
  long generation = argc > 1 ? atol(argv[1]) : 0;
  if (generation == 0) {
    printf("READY %d\n", (int)getpid());
    fflush(stdout);
  }
  pthread_t thread;
  for (int i = 0; i < 4; ++i) pthread_create(&thread, NULL, nap_forever, NULL);
  pthread_create(&thread, NULL, exec_soon, (void*)generation);
  for (;;) pause();
}
