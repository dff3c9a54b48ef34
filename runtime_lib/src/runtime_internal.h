// The runtime's private model, shared by its .cpp files: fibers (G), workers (M), processors (P), the scheduler
// singleton and the seqlock helpers that publish records through the debug ABI.
//
// Ownership: a fiber's record is written by the worker running it, or, while it is parked, by whoever readies it
// (only after the park finished publishing). A worker's record is written by its own thread only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "asm_offsets.h"
#include "fiberscope/debug_abi.h"
#include "fiberscope/runtime.h"

#if defined(__SANITIZE_THREAD__)
#define FIBERSCOPE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIBERSCOPE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FIBERSCOPE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBERSCOPE_ASAN 1
#endif
#endif

extern "C" {
void fiberscope_switch(fiberscope_context* save, const fiberscope_context* load);
void fiberscope_save_context(fiberscope_context* save);
void fiberscope_fiber_start();
long fiberscope_foreign_trampoline(long (*fn)(void*), void* arg, const void* target);
// fiber::yield's body, called by its entry in switch.S with that entry's return address (scheduler.cpp).
[[gnu::visibility("hidden")]] std::uintptr_t fiberscope_yield_impl(std::uintptr_t return_address);
// The exported root (debug_table.cpp); same name as its struct tag, as C readers expect.
extern struct fiberscope_debug_root fiberscope_debug_root;
}

namespace fiber::detail {

// Modes of the syscall stubs beyond kSyscallMode / kForeignMode. kTrampolineBit (foreign_call only) says the foreign
// trampoline runs between the two stubs and shares their seqlock windows: entersyscall leaves the fiber record's
// window open for the trampoline to close once its transition is linked, and the trampoline leaves the unlink's
// window open for exitsyscall to close.
inline constexpr std::uint32_t kTrampolineBit = 2;
inline constexpr std::uint32_t kForeignCallMode = kForeignMode | kTrampolineBit;

static_assert(offsetof(fiberscope_context, pc) == CTX_PC && offsetof(fiberscope_context, sp) == CTX_SP);
static_assert(offsetof(fiberscope_context, rbp) == CTX_RBP && offsetof(fiberscope_context, rbx) == CTX_RBX);
static_assert(offsetof(fiberscope_context, r12) == CTX_R12 && offsetof(fiberscope_context, r13) == CTX_R13);
static_assert(offsetof(fiberscope_context, r14) == CTX_R14 && offsetof(fiberscope_context, r15) == CTX_R15);
static_assert(sizeof(fiberscope_context) == CTX_SIZE);
static_assert(offsetof(fiberscope_fiber, seq) == FIBER_SEQ);
static_assert(offsetof(fiberscope_fiber, stack_lo) == FIBER_STACK_LO);
static_assert(offsetof(fiberscope_fiber, stack_hi) == FIBER_STACK_HI);
static_assert(offsetof(fiberscope_fiber, context) == FIBER_CONTEXT);
static_assert(offsetof(fiberscope_fiber, syscall_pc) == FIBER_SYSCALL_PC);
static_assert(offsetof(fiberscope_fiber, syscall_sp) == FIBER_SYSCALL_SP);
static_assert(offsetof(fiberscope_fiber, foreign_depth) == FIBER_FOREIGN_DEPTH);
static_assert(offsetof(fiberscope_fiber, transition_top) == FIBER_TRANSITION_TOP);
static_assert(offsetof(fiberscope_transition, prev) == TR_PREV && offsetof(fiberscope_transition, kind) == TR_KIND);
static_assert(offsetof(fiberscope_transition, depth) == TR_DEPTH);
static_assert(offsetof(fiberscope_transition, from_sp) == TR_FROM_SP);
static_assert(offsetof(fiberscope_transition, from_pc) == TR_FROM_PC);
static_assert(offsetof(fiberscope_transition, from_fp) == TR_FROM_FP);
static_assert(offsetof(fiberscope_transition, to_sp) == TR_TO_SP);
static_assert(offsetof(fiberscope_transition, saved_syscall_pc) == TR_SAVED_PC);
static_assert(offsetof(fiberscope_transition, saved_syscall_sp) == TR_SAVED_SP);
static_assert(sizeof(fiberscope_transition) == TR_SIZE);

// ---- seqlock publishing (relaxed atomic stores so in-process readers are race-free under TSan) ----

template <class T>
[[gnu::always_inline]] inline void put(T& field, T value) noexcept {
  __atomic_store_n(&field, value, __ATOMIC_RELAXED);
}
template <class T>
[[gnu::always_inline]] inline T get(const T& field) noexcept {
  return __atomic_load_n(&field, __ATOMIC_RELAXED);
}
// Stores `value` only when the field holds something else: for fields that a hot path rewrites with the value
// they usually already hold (a state's timestamp taken from the published clock, which moves every 0.16-1 ms).
// A load that finds the value in place costs less than a store that changes nothing (a store-queue slot, and one
// more store a later load may have to wait behind).
template <class T>
[[gnu::always_inline]] inline void put_if_changed(T& field, T value) noexcept {
  if (get(field) != value) put(field, value);
}
// Opens a record's write window and returns the (odd) count it stored, for seq_end(seq, odd) to close the window
// without reloading the count through the store it just made.
[[gnu::always_inline]] inline std::uint64_t seq_begin(std::uint64_t& seq) noexcept {
#if FIBERSCOPE_TSAN
  // TSan does not model fences; an acquire RMW equally keeps the field stores after the odd count.
  return __atomic_fetch_add(&seq, 1, __ATOMIC_ACQ_REL) + 1;
#else
  const std::uint64_t odd = get(seq) + 1;
  put(seq, odd);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  return odd;
#endif
}
[[gnu::always_inline]] inline void seq_end(std::uint64_t& seq, std::uint64_t odd) noexcept {
  __atomic_store_n(&seq, odd + 1, __ATOMIC_RELEASE);
}
// Closes a window opened elsewhere (e.g. before a switch, closed on the other side).
[[gnu::always_inline]] inline void seq_end(std::uint64_t& seq) noexcept { seq_end(seq, get(seq)); }
[[gnu::always_inline]] inline void put_context(fiberscope_context& to, const fiberscope_context& from) noexcept {
  put(to.pc, from.pc);
  put(to.sp, from.sp);
  put(to.rbp, from.rbp);
  put(to.rbx, from.rbx);
  put(to.r12, from.r12);
  put(to.r13, from.r13);
  put(to.r14, from.r14);
  put(to.r15, from.r15);
}

// ---- futex-backed one-shot wakeup for a sleeping worker (Go's note) ----
class Note {
 public:
  void sleep() noexcept;   // returns once wake() was called (before or after), and re-arms
  void wake() noexcept;

 private:
  std::atomic<std::uint32_t> key_{0};
};

struct Worker;
struct Processor;

// Fiber stack: [guard_lo, lo) is PROT_NONE, [lo, hi) usable.
struct Stack {
  std::uintptr_t guard_lo = 0;
  std::uintptr_t lo = 0;
  std::uintptr_t hi = 0;
  std::size_t usable_bytes() const noexcept { return hi - lo; }
};

}  // namespace fiber::detail

namespace fiber::detail {

// The fiber (Go's G). Pooled: never freed, so its record slot and stack are reused together.
struct FiberHandle {
  fiberscope_fiber* record = nullptr;
  std::uint64_t id = 0;
  Stack stack;
  Worker* locked_to = nullptr;       // set while a fiber_callback runs (Go's lockOSThread in cgocallbackg)
  std::uint32_t callback_depth = 0;  // nested fiber_callbacks in progress
  FiberHandle* queue_next = nullptr; // global run queue / pool link
  void* tsan_fiber = nullptr;
  void* asan_fake_stack = nullptr;
};

enum : std::uint32_t { kProcessorIdle = 0, kProcessorRunning = 1, kProcessorSyscall = 2 };

// A processor's status word: the state in the low 2 bits, the syscall tick above. Carrying the tick makes a
// worker's exitsyscall CAS fail if its processor was retaken and has since entered a syscall for someone else
// (the ABA a bare state would allow).
inline constexpr std::uint64_t processor_status(std::uint64_t tick, std::uint32_t state) { return tick << 2 | state; }
inline constexpr std::uint32_t processor_state(std::uint64_t status) { return static_cast<std::uint32_t>(status & 3); }
inline constexpr std::uint64_t processor_tick(std::uint64_t status) { return status >> 2; }

// A run-queue owner (Go's P). runq is Go's lock-free ring: only the owner pushes; anyone may pop with a CAS.
struct Processor {
  static constexpr std::uint32_t kRingSize = 256;
  std::uint32_t index = 0;
  std::atomic<std::uint64_t> status{kProcessorIdle};
  std::uint64_t syscall_tick = 0;  // owner-only; published through `status`
  // The exitsyscall fast path without a CAS (an asymmetric Dekker handshake with the monitor, whose membarrier
  // supplies the fence the exiting worker leaves out): the worker raises `exiting` and then looks at
  // `retake_intent`; the monitor raises `retake_intent`, runs membarrier and then looks at `exiting`. At most
  // one side misses the other, so they never both take the processor. `exiting` is raised by storing the
  // syscall's tick, so it is down for every later syscall without a store on entry.
  std::atomic<std::uint64_t> exiting{0};
  std::atomic<std::uint32_t> retake_intent{0};
  std::uint32_t schedule_tick = 0;
  std::atomic<std::uint32_t> head{0};
  std::atomic<std::uint32_t> tail{0};
  std::atomic<FiberHandle*> runnext{nullptr};
  // A fiber that yielded while nothing else was queued here: the owner swaps with it without an atomic
  // read-modify-write. Never stolen (like Go's runnext it belongs to this processor); flushed to the ring
  // whenever the ring has work, so it cannot starve. Atomic only so the monitor may peek at it.
  std::atomic<FiberHandle*> yield_slot{nullptr};
  std::atomic<FiberHandle*> ring[kRingSize] = {};
  Processor* idle_next = nullptr;
  FiberHandle* free_fibers = nullptr;  // owner-only cache of finished fibers
  std::uint32_t free_count = 0;
  // sysmon's view of a processor in a syscall
  std::uint64_t sysmon_tick = 0;
  std::uint64_t sysmon_since_ns = 0;

  bool has_work() const noexcept {
    return runnext.load(std::memory_order_relaxed) != nullptr ||
           yield_slot.load(std::memory_order_relaxed) != nullptr ||
           head.load(std::memory_order_acquire) != tail.load(std::memory_order_acquire);
  }
};

// What a foreign call needs in the trampoline (layout shared with switch.S); the caller's record it finds through
// t_current_record.
struct ForeignTarget {
  std::uint64_t system_sp = 0;
};
static_assert(offsetof(ForeignTarget, system_sp) == FT_SYSTEM_SP);

// Work a worker does right after a switch, on the new side (Go's mcall continuation): the fiber that switched
// away is fully saved only then, so this is where it becomes visible to wakers.
struct AfterSwitch {
  enum Kind : std::uint32_t { kNone, kPark, kRequeueLocal, kRequeueSlot, kRequeueGlobal, kRecycle };
  Kind kind = kNone;
  FiberHandle* fiber = nullptr;
  std::uint32_t wait_reason = 0;
  const void* wait_object = nullptr;
  void (*unlock)(void*) = nullptr;
  void* lock = nullptr;
  // The return address of the fiber::yield call that made this switch, 0 for any other switch: the top of the
  // return-stack buffer when the fiber switched to returns from its own fiber::yield (see switch.S).
  std::uintptr_t yield_return = 0;
};

// A worker thread (Go's M).
struct Worker {
  fiberscope_worker* record = nullptr;
  std::uint32_t index = 0;
  Processor* p = nullptr;      // held processor
  Processor* oldp = nullptr;   // processor it had when entering its current (or last) syscall
  Processor* nextp = nullptr;  // handed over by startm / startlockedm before a wake
  std::uint64_t syscall_status = 0;  // oldp's status word as entersyscall set it
  FiberHandle* current = nullptr;
  FiberHandle* next_fiber = nullptr;  // popped by a fiber but locked to another worker: the scheduler hands it over
  bool spinning = false;
  bool exit_requested = false;
  fiberscope_context scheduler_context{};  // the scheduler loop on the system stack (Go's g0)
  fiberscope_context scratch_context{};    // save target of a dying fiber
  ForeignTarget foreign;
  std::uint64_t scheduler_sp = 0;          // sp of the scheduler loop; foreign calls go below it
  AfterSwitch after;
  Note note;
  Worker* idle_next = nullptr;
  std::thread thread;
  void* tsan_fiber = nullptr;
  void* asan_fake_stack = nullptr;
  const void* system_stack_bottom = nullptr;  // for ASan fiber switches
  std::size_t system_stack_size = 0;
  void* signal_stack = nullptr;
};

// The one scheduler of the process (Go's sched).
struct Scheduler {
  std::mutex lock;  // guards the global queue, idle lists, worker list
  FiberHandle* global_head = nullptr;
  FiberHandle* global_tail = nullptr;
  std::atomic<std::uint32_t> global_size{0};
  Processor* idle_processors = nullptr;
  std::atomic<std::uint32_t> idle_processor_count{0};
  Worker* idle_workers = nullptr;
  std::atomic<std::uint32_t> spinning_workers{0};
  std::vector<Processor*> processors;  // fixed for one run
  std::vector<Worker*> workers;        // every M of this run
  std::atomic<bool> shutting_down{false};
  std::atomic<std::uint64_t> fibers_live{0};

  std::mutex done_lock;
  std::condition_variable done_cv;
  bool done = false;

  std::size_t stack_bytes = 0;
  std::uint32_t faults = 0;
  bool asymmetric_fence = false;  // membarrier(PRIVATE_EXPEDITED) registered: exitsyscall needs no CAS

  std::mutex pool_lock;
  FiberHandle* pool = nullptr;

  SpinLock timer_lock;  // unlocked by park's continuation, possibly in another fiber's context
  struct Timer {
    std::uint64_t deadline_ns;
    FiberHandle* fiber;
  };
  std::vector<Timer> timers;  // min-heap on deadline
  std::atomic<std::uint64_t> next_timer_ns{UINT64_MAX};

  std::thread monitor;
  std::mutex monitor_lock;
  std::condition_variable monitor_cv;
};

extern Scheduler sched;

// ---- the scheduler (scheduler.cpp) ----
std::uint64_t monotonic_ns() noexcept;
// The published clock (root.clock_ns, refreshed by the monitor): what the hot path stamps states with.
inline std::uint64_t clock_now() noexcept { return get(fiberscope_debug_root.clock_ns); }
// The worker running on this thread. initial-exec: every read is one %fs-relative load, never a cached
// __tls_get_addr result; still, code that can resume on another thread re-reads it through this_worker().
// constinit: no dynamic initializer, so readers in other files skip the TLS-wrapper check on every access.
extern constinit thread_local Worker* t_worker __attribute__((tls_model("initial-exec")));
// The worker running on this thread, never cached across a switch (fibers migrate between threads): one
// %fs-relative load in a volatile asm with a memory clobber, which the compiler can neither merge with an earlier
// read nor move across the switch call. Inline, so the hot paths do not pay a call for it.
[[gnu::always_inline]] inline Worker* this_worker() noexcept {
  Worker* m;
  asm volatile("movq _ZN5fiber6detail8t_workerE@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0" : "=r"(m) : : "memory");
  return m;
}

// The record of the fiber this thread runs (this_worker()->current->record), null when none: the syscall stubs in
// switch.S find it with one %fs-relative load instead of the chain worker -> fiber -> record. initial-exec and
// constinit like t_worker; written only by set_current(), on the worker's own thread.
extern constinit thread_local fiberscope_fiber* t_current_record __attribute__((tls_model("initial-exec")));
// Makes `g` (or nothing) the fiber `m` runs; m is the calling thread's worker.
[[gnu::always_inline]] inline void set_current(Worker* m, FiberHandle* g) noexcept {
  m->current = g;
  t_current_record = g ? g->record : nullptr;
}

// Writes a fiber's state fields (inside an open seqlock window).
[[gnu::always_inline]] inline void write_fiber_state(FiberHandle* g, std::uint32_t state, std::uint32_t wait_reason,
                       const void* wait_object) noexcept {
  fiberscope_fiber* r = g->record;
  if (get(r->state) != state) {  // state_since_ns: when this state began, so only stamped on a change
    put(r->state, state);
    put(r->state_since_ns, clock_now());
  }
  put(r->wait_reason, wait_reason);
  put(r->wait_object, reinterpret_cast<std::uint64_t>(wait_object));
  if (state != FIBERSCOPE_FIBER_SYSCALL && state != FIBERSCOPE_FIBER_FOREIGN) {
    put(r->syscall_pc, std::uint64_t{0});
    put(r->syscall_sp, std::uint64_t{0});
  }
  Worker* owner = g->locked_to;
  // Only the worker running a fiber moves it to these states, so it is the thread writing now.
  if (!owner && (state == FIBERSCOPE_FIBER_RUNNING || state == FIBERSCOPE_FIBER_SYSCALL ||
                 state == FIBERSCOPE_FIBER_FOREIGN)) {
    owner = t_worker;
  }
  put(r->worker, owner ? static_cast<std::int32_t>(owner->index) : -1);
  put(r->flags, (get(r->flags) & ~FIBERSCOPE_FIBER_FLAG_LOCKED) | (g->locked_to ? FIBERSCOPE_FIBER_FLAG_LOCKED : 0u));
}

// Same, in its own seqlock window.
[[gnu::always_inline]] inline void set_fiber_state(FiberHandle* g, std::uint32_t state,
                            std::uint32_t wait_reason = FIBERSCOPE_WAIT_NONE,
                            const void* wait_object = nullptr) noexcept {
  const std::uint64_t g_seq = seq_begin(g->record->seq);
  write_fiber_state(g, state, wait_reason, wait_object);
  seq_end(g->record->seq, g_seq);
}

// Publishes that `worker` now runs `fiber` (or nothing).
[[gnu::always_inline]] inline void publish_worker_current(Worker* m, FiberHandle* g) noexcept {
  fiberscope_worker* r = m->record;
  const std::uint64_t r_seq = seq_begin(r->seq);
  put(r->current_fiber, g ? g->id : 0);
  put(r->current_record, g ? reinterpret_cast<std::uint64_t>(g->record) : 0);
  if (get(r->state) != FIBERSCOPE_WORKER_RUNNING) {
    put(r->state, static_cast<std::uint32_t>(FIBERSCOPE_WORKER_RUNNING));
    put(r->state_since_ns, clock_now());
  }
  put(r->processor, m->p ? static_cast<std::int32_t>(m->p->index) : -1);
  seq_end(r->seq, r_seq);
}
// Publishes a worker's state (and the processor it holds, -1 for none).
[[gnu::always_inline]] inline void set_worker_state(Worker* m, std::uint32_t state, int processor) noexcept {
  fiberscope_worker* r = m->record;
  const std::uint64_t r_seq = seq_begin(r->seq);
  if (get(r->state) != state) {
    put(r->state, state);
    put(r->state_since_ns, clock_now());
  }
  if (state != FIBERSCOPE_WORKER_RUNNING && state != FIBERSCOPE_WORKER_SYSCALL &&
      state != FIBERSCOPE_WORKER_LOCKED) {
    put(r->current_fiber, std::uint64_t{0});
    put(r->current_record, std::uint64_t{0});
  }
  put(r->processor, static_cast<std::int32_t>(processor));
  seq_end(r->seq, r_seq);
}
void handoff_processor(Processor* p);
void wake_processor();
void global_push(FiberHandle* fiber);
void fire_timers(std::uint64_t now_ns);
bool acquire_idle_processor(Worker* worker);
void park_locked(Worker* worker, FiberHandle* fiber, std::uint32_t state, std::uint32_t wait_reason,
                 const void* wait_object, void (*unlock)(void*), void* lock, bool requeue);
FiberId spawn_commit_with_flags(SpawnSlot slot, void (*entry)(void*), std::string_view name, const void* spawn_pc,
                                std::uint32_t flags);
// The slow half of exitsyscall: the worker's processor was retaken.
void exitsyscall_slow(Worker* worker, FiberHandle* fiber);
// Makes `worker` hold `p` (also publishing it in the worker record).
void acquire_processor(Worker* worker, Processor* p) noexcept;

// ---- the debug table (debug_table.cpp) ----
fiberscope_fiber* allocate_fiber_record();
fiberscope_worker* allocate_worker_record(std::uint32_t* index);
void reset_worker_records();
void init_debug_root(std::uint64_t stack_bytes, std::uint64_t guard_bytes, std::uint32_t processors,
                     std::uint32_t faults);

// ---- stacks (stack_pool.cpp) ----
bool allocate_stack(Stack& stack, std::size_t usable_bytes);
void release_stack(Stack& stack);
void prepare_stack_for_reuse(const Stack& stack);
std::size_t page_bytes() noexcept;
void install_overflow_handler();
void* create_signal_stack();
void destroy_signal_stack(void* stack);

// ---- syscalls and foreign calls (syscall.cpp) ----
std::uint32_t parse_faults(const char* spec);

}  // namespace fiber::detail
