/* The C side of fiber_states: a foreign call that calls back into fiber code, which makes a nested foreign call
 * that blocks in poll(2). Out of line so every C function is its own frame. */
#include <poll.h>

long fiber_callback(long (*fn)(void*), void* arg);

__attribute__((noinline)) long c_block_in_poll(void* fd_pointer) {
  struct pollfd watched = {.fd = *(int*)fd_pointer, .events = POLLIN, .revents = 0};
  for (;;) {
    if (poll(&watched, 1, -1) > 0) return 0;
  }
}

struct c_callback_request {
  long (*callback)(void*);
  void* argument;
};

__attribute__((noinline)) long c_call_back(void* request_pointer) {
  struct c_callback_request* request = (struct c_callback_request*)request_pointer;
  return fiber_callback(request->callback, request->argument) + 1;
}

__attribute__((noinline)) long c_outer(void* request_pointer) { return c_call_back(request_pointer) + 1; }
