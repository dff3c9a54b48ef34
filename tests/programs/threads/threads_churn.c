// A process whose threads appear and exit continuously, for captures that must never hang or leave it stopped.
// Keeps starting short-lived detached threads (each works a few microseconds, some sleep a little, then exits);
// the main thread counts started threads in `threads_started`. Prints "READY pid counter" and runs until killed.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

volatile unsigned long threads_started;

static void* short_life(void* argument) {
  long index = (long)argument;
  pthread_setname_np(pthread_self(), "churn");
  if (index % 3 == 0) {
    struct timespec nap = {0, 50000 * (index % 7)};
    nanosleep(&nap, NULL);
  }
  for (volatile int i = 0; i < 1000; ++i) {
  }
  return NULL;
}

int main(void) {
  printf("READY %d %p\n", (int)getpid(), (void*)&threads_started);
  fflush(stdout);
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  for (long index = 0;; ++index) {
    pthread_t thread;
    if (pthread_create(&thread, &attributes, short_life, (void*)index) == 0) threads_started = threads_started + 1;
    if (index % 8 == 7) {
      struct timespec nap = {0, 200000};  // leaves the CPU to the tests on a small machine
      nanosleep(&nap, NULL);
    }
  }
}
