/* C code for the runtime tests: foreign functions (compiled as C) that block, record where they run, and call
 * back into fiber code, so that callbacks cross real C frames. */
#ifndef FIBERSCOPE_TEST_CALLBACK_HELPERS_H
#define FIBERSCOPE_TEST_CALLBACK_HELPERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the C side was asked to do and what it saw. */
struct c_callback_request {
  long (*fn)(void*);  /* called through fiber_callback, unless null */
  void* arg;
  long c_sleep_us;    /* usleep in C before calling back (0: none) */
  uint64_t c_local_address; /* out: address of a local variable of the C frame */
};

/* Records a local's address, sleeps c_sleep_us in C, then returns fiber_callback(fn, arg) + 1 (or 1 if no fn). */
long c_call_back(void* callback_request);

/* Returns the sum of two longs packed in `pair` (long[2]): a foreign call with a result. */
long c_add_pair(void* pair);

/* Blocks in read(2) on the descriptor `fd` points at (int) until one byte arrives; returns what read returned. */
long c_read_one_byte(void* fd);

/* Returns 0: the empty foreign function. */
long c_do_nothing(void* unused);

#ifdef __cplusplus
}
#endif

#endif
