// A process whose main thread has exited (pthread_exit) while two workers run on: its thread group leader is a
// zombie that ptrace cannot seize. Prints "READY pid" from a worker once the main thread is gone, then blocks.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pid_t leader;

static int leader_is_zombie(void) {
  char path[64], text[512];
  snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)leader, (int)leader);
  FILE* file = fopen(path, "r");
  if (!file) return 0;
  size_t length = fread(text, 1, sizeof text - 1, file);
  fclose(file);
  text[length] = '\0';
  char* close = strrchr(text, ')');
  return close && close[1] == ' ' && close[2] == 'Z';
}

static void* worker(void* argument) {
  if (argument) {
    while (!leader_is_zombie()) usleep(1000);
    printf("READY %d\n", (int)leader);
    fflush(stdout);
  }
  for (;;) pause();
  return NULL;
}

int main(void) {
  leader = getpid();
  pthread_t threads[2];
  pthread_create(&threads[0], NULL, worker, NULL);
  pthread_create(&threads[1], NULL, worker, (void*)1);
  pthread_exit(NULL);
}
