/* The C side of fiber_crashers: foreign code that calls back into fiber code. Compiled as C, out of line, so its
 * frame is a real foreign frame between the callback and the fiber that made the foreign call. */
long fiber_callback(long (*fn)(void*), void* arg);

struct crasher_request {
  long (*callback)(void*);
  void* callback_argument;
};

__attribute__((noinline)) long crasher_c_call_back(void* request_pointer) {
  struct crasher_request* request = (struct crasher_request*)request_pointer;
  return fiber_callback(request->callback, request->callback_argument) + 1;
}
