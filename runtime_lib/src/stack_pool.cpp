// Fiber stacks (mmap'ed, a PROT_NONE guard page below) and the SIGSEGV handler that names the fiber whose stack
// overflowed into its guard page before letting the default action dump core.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "runtime_internal.h"

#if FIBERSCOPE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace fiber::detail {
namespace {

constexpr std::size_t kSignalStackBytes = 64 * 1024;

struct sigaction previous_segv_action;
std::atomic<bool> handler_installed{false};

// Async-signal-safe formatting: appends to a fixed buffer.
struct SignalText {
  char text[512];
  std::size_t length = 0;
  void add(const char* s) {
    while (*s && length < sizeof text) text[length++] = *s++;
  }
  void add(const char* s, std::size_t n) {
    for (std::size_t i = 0; i < n && s[i] && length < sizeof text; ++i) text[length++] = s[i];
  }
  void add_hex(std::uint64_t value) {
    char digits[19] = "0x";
    int n = 0;
    char reversed[16];
    do {
      reversed[n++] = "0123456789abcdef"[value & 15];
      value >>= 4;
    } while (value && n < 16);
    for (int i = 0; i < n; ++i) digits[2 + i] = reversed[n - 1 - i];
    add(digits, static_cast<std::size_t>(2 + n));
  }
  void add_decimal(std::uint64_t value) {
    char reversed[20];
    int n = 0;
    do {
      reversed[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value && n < 20);
    while (n > 0 && length < sizeof text) text[length++] = reversed[--n];
  }
};

// Finds the record whose guard page holds `address` by walking the published table (no locks: signal context).
const fiberscope_fiber* fiber_with_guard_at(std::uint64_t address) {
  auto* chunk = reinterpret_cast<const fiberscope_chunk*>(
      __atomic_load_n(&fiberscope_debug_root.fiber_chunks, __ATOMIC_ACQUIRE));
  for (int chunks = 0; chunk && chunks < 1'000'000; ++chunks) {
    std::uint32_t used = __atomic_load_n(&chunk->used, __ATOMIC_ACQUIRE);
    const auto* records = reinterpret_cast<const fiberscope_fiber*>(chunk + 1);
    for (std::uint32_t i = 0; i < used && i < chunk->capacity; ++i) {
      const fiberscope_fiber& r = records[i];
      if (address >= get(r.guard_lo) && address < get(r.stack_lo)) return &r;
    }
    chunk = reinterpret_cast<const fiberscope_chunk*>(__atomic_load_n(&chunk->next, __ATOMIC_ACQUIRE));
  }
  return nullptr;
}

void on_segv(int signal_number, siginfo_t* info, void* context) {
  auto address = reinterpret_cast<std::uint64_t>(info->si_addr);
  if (const fiberscope_fiber* r = fiber_with_guard_at(address)) {
    SignalText out;
    out.add("fiberscope: fiber ");
    out.add_decimal(get(r->id));
    out.add(" \"");
    out.add(r->name, FIBERSCOPE_FIBER_NAME_BYTES);
    out.add("\" overflowed its stack: fault at ");
    out.add_hex(address);
    out.add(", stack [");
    out.add_hex(get(r->stack_lo));
    out.add(", ");
    out.add_hex(get(r->stack_hi));
    out.add("), guard [");
    out.add_hex(get(r->guard_lo));
    out.add(", ");
    out.add_hex(get(r->stack_lo));
    out.add(")\n");
    ssize_t ignored = ::write(STDERR_FILENO, out.text, out.length);
    (void)ignored;
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    sigaction(SIGSEGV, &default_action, nullptr);
    return;  // the faulting instruction runs again and the default action dumps core
  }
  // Not ours: give the fault to whoever handled SIGSEGV before us (or the default action).
  if ((previous_segv_action.sa_flags & SA_SIGINFO) && previous_segv_action.sa_sigaction) {
    previous_segv_action.sa_sigaction(signal_number, info, context);
    return;
  }
  if (previous_segv_action.sa_handler != SIG_DFL && previous_segv_action.sa_handler != SIG_IGN &&
      previous_segv_action.sa_handler != nullptr) {
    previous_segv_action.sa_handler(signal_number);
    return;
  }
  sigaction(SIGSEGV, &previous_segv_action, nullptr);
}

}  // namespace

std::size_t page_bytes() noexcept {
  static const std::size_t bytes = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return bytes;
}

bool allocate_stack(Stack& stack, std::size_t usable_bytes) {
  const std::size_t guard = page_bytes();
  const std::size_t total = usable_bytes + guard;
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                    -1, 0);
  if (base == MAP_FAILED) return false;
  if (mprotect(base, guard, PROT_NONE) != 0) {
    munmap(base, total);
    return false;
  }
  stack.guard_lo = reinterpret_cast<std::uintptr_t>(base);
  stack.lo = stack.guard_lo + guard;
  stack.hi = stack.guard_lo + total;
  return true;
}

void release_stack(Stack& stack) {
#if FIBERSCOPE_ASAN
  __asan_unpoison_memory_region(reinterpret_cast<void*>(stack.lo), stack.usable_bytes());
#endif
  munmap(reinterpret_cast<void*>(stack.guard_lo), stack.hi - stack.guard_lo);
  stack = Stack{};
}

void prepare_stack_for_reuse(const Stack& stack) {
#if FIBERSCOPE_ASAN
  // Frames of the finished fiber never returned (it switched away for good): clear their redzones.
  __asan_unpoison_memory_region(reinterpret_cast<void*>(stack.lo), stack.usable_bytes());
#else
  (void)stack;
#endif
}

void install_overflow_handler() {
  if (handler_installed.exchange(true)) return;
  struct sigaction action {};
  action.sa_sigaction = on_segv;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_segv_action);
}

void* create_signal_stack() {
  void* memory = mmap(nullptr, kSignalStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  stack_t alt{};
  alt.ss_sp = memory;
  alt.ss_size = kSignalStackBytes;
  if (sigaltstack(&alt, nullptr) != 0) {
    munmap(memory, kSignalStackBytes);
    return nullptr;
  }
  return memory;
}

void destroy_signal_stack(void* stack) {
  if (!stack) return;
  stack_t alt{};
  alt.ss_flags = SS_DISABLE;
  sigaltstack(&alt, nullptr);
  munmap(stack, kSignalStackBytes);
}

}  // namespace fiber::detail
