/* The demo server's foreign (C) side: C code that blocks in the kernel, and C code that calls back into fiber
 * code through fiber_callback. Compiled as C (demo_foreign.c) so these are real foreign frames in a backtrace. */
#ifndef FIBERSCOPE_DEMO_FOREIGN_H
#define FIBERSCOPE_DEMO_FOREIGN_H

#ifdef __cplusplus
extern "C" {
#endif

/* Argument of demo_c_wait_readable: the descriptor to wait on and what was read from it. */
struct demo_wait_request {
  int fd;
  int bytes_read;
};

/* Argument of the C functions that call back into fiber code: fiber_callback(callback, callback_arg). */
struct demo_callback_request {
  long (*callback)(void*);
  void* callback_arg;
  int peer_id;
};

/* Blocks in poll(2) until request->fd is readable, then reads what is there. Returns bytes read, -1 on error. */
long demo_c_wait_readable(void* wait_request);

/* A pretend TLS handshake in C that asks fiber code (through fiber_callback) for the peer's key. */
long demo_c_tls_handshake(void* callback_request);

/* A pretend plugin host in C that dispatches an event to a fiber-code hook (through fiber_callback). */
long demo_c_plugin_dispatch(void* callback_request);

#ifdef __cplusplus
}
#endif

#endif
