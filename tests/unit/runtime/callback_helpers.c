/* C side of the runtime tests, compiled as C so that foreign calls and callbacks cross real C frames. */
#include "callback_helpers.h"

#include <unistd.h>

/* Declared in fiberscope/runtime.h for C++; repeated here because that header is C++ only. */
long fiber_callback(long (*fn)(void*), void* arg);

long c_call_back(void* callback_request) {
  struct c_callback_request* request = (struct c_callback_request*)callback_request;
  volatile int c_local = 0;
  request->c_local_address = (uint64_t)(uintptr_t)&c_local;
  if (request->c_sleep_us > 0) usleep((useconds_t)request->c_sleep_us);
  long result = request->fn != 0 ? fiber_callback(request->fn, request->arg) : 0;
  return result + 1 + c_local;
}

long c_add_pair(void* pair) {
  const long* values = (const long*)pair;
  return values[0] + values[1];
}

long c_read_one_byte(void* fd) {
  char byte;
  return (long)read(*(const int*)fd, &byte, 1);
}

long c_do_nothing(void* unused) {
  (void)unused;
  return 0;
}
