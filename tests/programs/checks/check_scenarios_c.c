/* The C side of check_scenarios: foreign code that calls back into fiber code and then blocks, or just blocks.
 * Out of line and compiled as C so every frame is a real foreign frame. */
#include <poll.h>
#include <unistd.h>

long fiber_callback(long (*fn)(void*), void* arg);

/* Blocks until the pipe whose read end *fd_pointer names becomes readable (never, in the tests). */
__attribute__((noinline)) long scenario_c_block(void* fd_pointer) {
  struct pollfd watched = {.fd = *(int*)fd_pointer, .events = POLLIN, .revents = 0};
  for (;;) {
    if (poll(&watched, 1, -1) > 0) return 0;
  }
}

struct scenario_request {
  long (*callback)(void*);
  void* callback_argument;
  int block_fd; /* < 0: return after the callback instead of blocking */
};

/* Calls back into fiber code once, then (optionally) blocks in C: the 7978 scenario. */
__attribute__((noinline)) long scenario_c_callback_then_block(void* request_pointer) {
  struct scenario_request* request = (struct scenario_request*)request_pointer;
  long result = fiber_callback(request->callback, request->callback_argument);
  if (request->block_fd >= 0) scenario_c_block(&request->block_fd);
  return result + 1;
}

/* Nested callbacks: each level calls back into fiber code, which may make the next foreign call. */
__attribute__((noinline)) long scenario_c_nest(void* request_pointer) {
  struct scenario_request* request = (struct scenario_request*)request_pointer;
  return fiber_callback(request->callback, request->callback_argument) + 1;
}

/* Blocks on the pipe named by scenario_block_fd; the argument is only carried (a pointer the test makes dangle). */
int scenario_block_fd = -1;
__attribute__((noinline)) long scenario_c_block_carrying(void* carried) {
  struct pollfd watched = {.fd = scenario_block_fd, .events = POLLIN, .revents = 0};
  for (;;) {
    if (poll(&watched, 1, -1) > 0) return carried != 0;
  }
}

/* Returns at once: the churn's plain foreign calls. */
__attribute__((noinline)) long scenario_c_quick(void* value) { return (long)value + 1; }
