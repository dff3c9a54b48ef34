/* C side of runtime_faults: a foreign function that calls back into fiber code. */
#ifndef FIBERSCOPE_RUNTIME_FAULTS_C_H
#define FIBERSCOPE_RUNTIME_FAULTS_C_H

#ifdef __cplusplus
extern "C" {
#endif

struct faults_callback_request {
  long (*fn)(void*);
  void* arg;
};

/* Calls fiber_callback(request->fn, request->arg) from C and returns its result. */
long faults_c_call_back(void* callback_request);

#ifdef __cplusplus
}
#endif

#endif
