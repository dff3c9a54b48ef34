#include "target/mapped_copy.h"

#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace fiberscope::target {

namespace {

// The copy in progress on this thread: where a SIGBUS inside [begin, end) jumps back to.
struct ActiveCopy {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
  sigjmp_buf resume;
};
thread_local ActiveCopy* t_active_copy = nullptr;
struct sigaction g_previous_sigbus {};

void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  ActiveCopy* copy = t_active_copy;
  auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  if (copy && address >= copy->begin && address < copy->end) siglongjmp(copy->resume, 1);
  // Not ours: what would have happened without us (the previous handler, or the default action when the faulting
  // instruction runs again).
  if (g_previous_sigbus.sa_flags & SA_SIGINFO) {
    if (g_previous_sigbus.sa_sigaction) return g_previous_sigbus.sa_sigaction(signal_number, info, context);
  } else if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
    return g_previous_sigbus.sa_handler(signal_number);
  }
  ::sigaction(SIGBUS, &g_previous_sigbus, nullptr);
}

void install_once() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, &g_previous_sigbus);
  });
}

}  // namespace

bool copy_from_mapping(void* destination, const void* source, std::size_t size) {
  install_once();
  ActiveCopy copy;
  copy.begin = reinterpret_cast<std::uintptr_t>(source);
  copy.end = copy.begin + size;
  // savemask 1: the handler runs with SIGBUS blocked unless SA_NODEFER; restoring the mask keeps the next fault
  // deliverable either way.
  if (sigsetjmp(copy.resume, 1) != 0) {
    t_active_copy = nullptr;
    return false;
  }
  t_active_copy = &copy;
  // The fences keep the compiler from dropping the store above as dead (nothing but the handler reads it).
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // memcpy reads only [source, source + size) and holds no state a jump out of it would leave behind.
  std::memcpy(destination, source, size);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_active_copy = nullptr;
  return true;
}

}  // namespace fiberscope::target
