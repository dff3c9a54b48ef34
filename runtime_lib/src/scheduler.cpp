// The M:N scheduler: Go's G/M/P model. Processors own lock-free local run queues (plus a global queue under
// sched.lock); workers are threads that hold a processor while they run fiber code; a monitor thread keeps the
// published clock, fires timers and retakes processors from workers blocked in syscalls.
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <linux/futex.h>
#include <linux/membarrier.h>

#include "runtime_internal.h"

#if FIBERSCOPE_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#if FIBERSCOPE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace fiber::detail {

Scheduler sched;
constinit thread_local Worker* t_worker = nullptr;
constinit thread_local fiberscope_fiber* t_current_record = nullptr;

namespace {


constexpr std::uint32_t kMaxWorkers = 4096;
constexpr std::size_t kMaxStackBytes = std::size_t{1} << 30;
constexpr std::uint64_t kRetakeAfterNs = 20'000;        // a syscall blocked this long loses its processor
constexpr std::uint64_t kRetakeAlwaysAfterNs = 10'000'000;
// The monitor's sleep between looks: kRetakeAfterNs while a syscall it saw before is still in progress (it may be
// blocked), doubling up to kFreshSyscallMaxDelayNs while every syscall it finds began since its last look (short
// ones come and go: a program making millions a second kept it waking 50 000 times a second, a tenth of a CPU),
// and up to kIdleMaxDelayNs when none is in progress. A blocked syscall is first seen within one delay and
// retaken at the next look, so a stream of short syscalls delays its hand-off by at most ~2 x 160 us.
constexpr std::uint64_t kFreshSyscallMaxDelayNs = 160'000;
constexpr std::uint64_t kIdleMaxDelayNs = 1'000'000;
constexpr std::uint32_t kFiberCacheSize = 64;

// ---- sanitizer fiber annotations: no-ops in normal builds ----

inline void sanitizer_leave(void** fake_stack_save, const void* to_bottom, std::size_t to_size, void* to_tsan) {
#if FIBERSCOPE_TSAN
  __tsan_switch_to_fiber(to_tsan, 0);
#else
  (void)to_tsan;
#endif
#if FIBERSCOPE_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, to_bottom, to_size);
#else
  (void)fake_stack_save;
  (void)to_bottom;
  (void)to_size;
#endif
}

inline void sanitizer_arrive(void* fake_stack) {
#if FIBERSCOPE_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
  (void)fake_stack;
#endif
}

inline void leave_to_fiber(void** save, FiberHandle* to) {
  sanitizer_leave(save, reinterpret_cast<const void*>(to->stack.lo), to->stack.usable_bytes(), to->tsan_fiber);
}
inline void leave_to_scheduler(void** save, Worker* m) {
  sanitizer_leave(save, m->system_stack_bottom, m->system_stack_size, m->tsan_fiber);
}

// ---- run queues (Go's runqput / runqget / runqgrab) ----

void global_push_locked(FiberHandle* g) {
  g->queue_next = nullptr;
  if (sched.global_tail) sched.global_tail->queue_next = g; else sched.global_head = g;
  sched.global_tail = g;
  sched.global_size.store(sched.global_size.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

FiberHandle* global_pop_locked() {
  FiberHandle* g = sched.global_head;
  if (!g) return nullptr;
  sched.global_head = g->queue_next;
  if (!sched.global_head) sched.global_tail = nullptr;
  g->queue_next = nullptr;
  sched.global_size.store(sched.global_size.load(std::memory_order_relaxed) - 1, std::memory_order_release);
  return g;
}

// Moves half of a full local queue (and g) to the global queue, as Go's runqputslow does.
bool runq_put_slow(Processor* p, FiberHandle* g, std::uint32_t head, std::uint32_t tail) {
  constexpr std::uint32_t n = Processor::kRingSize / 2;
  if (tail - head != Processor::kRingSize) return false;
  FiberHandle* batch[n + 1];
  for (std::uint32_t i = 0; i < n; ++i)
    batch[i] = p->ring[(head + i) % Processor::kRingSize].load(std::memory_order_relaxed);
  if (!p->head.compare_exchange_strong(head, head + n, std::memory_order_release, std::memory_order_relaxed)) {
    return false;
  }
  batch[n] = g;
  std::lock_guard<std::mutex> guard(sched.lock);
  for (FiberHandle* each : batch) global_push_locked(each);
  return true;
}

void runq_put(Processor* p, FiberHandle* g, bool as_next) {
  if (as_next) {
    g = p->runnext.exchange(g, std::memory_order_acq_rel);
    if (!g) return;  // the previous runnext (if any) goes to the tail
  }
  for (;;) {
    std::uint32_t head = p->head.load(std::memory_order_acquire);
    std::uint32_t tail = p->tail.load(std::memory_order_relaxed);
    if (tail - head < Processor::kRingSize) {
      p->ring[tail % Processor::kRingSize].store(g, std::memory_order_relaxed);
      p->tail.store(tail + 1, std::memory_order_release);
      return;
    }
    if (runq_put_slow(p, g, head, tail)) return;
  }
}

FiberHandle* runq_get(Processor* p) {
  FiberHandle* next = p->runnext.load(std::memory_order_relaxed);
  if (next && p->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acquire)) return next;
  for (;;) {
    std::uint32_t head = p->head.load(std::memory_order_acquire);
    std::uint32_t tail = p->tail.load(std::memory_order_relaxed);
    if (tail == head) return nullptr;
    FiberHandle* g = p->ring[head % Processor::kRingSize].load(std::memory_order_relaxed);
    if (p->head.compare_exchange_weak(head, head + 1, std::memory_order_release, std::memory_order_relaxed)) return g;
  }
}

std::uint32_t runq_grab(Processor* victim, FiberHandle** batch) {
  for (;;) {
    std::uint32_t head = victim->head.load(std::memory_order_acquire);
    std::uint32_t tail = victim->tail.load(std::memory_order_acquire);
    std::uint32_t n = tail - head;
    n -= n / 2;
    if (n == 0) {
      FiberHandle* next = victim->runnext.load(std::memory_order_relaxed);
      if (next && victim->runnext.compare_exchange_strong(next, nullptr, std::memory_order_acquire)) {
        batch[0] = next;
        return 1;
      }
      return 0;
    }
    if (n > Processor::kRingSize / 2) continue;  // head and tail read at different times
    for (std::uint32_t i = 0; i < n; ++i) {
      batch[i] = victim->ring[(head + i) % Processor::kRingSize].load(std::memory_order_relaxed);
    }
    if (victim->head.compare_exchange_weak(head, head + n, std::memory_order_release, std::memory_order_relaxed)) {
      return n;
    }
  }
}

FiberHandle* runq_steal(Processor* p, Processor* victim) {
  FiberHandle* batch[Processor::kRingSize / 2 + 1];
  std::uint32_t n = runq_grab(victim, batch);
  if (n == 0) return nullptr;
  FiberHandle* g = batch[--n];
  for (std::uint32_t i = 0; i < n; ++i) runq_put(p, batch[i], false);
  return g;
}

FiberHandle* take_yield_slot(Processor* p) {
  FiberHandle* g = p->yield_slot.load(std::memory_order_relaxed);
  if (g) p->yield_slot.store(nullptr, std::memory_order_relaxed);
  return g;
}

// Takes a batch from the global queue: one to run, the rest into p's local queue.
FiberHandle* global_get(Processor* p, std::uint32_t max) {
  if (sched.global_size.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard<std::mutex> guard(sched.lock);
  std::uint32_t size = sched.global_size.load(std::memory_order_relaxed);
  if (size == 0) return nullptr;
  std::uint32_t n = std::min<std::uint32_t>({size, size / static_cast<std::uint32_t>(sched.processors.size()) + 1, max,
                                             Processor::kRingSize / 2});
  FiberHandle* g = global_pop_locked();
  for (std::uint32_t i = 1; i < n; ++i) runq_put(p, global_pop_locked(), false);
  return g;
}

// ---- idle processors and workers (under sched.lock) ----

void idle_processor_put_locked(Processor* p) {
  p->status.store(processor_status(p->syscall_tick, kProcessorIdle), std::memory_order_release);
  p->idle_next = sched.idle_processors;
  sched.idle_processors = p;
  sched.idle_processor_count.fetch_add(1, std::memory_order_acq_rel);
}

Processor* idle_processor_get_locked() {
  Processor* p = sched.idle_processors;
  if (p) {
    sched.idle_processors = p->idle_next;
    p->idle_next = nullptr;
    sched.idle_processor_count.fetch_sub(1, std::memory_order_acq_rel);
  }
  return p;
}

void worker_main(Worker* m);

// Go's startm: runs p (or an idle processor) on an idle or new worker.
void start_worker(Processor* p, bool spinning) {
  std::unique_lock<std::mutex> guard(sched.lock);
  if (!p) p = idle_processor_get_locked();
  if (!p || sched.shutting_down.load(std::memory_order_acquire)) {
    if (p) idle_processor_put_locked(p);
    guard.unlock();
    if (spinning) sched.spinning_workers.fetch_sub(1, std::memory_order_acq_rel);
    return;
  }
  Worker* m = sched.idle_workers;
  if (m) {
    sched.idle_workers = m->idle_next;
    guard.unlock();
    m->nextp = p;
    m->spinning = spinning;
    m->note.wake();
    return;
  }
  if (sched.workers.size() >= kMaxWorkers) fatal("too many worker threads (all blocked in syscalls?)");
  m = new Worker;
  m->record = allocate_worker_record(&m->index);
  m->nextp = p;
  m->spinning = spinning;
  sched.workers.push_back(m);
  try {
    m->thread = std::thread(worker_main, m);
  } catch (const std::system_error&) {
    fatal("cannot start a worker thread (thread creation failed)");
  }
}

// Go's stopm: parks the worker until it is handed a processor (or the runtime shuts down).
void stop_worker(Worker* m) {
  set_worker_state(m, FIBERSCOPE_WORKER_IDLE, -1);
  {
    std::lock_guard<std::mutex> guard(sched.lock);
    if (sched.shutting_down.load(std::memory_order_acquire)) return;
    m->idle_next = sched.idle_workers;
    sched.idle_workers = m;
  }
  m->note.sleep();
  if (m->nextp) {
    acquire_processor(m, m->nextp);
    m->nextp = nullptr;
  }
}

Processor* release_processor(Worker* m) {
  Processor* p = m->p;
  m->p = nullptr;
  return p;
}

void reset_spinning(Worker* m) {
  m->spinning = false;
  // The last spinning worker found work: another one should look for more (Go's resetspinning).
  if (sched.spinning_workers.fetch_sub(1, std::memory_order_acq_rel) == 1) wake_processor();
}

bool any_local_work() {
  for (Processor* p : sched.processors) {
    if (p->has_work()) return true;
  }
  return false;
}

// Go's findrunnable: local queue, global queue, timers, stealing; otherwise give up the processor and sleep.
FiberHandle* find_runnable(Worker* m) {
  for (;;) {
    if (sched.shutting_down.load(std::memory_order_acquire)) return nullptr;
    if (!m->p) {
      stop_worker(m);
      continue;
    }
    Processor* p = m->p;
    if (m->next_fiber) {
      FiberHandle* g = m->next_fiber;
      m->next_fiber = nullptr;
      return g;
    }
    if (++p->schedule_tick % 61 == 0) {  // fairness: the global queue must not starve behind a busy local one
      if (FiberHandle* g = global_get(p, 1)) return g;
    }
    if (FiberHandle* g = runq_get(p)) return g;
    if (FiberHandle* g = take_yield_slot(p)) return g;
    if (FiberHandle* g = global_get(p, Processor::kRingSize / 2)) return g;
    if (sched.next_timer_ns.load(std::memory_order_relaxed) <= monotonic_ns()) {
      fire_timers(monotonic_ns());
      if (FiberHandle* g = runq_get(p)) return g;
    }
    if (!m->spinning) {
      m->spinning = true;
      sched.spinning_workers.fetch_add(1, std::memory_order_acq_rel);
    }
    const std::size_t count = sched.processors.size();
    const std::size_t start = static_cast<std::size_t>(p->schedule_tick) % count;
    for (int round = 0; round < 2; ++round) {
      for (std::size_t i = 0; i < count; ++i) {
        Processor* victim = sched.processors[(start + i) % count];
        if (victim == p) continue;
        if (FiberHandle* g = runq_steal(p, victim)) return g;
      }
    }
    // Nothing: give the processor back and sleep.
    {
      std::lock_guard<std::mutex> guard(sched.lock);
      if (sched.global_size.load(std::memory_order_relaxed) > 0) continue;
      idle_processor_put_locked(release_processor(m));
    }
    set_worker_state(m, FIBERSCOPE_WORKER_IDLE, -1);
    bool was_spinning = m->spinning;
    if (m->spinning) {
      m->spinning = false;
      sched.spinning_workers.fetch_sub(1, std::memory_order_acq_rel);
    }
    // Work queued after our last look went to a busy processor whose wakep saw us spinning: look once more.
    if (any_local_work() || sched.global_size.load(std::memory_order_acquire) > 0) {
      Processor* again = nullptr;
      {
        std::lock_guard<std::mutex> guard(sched.lock);
        again = idle_processor_get_locked();
      }
      if (again) {
        acquire_processor(m, again);
        if (was_spinning) {
          m->spinning = true;
          sched.spinning_workers.fetch_add(1, std::memory_order_acq_rel);
        }
        continue;
      }
    }
    stop_worker(m);
  }
}

// ---- publishing ----

// Marks `to` running on m (record and worker record) before the switch into it. `to` is RUNNABLE, and every
// path that makes a fiber runnable publishes it with no wait object, no syscall frame and its LOCKED flag
// current: only state, its timestamp, the wait reason (LOCKED_THREAD) and the worker can still change.
// `from_fiber`: m is switching from a fiber it runs, so its record already says RUNNING with m->p's index (every
// path that starts a fiber on a worker publishes both) and only the current fiber changes.
[[gnu::always_inline]] inline void prepare_run(Worker* m, FiberHandle* to, bool from_fiber = false) {
  set_current(m, to);
  fiberscope_fiber* r = to->record;
  const std::uint64_t now = clock_now();
  const std::uint64_t r_seq = seq_begin(r->seq);
  put(r->state, static_cast<std::uint32_t>(FIBERSCOPE_FIBER_RUNNING));
  put(r->state_since_ns, now);
  if (get(r->wait_reason) != FIBERSCOPE_WAIT_NONE)
    put(r->wait_reason, static_cast<std::uint32_t>(FIBERSCOPE_WAIT_NONE));
  put(r->worker, static_cast<std::int32_t>(m->index));
  seq_end(r->seq, r_seq);
  if (!from_fiber) {
    publish_worker_current(m, to);
    return;
  }
  fiberscope_worker* w = m->record;
  const std::uint64_t w_seq = seq_begin(w->seq);
  put(w->current_fiber, to->id);
  put(w->current_record, reinterpret_cast<std::uint64_t>(r));
  seq_end(w->seq, w_seq);
}

// RUNNING -> RUNNABLE for a yield of an unlocked fiber, inside the window its switch opened: a running record
// has no wait reason or syscall frame, so only state, its timestamp and the worker change.
[[gnu::always_inline]] inline void write_yielded(FiberHandle* g) {
  fiberscope_fiber* r = g->record;
  put(r->state, static_cast<std::uint32_t>(FIBERSCOPE_FIBER_RUNNABLE));
  put(r->state_since_ns, clock_now());
  put(r->worker, -1);
}

// The continuation of a yield into the yield slot: `g` (fully saved now) becomes RUNNABLE and waits there.
[[gnu::always_inline]] inline void requeue_to_slot(Worker* m, FiberHandle* g) {
  write_yielded(g);
  seq_end(g->record->seq);
  m->p->yield_slot.store(g, std::memory_order_relaxed);
}

void recycle_fiber(Worker* m, FiberHandle* g) {
#if FIBERSCOPE_TSAN
  __tsan_destroy_fiber(g->tsan_fiber);
  g->tsan_fiber = nullptr;
#endif
  Processor* p = m ? m->p : nullptr;
  if (p && p->free_count < kFiberCacheSize) {
    g->queue_next = p->free_fibers;
    p->free_fibers = g;
    ++p->free_count;
    return;
  }
  std::lock_guard<std::mutex> guard(sched.pool_lock);
  g->queue_next = sched.pool;
  sched.pool = g;
}

// The continuation of a switch, run by whoever was switched to.
void run_after_switch(Worker* m) {
  // Read in place: only `kind` needs resetting (the other fields mean something only for their kind), and
  // nothing but this thread's next switch writes m->after.
  const AfterSwitch& after = m->after;
  const AfterSwitch::Kind kind = after.kind;
  m->after.kind = AfterSwitch::kNone;
  FiberHandle* g = after.fiber;
  switch (kind) {
    case AfterSwitch::kNone:
      return;
    case AfterSwitch::kPark:
      write_fiber_state(g, FIBERSCOPE_FIBER_WAITING, after.wait_reason, after.wait_object);
      seq_end(g->record->seq);
      if (after.unlock) after.unlock(after.lock);
      return;
    case AfterSwitch::kRequeueLocal:
      write_yielded(g);
      seq_end(g->record->seq);
      if (FiberHandle* parked = m->p->yield_slot.load(std::memory_order_relaxed)) {
        m->p->yield_slot.store(nullptr, std::memory_order_relaxed);
        runq_put(m->p, parked, false);
      }
      runq_put(m->p, g, false);
      return;
    case AfterSwitch::kRequeueSlot:
      requeue_to_slot(m, g);
      return;
    case AfterSwitch::kRequeueGlobal:
      write_fiber_state(g, FIBERSCOPE_FIBER_RUNNABLE, FIBERSCOPE_WAIT_NONE, nullptr);
      seq_end(g->record->seq);
      {
        std::lock_guard<std::mutex> guard(sched.lock);
        global_push_locked(g);
      }
      wake_processor();
      return;
    case AfterSwitch::kRecycle:
      recycle_fiber(m, g);
      return;
  }
}

// Pops the next local fiber this fiber may switch to directly, or null to go through the scheduler.
FiberHandle* next_local(Worker* m) {
  Processor* p = m->p;
  if (sched.global_size.load(std::memory_order_relaxed) > 0 && (p->schedule_tick + 1) % 61 == 0) return nullptr;
  FiberHandle* g = runq_get(p);
  if (!g) g = take_yield_slot(p);
  if (g && g->locked_to && g->locked_to != m) {
    m->next_fiber = g;  // the scheduler hands our processor to its worker
    return nullptr;
  }
  if (g) ++p->schedule_tick;
  return g;
}

// The one switch of a fiber that parks or yields (Go's mcall from gopark): straight to `to`, or to the scheduler
// when `to` is null; m->after already says what the other side does with `from`. Each of park, yield and
// exitsyscall_slow inlines it once and calls it from nowhere else, so every fiber parked by one primitive resumes at
// the same pc under the same runtime frames whichever way it left (the inspector groups fibers blocked in the same
// code; two switch sites split them), and the switch's ret returns where the return-stack buffer predicts: the
// address the fiber switching away pushed. Inlined rather than called: a call costs yield 2 ns (call, ret, and a
// frame that saves registers the switch saves again). `yield_return`: the return address of the fiber::yield making
// this switch, 0 from anywhere else; returns the one the switch that resumed `from` passed.
[[gnu::always_inline]] inline std::uintptr_t switch_away(Worker* m, FiberHandle* from, FiberHandle* to,
                                                         std::uintptr_t yield_return = 0) {
  seq_begin(from->record->seq);  // closed by the continuation once the context below is complete
  m->after.yield_return = yield_return;
  const fiberscope_context* load;
  if (to) {
    prepare_run(m, to, /*from_fiber=*/true);
    leave_to_fiber(&from->asan_fake_stack, to);
    load = &to->record->context;
  } else {
    set_current(m, nullptr);
    leave_to_scheduler(&from->asan_fake_stack, m);
    load = &m->scheduler_context;
  }
  fiberscope_switch(&from->record->context, load);
  // The continuation, with the two-fiber yield's inline (no call into run_after_switch).
  Worker* now_on = this_worker();
  sanitizer_arrive(from->asan_fake_stack);
  const std::uintptr_t resumed_by = now_on->after.yield_return;
  if (now_on->after.kind == AfterSwitch::kRequeueSlot) [[likely]] {
    now_on->after.kind = AfterSwitch::kNone;
    requeue_to_slot(now_on, now_on->after.fiber);
    return resumed_by;
  }
  run_after_switch(now_on);
  return resumed_by;
}

// Worker loop body: runs g until it switches back to the scheduler.
[[gnu::noinline]] void execute(Worker* m, FiberHandle* g) {
  // Foreign calls run C code on this stack below the scheduler's frames: leave this frame and a red zone.
  volatile char marker = 0;
  m->foreign.system_sp = (reinterpret_cast<std::uint64_t>(&marker) - 1024) & ~std::uint64_t{15};
  prepare_run(m, g);
  m->after.yield_return = 0;
  leave_to_fiber(&m->asan_fake_stack, g);
  fiberscope_switch(&m->scheduler_context, &g->record->context);
  sanitizer_arrive(m->asan_fake_stack);
  run_after_switch(m);
}

// Go's startlockedm: hands our processor to the worker g is locked to, which is asleep in park_locked.
void start_locked(Worker* m, FiberHandle* g) {
  Worker* target = g->locked_to;
  Processor* p = release_processor(m);
  set_worker_state(m, FIBERSCOPE_WORKER_IDLE, -1);
  target->nextp = p;
  target->note.wake();
}

void worker_main(Worker* m) {
  t_worker = m;
  char thread_name[16];
  std::snprintf(thread_name, sizeof thread_name, "fiber-worker-%u", m->index);
  pthread_setname_np(pthread_self(), thread_name);
#if FIBERSCOPE_TSAN
  m->tsan_fiber = __tsan_get_current_fiber();
#endif
  pthread_attr_t attr;
  void* stack_addr = nullptr;
  std::size_t stack_size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &stack_addr, &stack_size);
    pthread_attr_destroy(&attr);
  }
  m->system_stack_bottom = stack_addr;
  m->system_stack_size = stack_size;
  m->signal_stack = create_signal_stack();
  fiberscope_worker* r = m->record;
  const std::uint64_t r_seq = seq_begin(r->seq);
  put(r->tid, static_cast<std::int32_t>(::syscall(SYS_gettid)));
  put(r->index, m->index);
  put(r->sysstack_lo, reinterpret_cast<std::uint64_t>(stack_addr));
  put(r->sysstack_hi, reinterpret_cast<std::uint64_t>(stack_addr) + stack_size);
  put(r->current_fiber, std::uint64_t{0});
  put(r->current_record, std::uint64_t{0});
  put(r->state, static_cast<std::uint32_t>(FIBERSCOPE_WORKER_IDLE));
  put(r->state_since_ns, clock_now());
  put(r->processor, -1);
  seq_end(r->seq, r_seq);

  if (m->nextp) {
    acquire_processor(m, m->nextp);
    m->nextp = nullptr;
  }
  while (FiberHandle* g = find_runnable(m)) {
    if (m->spinning) reset_spinning(m);
    if (g->locked_to && g->locked_to != m) {
      start_locked(m, g);
      continue;
    }
    execute(m, g);
  }
  set_worker_state(m, FIBERSCOPE_WORKER_EXITED, -1);
  destroy_signal_stack(m->signal_stack);
  m->signal_stack = nullptr;
  t_worker = nullptr;
}

// ---- the monitor (Go's sysmon) ----

// The heavy half of the exitsyscall handshake: a full fence on every running thread of the process.
void asymmetric_heavy_fence() {
  if (::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) fatal("membarrier failed");
}

bool register_asymmetric_fence() {
#if FIBERSCOPE_TSAN
  return false;  // TSan cannot see the fence membarrier adds; the CAS path keeps its reports exact
#else
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

// What the monitor's look found of processors in syscalls.
enum class SyscallSighting {
  none,       // no processor in a syscall
  fresh,      // only syscalls that began since the last look
  lingering,  // a syscall seen before is still in progress and not retaken: look again soon
};

SyscallSighting retake(std::uint64_t now) {
  SyscallSighting sighting = SyscallSighting::none;
  for (Processor* p : sched.processors) {
    std::uint64_t status = p->status.load(std::memory_order_acquire);
    if (processor_state(status) != kProcessorSyscall) continue;
    std::uint64_t tick = processor_tick(status);
    if (p->sysmon_tick != tick || p->sysmon_since_ns == 0) {
      p->sysmon_tick = tick;
      p->sysmon_since_ns = now;
      if (sighting == SyscallSighting::none) sighting = SyscallSighting::fresh;
      continue;
    }
    std::uint64_t blocked = now - p->sysmon_since_ns;
    if (blocked < kRetakeAfterNs) {
      sighting = SyscallSighting::lingering;
      continue;
    }
    bool work = p->has_work() || sched.global_size.load(std::memory_order_acquire) > 0;
    bool nobody_else = sched.idle_processor_count.load() + sched.spinning_workers.load() == 0;
    if (!work && !nobody_else && blocked < kRetakeAlwaysAfterNs) continue;
    bool retaken = false;
    if (sched.asymmetric_fence) {
      p->retake_intent.store(1, std::memory_order_relaxed);
      asymmetric_heavy_fence();
      retaken = p->exiting.load(std::memory_order_relaxed) != tick &&
                p->status.compare_exchange_strong(status, processor_status(tick, kProcessorIdle),
                                                  std::memory_order_acq_rel);
      p->retake_intent.store(0, std::memory_order_release);
    } else {
      retaken = p->status.compare_exchange_strong(status, processor_status(tick, kProcessorIdle),
                                                  std::memory_order_acq_rel);
    }
    if (retaken) {
      p->sysmon_since_ns = 0;
      handoff_processor(p);
    }
  }
  return sighting;
}

void monitor_main() {
  pthread_setname_np(pthread_self(), "fiber-monitor");
  std::uint64_t delay_ns = 20'000;
  std::unique_lock<std::mutex> guard(sched.monitor_lock);
  while (!sched.shutting_down.load(std::memory_order_acquire)) {
    guard.unlock();
    std::uint64_t now = monotonic_ns();
    put(fiberscope_debug_root.clock_ns, now);
    if (sched.next_timer_ns.load(std::memory_order_relaxed) <= now) fire_timers(now);
    switch (retake(now)) {
      case SyscallSighting::lingering:
        delay_ns = kRetakeAfterNs;
        break;
      case SyscallSighting::fresh:
        delay_ns = std::min(delay_ns * 2, kFreshSyscallMaxDelayNs);
        break;
      case SyscallSighting::none:
        delay_ns = std::min(delay_ns * 2, kIdleMaxDelayNs);
        break;
    }
    guard.lock();
    sched.monitor_cv.wait_for(guard, std::chrono::nanoseconds(delay_ns),
                              [] { return sched.shutting_down.load(std::memory_order_acquire); });
  }
}

struct Clock {
  static std::uint64_t now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
  }
};

std::mutex run_mutex;  // run() is not reentrant

}  // namespace

// ---- shared internals ----



void Note::sleep() noexcept {
  while (key_.exchange(0, std::memory_order_acquire) == 0) {
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&key_), FUTEX_WAIT_PRIVATE, 0u, nullptr, nullptr, 0);
  }
}

void Note::wake() noexcept {
  key_.store(1, std::memory_order_release);
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&key_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

std::uint64_t monotonic_ns() noexcept { return Clock::now(); }






void acquire_processor(Worker* m, Processor* p) noexcept {
  m->p = p;
  p->status.store(processor_status(p->syscall_tick, kProcessorRunning), std::memory_order_release);
}

bool acquire_idle_processor(Worker* m) {
  if (sched.idle_processor_count.load(std::memory_order_acquire) == 0) return false;
  Processor* p = nullptr;
  {
    std::lock_guard<std::mutex> guard(sched.lock);
    p = idle_processor_get_locked();
  }
  if (!p) return false;
  acquire_processor(m, p);
  return true;
}

// Go's handoffp: a processor without a worker goes to a new worker if there is work, else to the idle list.
void handoff_processor(Processor* p) {
  if (p->has_work() || sched.global_size.load(std::memory_order_acquire) > 0) {
    start_worker(p, false);
    return;
  }
  std::uint32_t zero = 0;
  if (sched.idle_processor_count.load() == 0 &&
      sched.spinning_workers.compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) {
    start_worker(p, true);  // every other processor is busy: one spinning worker may steal from them
    return;
  }
  std::unique_lock<std::mutex> guard(sched.lock);
  if (sched.global_size.load(std::memory_order_relaxed) > 0) {
    guard.unlock();
    start_worker(p, false);
    return;
  }
  idle_processor_put_locked(p);
}

// Go's wakep: if a processor is idle and nobody is spinning, start a spinning worker for the new work.
void wake_processor() {
  if (sched.idle_processor_count.load(std::memory_order_acquire) == 0) return;
  std::uint32_t zero = 0;
  if (sched.spinning_workers.load(std::memory_order_relaxed) != 0 ||
      !sched.spinning_workers.compare_exchange_strong(zero, 1, std::memory_order_acq_rel)) {
    return;
  }
  start_worker(nullptr, true);
}

void global_push(FiberHandle* g) {
  {
    std::lock_guard<std::mutex> guard(sched.lock);
    global_push_locked(g);
  }
  wake_processor();
}

// Go's stoplockedm for a fiber locked to its worker (inside a foreign call's callback): the worker's system
// stack holds C frames, so it may not run other fibers. Publish, hand the processor off, sleep in place until a
// scheduler that picked the fiber hands a processor back (start_locked).
void park_locked(Worker* m, FiberHandle* g, std::uint32_t state, std::uint32_t wait_reason,
                 const void* wait_object, void (*unlock)(void*), void* lock, bool requeue) {
  fiberscope_fiber* r = g->record;
  const std::uint64_t r_seq = seq_begin(r->seq);
  fiberscope_save_context(&r->context);
  write_fiber_state(g, state, wait_reason, wait_object);
  seq_end(r->seq, r_seq);
  Processor* p = release_processor(m);
  set_worker_state(m, FIBERSCOPE_WORKER_LOCKED, -1);
  if (requeue) {
    std::lock_guard<std::mutex> guard(sched.lock);
    global_push_locked(g);
  }
  if (p) {
    p->status.store(processor_status(p->syscall_tick, kProcessorIdle), std::memory_order_release);
    handoff_processor(p);
  } else if (requeue) {
    wake_processor();
  }
  if (unlock) unlock(lock);
  m->note.sleep();
  acquire_processor(m, m->nextp);
  m->nextp = nullptr;
  set_fiber_state(g, FIBERSCOPE_FIBER_RUNNING);
  publish_worker_current(m, g);
}

void exitsyscall_slow(Worker* m, FiberHandle* g) {
  if (acquire_idle_processor(m)) {
    set_fiber_state(g, FIBERSCOPE_FIBER_RUNNING);
    publish_worker_current(m, g);
    return;
  }
  if (g->locked_to) {
    park_locked(m, g, FIBERSCOPE_FIBER_RUNNABLE, FIBERSCOPE_WAIT_LOCKED_THREAD, nullptr, nullptr, nullptr, true);
    return;
  }
  // No processor: queue the fiber globally and let this worker sleep (Go's exitsyscall0).
  m->after.kind = AfterSwitch::kRequeueGlobal;
  m->after.fiber = g;
  switch_away(m, g, nullptr);
}

void fire_timers(std::uint64_t now_ns) {
  FiberHandle* due = nullptr;
  {
    std::lock_guard<SpinLock> guard(sched.timer_lock);
    auto later = [](const Scheduler::Timer& a, const Scheduler::Timer& b) { return a.deadline_ns > b.deadline_ns; };
    while (!sched.timers.empty() && sched.timers.front().deadline_ns <= now_ns) {
      std::pop_heap(sched.timers.begin(), sched.timers.end(), later);
      FiberHandle* g = sched.timers.back().fiber;
      sched.timers.pop_back();
      g->queue_next = due;
      due = g;
    }
    sched.next_timer_ns.store(sched.timers.empty() ? UINT64_MAX : sched.timers.front().deadline_ns,
                              std::memory_order_relaxed);
  }
  while (due) {
    FiberHandle* next = due->queue_next;
    due->queue_next = nullptr;
    ready(due);
    due = next;
  }
}

// ---- park / ready ----

FiberHandle* current_fiber_or_abort(const char* what) {
  Worker* m = this_worker();
  FiberHandle* g = m ? m->current : nullptr;
  if (!g) {
    char message[160];
    std::snprintf(message, sizeof message, "%s called outside a fiber", what);
    fatal(message);
  }
  return g;
}

void park(std::uint32_t wait_reason, const void* wait_object, void (*unlock)(void*), void* lock) {
  Worker* m = this_worker();
  FiberHandle* g = m ? m->current : nullptr;
  if (!g) fatal("a blocking fiber primitive was called outside a fiber");
  std::uint32_t state = get(g->record->state);
  if (state == FIBERSCOPE_FIBER_SYSCALL || state == FIBERSCOPE_FIBER_FOREIGN) {
    fatal("a blocking fiber primitive was called inside fiber::syscall or foreign code (use fiber_callback)");
  }
  if (g->locked_to) {
    park_locked(m, g, FIBERSCOPE_FIBER_WAITING, wait_reason, wait_object, unlock, lock, false);
    return;
  }
  AfterSwitch& after = m->after;
  after.kind = AfterSwitch::kPark;
  after.fiber = g;
  after.wait_reason = wait_reason;
  after.wait_object = wait_object;
  after.unlock = unlock;
  after.lock = lock;
  switch_away(m, g, next_local(m));
}

void ready(FiberHandle* g) {
  set_fiber_state(g, FIBERSCOPE_FIBER_RUNNABLE, g->locked_to ? FIBERSCOPE_WAIT_LOCKED_THREAD : FIBERSCOPE_WAIT_NONE);
  Worker* m = this_worker();
  if (m && m->p) {
    runq_put(m->p, g, true);
    wake_processor();
  } else {
    global_push(g);
  }
}

void unlock_spin(void* spin_lock) { static_cast<SpinLock*>(spin_lock)->unlock(); }

[[noreturn]] void fatal(const char* message) {
  char line[512];
  int n = std::snprintf(line, sizeof line, "fiberscope: %s\n", message);
  if (n > 0) {
    ssize_t ignored = ::write(STDERR_FILENO, line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1));
    (void)ignored;
  }
  std::abort();
}

// ---- spawning ----

SpawnSlot spawn_prepare(std::size_t bytes, std::size_t align) {
  if (!get(fiberscope_debug_root.running)) fatal("fiber::spawn called outside fiber::run");
  FiberHandle* g = nullptr;
  Worker* m = this_worker();
  if (m && m->p && m->p->free_fibers) {
    g = m->p->free_fibers;
    m->p->free_fibers = g->queue_next;
    --m->p->free_count;
  } else {
    std::lock_guard<std::mutex> guard(sched.pool_lock);
    g = sched.pool;
    if (g) sched.pool = g->queue_next;
  }
  if (!g) {
    g = new FiberHandle;
    g->record = allocate_fiber_record();
  }
  g->queue_next = nullptr;
  if (g->stack.usable_bytes() != sched.stack_bytes) {
    if (g->stack.hi) release_stack(g->stack);
    if (!allocate_stack(g->stack, sched.stack_bytes)) fatal("cannot allocate a fiber stack (mmap failed)");
  } else {
    prepare_stack_for_reuse(g->stack);
  }
  std::size_t alignment = std::max<std::size_t>(align, 16);
  std::uintptr_t storage = (g->stack.hi - bytes) & ~(alignment - 1);
  return SpawnSlot{g, reinterpret_cast<void*>(storage)};
}

FiberId spawn_commit_at(SpawnSlot slot, void (*entry)(void*), std::string_view name, const void* spawn_pc) {
  return spawn_commit_with_flags(slot, entry, name, spawn_pc, 0);
}

FiberId spawn_commit_with_flags(SpawnSlot slot, void (*entry)(void*), std::string_view name, const void* spawn_pc,
                                std::uint32_t flags) {
  FiberHandle* g = slot.fiber;
  g->id = __atomic_add_fetch(&fiberscope_debug_root.fibers_created, 1, __ATOMIC_RELAXED);
  g->locked_to = nullptr;
  g->callback_depth = 0;
#if FIBERSCOPE_TSAN
  g->tsan_fiber = __tsan_create_fiber(0);
#endif
  g->asan_fake_stack = nullptr;
  Worker* m = this_worker();
  FiberHandle* parent = m ? m->current : nullptr;
  fiberscope_fiber* r = g->record;
  const std::uint64_t r_seq = seq_begin(r->seq);
  put(r->id, g->id);
  char padded[FIBERSCOPE_FIBER_NAME_BYTES] = {};
  if (!name.empty())
    std::memcpy(padded, name.data(), std::min<std::size_t>(name.size(), FIBERSCOPE_FIBER_NAME_BYTES - 1));
  for (std::size_t i = 0; i < FIBERSCOPE_FIBER_NAME_BYTES; ++i) put(r->name[i], padded[i]);
  put(r->stack_lo, static_cast<std::uint64_t>(g->stack.lo));
  put(r->stack_hi, static_cast<std::uint64_t>(g->stack.hi));
  put(r->guard_lo, static_cast<std::uint64_t>(g->stack.guard_lo));
  fiberscope_context start{};
  start.pc = reinterpret_cast<std::uint64_t>(&fiberscope_fiber_start);
  start.sp = reinterpret_cast<std::uint64_t>(slot.storage) & ~std::uint64_t{15};
  start.r12 = reinterpret_cast<std::uint64_t>(slot.storage);
  start.r13 = reinterpret_cast<std::uint64_t>(entry);
  put_context(r->context, start);
  put(r->foreign_depth, 0u);
  put(r->transition_top, std::uint64_t{0});
  put(r->spawn_pc, reinterpret_cast<std::uint64_t>(spawn_pc));
  put(r->start_pc, reinterpret_cast<std::uint64_t>(entry));
  put(r->parent_id, parent ? parent->id : 0);
  put(r->created_ns, clock_now());
  put(r->flags, flags);
  write_fiber_state(g, FIBERSCOPE_FIBER_RUNNABLE, FIBERSCOPE_WAIT_NONE, nullptr);
  seq_end(r->seq, r_seq);
  std::uint64_t live = sched.fibers_live.fetch_add(1, std::memory_order_acq_rel) + 1;
  put(fiberscope_debug_root.fibers_live, live);
  FiberId id = g->id;  // g may run (and finish) as soon as it is queued
  if (m && m->p && parent) {
    runq_put(m->p, g, true);
    wake_processor();
  } else {
    global_push(g);
  }
  return id;
}

[[gnu::noinline]] FiberId spawn_commit(SpawnSlot slot, void (*entry)(void*), std::string_view name) {
  return spawn_commit_at(slot, entry, name, __builtin_return_address(0));
}

void fiber_started() noexcept {
  Worker* m = this_worker();
  sanitizer_arrive(nullptr);
  run_after_switch(m);
}

[[noreturn]] void fiber_finish() noexcept {
  Worker* m = this_worker();
  FiberHandle* g = m->current;
  set_fiber_state(g, FIBERSCOPE_FIBER_DEAD);
  std::uint64_t live = sched.fibers_live.fetch_sub(1, std::memory_order_acq_rel) - 1;
  put(fiberscope_debug_root.fibers_live, live);
  if (live == 0) {
    std::lock_guard<std::mutex> guard(sched.done_lock);
    sched.done = true;
    sched.done_cv.notify_all();
  }
  m->after = AfterSwitch{};
  m->after.kind = AfterSwitch::kRecycle;
  m->after.fiber = g;
  FiberHandle* next = next_local(m);
  if (next) {
    prepare_run(m, next, /*from_fiber=*/true);
    leave_to_fiber(nullptr, next);
    fiberscope_switch(&m->scratch_context, &next->record->context);
  } else {
    set_current(m, nullptr);
    leave_to_scheduler(nullptr, m);
    fiberscope_switch(&m->scratch_context, &m->scheduler_context);
  }
  __builtin_unreachable();
}

}  // namespace fiber::detail

// ---- the public API ----

namespace fiber {

using namespace detail;

int run(std::function<void()> main, Options options) {
  std::unique_lock<std::mutex> only_one(run_mutex, std::try_to_lock);
  if (!only_one.owns_lock() || get(fiberscope_debug_root.running)) {
    std::fprintf(stderr, "fiberscope: fiber::run: already running\n");
    return EBUSY;
  }
  unsigned processors = options.workers ? options.workers : std::max(1u, std::thread::hardware_concurrency());
  if (processors > kMaxWorkers) {
    std::fprintf(stderr, "fiberscope: fiber::run: %u workers requested, at most %u\n", processors, kMaxWorkers);
    return EINVAL;
  }
  if (options.stack_bytes > kMaxStackBytes) {
    std::fprintf(stderr, "fiberscope: fiber::run: stack_bytes %zu exceeds %zu\n", options.stack_bytes, kMaxStackBytes);
    return EINVAL;
  }
  std::size_t page = page_bytes();
  std::size_t stack_bytes = std::max<std::size_t>(options.stack_bytes, 4 * page);
  stack_bytes = (stack_bytes + page - 1) / page * page;
  sched.stack_bytes = stack_bytes;
  sched.faults = parse_faults(std::getenv("FIBERSCOPE_FAULTS"));
  sched.asymmetric_fence = register_asymmetric_fence();
  sched.shutting_down.store(false);
  sched.done = false;
  sched.fibers_live.store(0);
  sched.spinning_workers.store(0);
  sched.idle_processor_count.store(0);
  sched.idle_processors = nullptr;
  sched.idle_workers = nullptr;
  sched.next_timer_ns.store(UINT64_MAX);
  for (unsigned i = 0; i < processors; ++i) {
    auto* p = new Processor;
    p->index = i;
    sched.processors.push_back(p);
  }
  for (auto it = sched.processors.rbegin(); it != sched.processors.rend(); ++it) idle_processor_put_locked(*it);
  reset_worker_records();
  init_debug_root(stack_bytes, page, processors, sched.faults);
  put(fiberscope_debug_root.clock_ns, monotonic_ns());
  install_overflow_handler();
  __atomic_store_n(&fiberscope_debug_root.running, 1, __ATOMIC_RELEASE);

  using Main = std::function<void()>;
  SpawnSlot slot = spawn_prepare(sizeof(Main), alignof(Main));
  ::new (slot.storage) Main(std::move(main));
  try {
    sched.monitor = std::thread(monitor_main);
  } catch (const std::system_error& error) {
    std::fprintf(stderr, "fiberscope: fiber::run: cannot start the monitor thread: %s\n", error.what());
    for (Processor* p : sched.processors) delete p;
    sched.processors.clear();
    __atomic_store_n(&fiberscope_debug_root.running, 0, __ATOMIC_RELEASE);
    // The main fiber's slot goes back to the pool unused.
    slot.fiber->queue_next = sched.pool;
    sched.pool = slot.fiber;
    static_cast<Main*>(slot.storage)->~Main();
    return EAGAIN;
  }
  spawn_commit_with_flags(slot, &fiber_entry<Main>, "main", __builtin_return_address(0), FIBERSCOPE_FIBER_FLAG_MAIN);

  {
    std::unique_lock<std::mutex> wait(sched.done_lock);
    sched.done_cv.wait(wait, [] { return sched.done; });
  }
  {
    std::lock_guard<std::mutex> guard(sched.lock);
    sched.shutting_down.store(true, std::memory_order_release);
  }
  {
    std::lock_guard<std::mutex> guard(sched.monitor_lock);
    sched.monitor_cv.notify_all();
  }
  std::vector<Worker*> workers;
  {
    std::lock_guard<std::mutex> guard(sched.lock);
    workers = sched.workers;
  }
  for (Worker* m : workers) m->note.wake();
  for (Worker* m : workers) m->thread.join();
  sched.monitor.join();
  for (Worker* m : workers) delete m;
  sched.workers.clear();
  for (Processor* p : sched.processors) {
    while (FiberHandle* g = p->free_fibers) {
      p->free_fibers = g->queue_next;
      g->queue_next = sched.pool;
      sched.pool = g;
    }
    delete p;
  }
  sched.processors.clear();
  sched.timers.clear();
  __atomic_store_n(&fiberscope_debug_root.running, 0, __ATOMIC_RELEASE);
  return 0;
}

[[gnu::noinline]] FiberId spawn(std::function<void()> fn, std::string_view name) {
  using Callable = std::function<void()>;
  SpawnSlot slot = spawn_prepare(sizeof(Callable), alignof(Callable));
  ::new (slot.storage) Callable(std::move(fn));
  return spawn_commit_at(slot, &fiber_entry<Callable>, name, __builtin_return_address(0));
}

namespace {

// Where a yield beyond the two-fiber fast path goes: `switch_needed` false when the fiber keeps running (nothing
// else to run, not in a fiber, or locked: those yield through park_locked, in place); else to `to` (null: the
// scheduler), with m->after filled.
struct YieldPlan {
  bool switch_needed;
  FiberHandle* to;
};

// fiber::yield beyond the two-fiber fast path: locked fibers, other queued work, nothing to run.
[[gnu::noinline]] YieldPlan plan_slow_yield(Worker* m, FiberHandle* g) {
  if (!g) {
    sched_yield();
    return {false, nullptr};
  }
  if (g->locked_to) {
    park_locked(m, g, FIBERSCOPE_FIBER_RUNNABLE, FIBERSCOPE_WAIT_LOCKED_THREAD, nullptr, nullptr, nullptr, true);
    return {false, nullptr};
  }
  Processor* p = m->p;
  if (FiberHandle* next = next_local(m)) {
    // Nothing else queued here now: wait in the yield slot, where the next yield finds us without a CAS.
    const bool to_slot = !p->yield_slot.load(std::memory_order_relaxed) &&
                         p->runnext.load(std::memory_order_relaxed) == nullptr &&
                         p->head.load(std::memory_order_acquire) == p->tail.load(std::memory_order_relaxed);
    m->after.kind = to_slot ? AfterSwitch::kRequeueSlot : AfterSwitch::kRequeueLocal;
    m->after.fiber = g;
    return {true, next};
  }
  if (m->next_fiber || sched.global_size.load(std::memory_order_relaxed) > 0 ||
      sched.next_timer_ns.load(std::memory_order_relaxed) <= clock_now()) {
    m->after.kind = AfterSwitch::kRequeueLocal;
    m->after.fiber = g;
    return {true, nullptr};
  }
  return {false, nullptr};
}

}  // namespace

}  // namespace fiber

// fiber::yield, entered through its stub in switch.S: returns `return_address` when the fiber keeps running, else
// what switch_away returns once it is resumed.
extern "C" std::uintptr_t fiberscope_yield_impl(std::uintptr_t return_address) {
  using namespace fiber;
  using namespace fiber::detail;
  Worker* m = this_worker();
  FiberHandle* g = m ? m->current : nullptr;
  // Fast path: nothing queued here or globally but the fiber in the yield slot, so trade places with it.
  // m->after gets only the two fields a requeue reads (a whole AfterSwitch is six stores). The slot never holds
  // a locked fiber (those yield through park_locked), so it may run here. The slow path decides out of line, and
  // both switch through the one call below, so every yielded fiber resumes at the same place.
  FiberHandle* to = nullptr;
  if (g && !g->locked_to) [[likely]] {
    Processor* p = m->p;
    to = p->yield_slot.load(std::memory_order_relaxed);
    if (to && p->runnext.load(std::memory_order_relaxed) == nullptr &&
        p->head.load(std::memory_order_acquire) == p->tail.load(std::memory_order_relaxed) &&
        sched.global_size.load(std::memory_order_relaxed) == 0) [[likely]] {
      p->yield_slot.store(nullptr, std::memory_order_relaxed);
      ++p->schedule_tick;
      m->after.kind = AfterSwitch::kRequeueSlot;
      m->after.fiber = g;
    } else {
      to = nullptr;
    }
  }
  if (!to) {
    const YieldPlan plan = plan_slow_yield(m, g);
    if (!plan.switch_needed) return return_address;
    to = plan.to;
    // Read again rather than kept across the call: then this frame saves no registers on the fast path.
    m = this_worker();
    g = m->current;
  }
  return switch_away(m, g, to, return_address);
}

namespace fiber {

void sleep_for(std::chrono::nanoseconds duration) {
  if (duration.count() <= 0) {
    yield();
    return;
  }
  FiberHandle* g = current_fiber_or_abort("fiber::sleep_for");
  std::uint64_t deadline = monotonic_ns() + static_cast<std::uint64_t>(duration.count());
  sched.timer_lock.lock();
  sched.timers.push_back(Scheduler::Timer{deadline, g});
  std::push_heap(sched.timers.begin(), sched.timers.end(),
                 [](const Scheduler::Timer& a, const Scheduler::Timer& b) { return a.deadline_ns > b.deadline_ns; });
  sched.next_timer_ns.store(sched.timers.front().deadline_ns, std::memory_order_relaxed);
  park(FIBERSCOPE_WAIT_SLEEP, nullptr, [](void*) { sched.timer_lock.unlock(); }, nullptr);
}

FiberId current() {
  Worker* m = this_worker();
  return m && m->current ? m->current->id : 0;
}

}  // namespace fiber
