/* C functions the fiberscope benchmarks call through fiber::foreign_call (see bench_c_functions.c). */
#ifndef FIBERSCOPE_BENCH_C_FUNCTIONS_H
#define FIBERSCOPE_BENCH_C_FUNCTIONS_H

#ifdef __cplusplus
extern "C" {
#endif

/* What c_calls_back_once passes to fiber_callback. */
struct bench_callback_request {
  long (*fn)(void*);
  void* arg;
};

/* Does nothing: the cost of the foreign call itself. */
long empty_c_function(void* arg);

/* Makes exactly one fiber_callback with the struct bench_callback_request that `request` points at. */
long c_calls_back_once(void* request);

#ifdef __cplusplus
}
#endif

#endif
