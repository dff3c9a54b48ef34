/* C side of runtime_faults, compiled as C so that the callback really crosses a foreign frame. */
#include "runtime_faults_c.h"

/* Declared in fiberscope/runtime.h for C++; repeated here because that header is C++ only. */
long fiber_callback(long (*fn)(void*), void* arg);

long faults_c_call_back(void* callback_request) {
  const struct faults_callback_request* request = (const struct faults_callback_request*)callback_request;
  return fiber_callback(request->fn, request->arg);
}
