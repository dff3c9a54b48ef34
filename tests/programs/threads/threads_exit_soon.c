// A process that exits while it is being attached: prints READY, starts a few threads that spin, sleeps
// DELAY_US microseconds, then exits. Usage: threads_exit_soon DELAY_US
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void* spin(void* argument) {
  (void)argument;
  for (volatile unsigned long i = 0;; ++i) {
  }
  return NULL;
}

int main(int argc, char** argv) {
  long delay_us = argc > 1 ? atol(argv[1]) : 1000;
  for (int i = 0; i < 3; ++i) {
    pthread_t thread;
    pthread_create(&thread, NULL, spin, NULL);
  }
  printf("READY %d\n", (int)getpid());
  fflush(stdout);
  if (delay_us > 0) usleep((useconds_t)delay_us);
  exit(0);
}
