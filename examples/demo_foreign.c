/* The demo server's C side. The helpers are kept out of line so each shows up as its own C frame. */
#include "demo_foreign.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

/* Declared in fiberscope/runtime.h for C++; repeated here because that header is C++ only. */
long fiber_callback(long (*fn)(void*), void* arg);

__attribute__((noinline)) static int demo_c_poll_forever(int fd) {
  struct pollfd watched = {.fd = fd, .events = POLLIN, .revents = 0};
  for (;;) {
    int ready = poll(&watched, 1, -1);
    if (ready > 0) return 0;
    if (ready < 0 && errno != EINTR) return -1;
  }
}

long demo_c_wait_readable(void* wait_request) {
  struct demo_wait_request* request = (struct demo_wait_request*)wait_request;
  char buffer[64];
  if (demo_c_poll_forever(request->fd) != 0) return -1;
  ssize_t got = read(request->fd, buffer, sizeof buffer);
  request->bytes_read = got > 0 ? (int)got : 0;
  return got;
}

__attribute__((noinline)) static long demo_c_tls_await_peer_key(struct demo_callback_request* request) {
  /* The key exchange waits for fiber code: this is the callback into the fiber's stack. */
  return fiber_callback(request->callback, request->callback_arg);
}

long demo_c_tls_handshake(void* callback_request) {
  struct demo_callback_request* request = (struct demo_callback_request*)callback_request;
  long key = demo_c_tls_await_peer_key(request);
  return key ^ (long)request->peer_id;
}

__attribute__((noinline)) static long demo_c_plugin_invoke_hook(struct demo_callback_request* request) {
  return fiber_callback(request->callback, request->callback_arg);
}

long demo_c_plugin_dispatch(void* callback_request) {
  struct demo_callback_request* request = (struct demo_callback_request*)callback_request;
  return demo_c_plugin_invoke_hook(request) + 1;
}
