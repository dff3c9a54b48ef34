/* Foreign (C) code for the fiberscope benchmarks, compiled as C so the calls are real foreign calls. */
#include "bench_c_functions.h"

#include <stddef.h>

/* Declared in fiberscope/runtime.h for C++; repeated here because that header is C++ only. */
long fiber_callback(long (*fn)(void*), void* arg);

long empty_c_function(void* arg) {
  (void)arg;
  return 0;
}

long c_calls_back_once(void* request) {
  const struct bench_callback_request* callback = (const struct bench_callback_request*)request;
  return fiber_callback(callback->fn, callback->arg);
}
