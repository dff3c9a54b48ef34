/* fiberscope debug ABI: how a fiber runtime publishes its state to an outside reader.
 *
 * This header is the only file shared by runtime_lib (the writer) and the inspector (the reader, which may be
 * another process or a core file). Everything here is fixed-width, little-endian x86-64, and checked with
 * static_assert so that neither side ever hard-codes an offset.
 *
 * Finding it: the runtime exports one symbol, FIBERSCOPE_DEBUG_ROOT_SYMBOL, in .dynsym (it survives `strip`).
 * The root points at two linked lists of chunks (fibers, workers). Chunks are allocated once and never move or
 * get freed, so a reader can walk them while the process runs. Every record starts with a sequence counter
 * (seqlock): odd while its writer is updating it. A reader copies the record, re-reads `seq`, and treats the copy
 * as torn if the two values differ or are odd.
 *
 * Stack switches (fiber -> system stack for a foreign call, system -> fiber stack for a callback) each push a
 * fiberscope_transition record inside the trampoline's own frame; records form a chain from the fiber record's
 * `transition_top` outwards, so a reader can stitch callback -> C -> fiber frames at any nesting depth.
 */
#ifndef FIBERSCOPE_DEBUG_ABI_H
#define FIBERSCOPE_DEBUG_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FIBERSCOPE_DEBUG_MAGIC 0x3142444353424946ull /* "FIBSCDB1" little-endian */
#define FIBERSCOPE_DEBUG_ABI_VERSION 1u
#define FIBERSCOPE_DEBUG_ROOT_SYMBOL "fiberscope_debug_root"
#define FIBERSCOPE_FIBER_NAME_BYTES 32u
/* The function that validates a fiber's saved syscall frame when it leaves a syscall or foreign call (Go's
 * exitsyscall check). A thread stopped inside it — e.g. aborting with "syscall frame is no longer valid" — has its
 * fiber's deepest live frame at this function's CFA: the caller's sp that the check compares with syscall_sp. */
#define FIBERSCOPE_EXITSYSCALL_SYMBOL "fiberscope_exitsyscall_impl"
/* The runtime's spawn wrapper for any callable is inlined into its caller, so a fiber's spawn_pc lies in code that
 * DWARF attributes to an inlined frame of this name (a template: "spawn<...>"); the spawning function is the frame
 * that inlined it. */
#define FIBERSCOPE_SPAWN_WRAPPER_NAME "spawn"

/* Fiber states. A record in state FREE has never been used; DEAD records keep their last values (stack bounds
 * included) until the slot is reused, so a reader can tell a pointer into a finished fiber's stack. */
enum fiberscope_fiber_state {
  FIBERSCOPE_FIBER_FREE = 0,
  FIBERSCOPE_FIBER_RUNNABLE = 1, /* in a run queue */
  FIBERSCOPE_FIBER_RUNNING = 2,  /* on a worker; `worker` names it (also inside a callback) */
  FIBERSCOPE_FIBER_SYSCALL = 3,  /* inside fiber::syscall; syscall_pc/sp are valid */
  FIBERSCOPE_FIBER_FOREIGN = 4,  /* inside fiber::foreign_call running C on the system stack; syscall_pc/sp valid */
  FIBERSCOPE_FIBER_WAITING = 5,  /* parked; wait_reason and wait_object say on what */
  FIBERSCOPE_FIBER_DEAD = 6,
  FIBERSCOPE_FIBER_STATE_COUNT = 7
};

enum fiberscope_wait_reason {
  FIBERSCOPE_WAIT_NONE = 0,
  FIBERSCOPE_WAIT_SLEEP = 1,
  FIBERSCOPE_WAIT_CHAN_SEND = 2,
  FIBERSCOPE_WAIT_CHAN_RECV = 3,
  FIBERSCOPE_WAIT_MUTEX = 4,
  FIBERSCOPE_WAIT_CONDVAR = 5,
  FIBERSCOPE_WAIT_WAITGROUP = 6,
  FIBERSCOPE_WAIT_LOCKED_THREAD = 7, /* runnable fiber waiting for its locked worker (callback in progress) */
  FIBERSCOPE_WAIT_REASON_COUNT = 8
};

enum fiberscope_worker_state {
  FIBERSCOPE_WORKER_UNUSED = 0,
  FIBERSCOPE_WORKER_IDLE = 1,    /* parked, looking for work */
  FIBERSCOPE_WORKER_RUNNING = 2, /* running `current_fiber`, also while that fiber is in a syscall or foreign call
                                  * (its own record says SYSCALL or FOREIGN, as Go's G does; its M publishes nothing) */
  FIBERSCOPE_WORKER_SYSCALL = 3, /* not published by this runtime: syscalls leave the worker record RUNNING. Readers
                                  * should treat it as RUNNING (older runtimes published it around every call) */
  FIBERSCOPE_WORKER_LOCKED = 4,  /* sleeping until its locked fiber (parked inside a callback) is runnable */
  FIBERSCOPE_WORKER_EXITED = 5,
  FIBERSCOPE_WORKER_STATE_COUNT = 6
};

enum fiberscope_transition_kind {
  FIBERSCOPE_TRANSITION_FOREIGN_CALL = 1, /* fiber stack -> system stack (fiber::foreign_call) */
  FIBERSCOPE_TRANSITION_CALLBACK = 2      /* system stack -> fiber stack (fiber_callback) */
};

/* Fiber flags. */
#define FIBERSCOPE_FIBER_FLAG_MAIN 0x1u   /* the fiber that runs fiber::run's main function */
#define FIBERSCOPE_FIBER_FLAG_LOCKED 0x2u /* locked to its worker (inside a fiber_callback) */

/* The registers a context switch preserves (System V callee-saved set plus pc/sp). For a parked fiber this is
 * where it resumes: `pc` is a return address inside the runtime's park path and `sp` the stack pointer after that
 * return, so an unwinder starts a normal (caller) frame there. */
struct fiberscope_context {
  uint64_t pc;
  uint64_t sp;
  uint64_t rbp;
  uint64_t rbx;
  uint64_t r12;
  uint64_t r13;
  uint64_t r14;
  uint64_t r15;
};

/* One stack switch. Lives inside the switching trampoline's frame, on the stack switched *to*.
 * `from_*` describe the side that was left: the stack pointer after the trampoline returns there (its CFA),
 * the return address, and the frame pointer at the time. `to_sp` is where the new side's frames begin. */
struct fiberscope_transition {
  uint64_t prev;             /* address of the next outer transition record of this fiber, 0 if none */
  uint32_t kind;             /* enum fiberscope_transition_kind */
  uint32_t depth;            /* 1 for the outermost transition */
  uint64_t from_sp;
  uint64_t from_pc;
  uint64_t from_fp;
  uint64_t to_sp;
  uint64_t saved_syscall_pc; /* CALLBACK only (undefined in FOREIGN_CALL): the frame reentersyscall restores */
  uint64_t saved_syscall_sp;
};

struct fiberscope_fiber {
  uint64_t seq;                     /* seqlock: odd while being written */
  uint64_t id;                      /* > 0 once used; ids are never reused */
  uint32_t state;                   /* enum fiberscope_fiber_state */
  uint32_t wait_reason;             /* enum fiberscope_wait_reason */
  uint64_t wait_object;             /* address of the object waited on (channel, mutex, ...), 0 if none */
  char name[FIBERSCOPE_FIBER_NAME_BYTES]; /* NUL-terminated unless all bytes are used */
  uint64_t stack_lo;                /* usable stack [stack_lo, stack_hi), grows down from stack_hi */
  uint64_t stack_hi;
  uint64_t guard_lo;                /* guard page(s) are [guard_lo, stack_lo) */
  struct fiberscope_context context; /* valid while not running on a worker */
  uint64_t syscall_pc;              /* caller's pc/sp saved by entersyscall; 0 when not in a syscall */
  uint64_t syscall_sp;
  uint64_t state_since_ns;          /* root->clock_ns when `state` last changed */
  int32_t worker;                   /* index of the worker record running it (or locked to it), -1 if none */
  uint32_t foreign_depth;           /* number of transition records in the chain */
  uint64_t transition_top;          /* address of the innermost fiberscope_transition, 0 if none */
  uint64_t spawn_pc;                /* return address of the spawn call, in the spawning function (maybe inside
                                       an inlined FIBERSCOPE_SPAWN_WRAPPER_NAME frame there) */
  uint64_t start_pc;                /* entry of the function the fiber starts in */
  uint64_t parent_id;               /* id of the spawning fiber, 0 if spawned from outside a fiber */
  uint64_t created_ns;              /* root->clock_ns at spawn */
  uint32_t flags;                   /* FIBERSCOPE_FIBER_FLAG_* */
  uint32_t reserved0;
  uint64_t reserved[3];
};

struct fiberscope_worker {
  uint64_t seq;                     /* seqlock: odd while being written */
  int32_t tid;                      /* kernel thread id, 0 while not started */
  uint32_t state;                   /* enum fiberscope_worker_state */
  uint64_t current_fiber;           /* id of the fiber it runs or is locked to, 0 if none */
  uint64_t current_record;          /* address of that fiber's record, 0 if none */
  uint64_t sysstack_lo;             /* the thread's own (system) stack [lo, hi) */
  uint64_t sysstack_hi;
  uint64_t state_since_ns;
  uint32_t index;                   /* position of this record, as used by fiberscope_fiber.worker */
  int32_t processor;                /* run-queue owner index it holds, -1 if none. While its fiber is in a syscall
                                     * or foreign call: the one it entered with, which the monitor may have handed
                                     * to another worker meanwhile (Go's m.oldp) */
  uint64_t reserved[8];
};

/* Chunks: a header followed by `capacity` records of `record_size` bytes each. Only the first `used` records
 * have ever been written. `next` is published with release ordering after the chunk is fully initialised. */
struct fiberscope_chunk {
  uint64_t next;        /* address of the next chunk, 0 at the end */
  uint32_t capacity;
  uint32_t record_size;
  uint32_t used;
  uint32_t first_index; /* index of the first record in this chunk */
  uint64_t reserved;
};

struct fiberscope_debug_root {
  uint64_t magic;                 /* FIBERSCOPE_DEBUG_MAGIC */
  uint32_t abi_version;           /* FIBERSCOPE_DEBUG_ABI_VERSION */
  uint32_t root_size;             /* sizeof(struct fiberscope_debug_root) */
  uint32_t fiber_record_size;     /* sizeof(struct fiberscope_fiber) */
  uint32_t worker_record_size;    /* sizeof(struct fiberscope_worker) */
  uint32_t transition_record_size;/* sizeof(struct fiberscope_transition) */
  uint32_t chunk_header_size;     /* sizeof(struct fiberscope_chunk) */
  uint64_t fiber_chunks;          /* address of the first fiber chunk, 0 before fiber::run */
  uint64_t worker_chunks;         /* address of the first worker chunk */
  uint64_t fibers_live;           /* fibers spawned and not yet dead */
  uint64_t fibers_created;        /* total ever spawned (== highest id) */
  uint64_t clock_ns;              /* CLOCK_MONOTONIC, refreshed by the monitor about every millisecond */
  uint64_t stack_bytes;           /* default usable fiber stack size */
  uint64_t guard_bytes;           /* guard size below each fiber stack */
  uint32_t processors;            /* fiber::Options::workers */
  uint32_t faults;                /* FIBERSCOPE_FAULT_* bits active in this process */
  int32_t running;                /* 1 between fiber::run start and return */
  uint32_t reserved0;
  uint64_t reserved[7];
};

/* Fault-injection bits (FIBERSCOPE_FAULTS=stale-syscall-frame,undead-args). */
#define FIBERSCOPE_FAULT_STALE_SYSCALL_FRAME 0x1u
#define FIBERSCOPE_FAULT_UNDEAD_ARGS 0x2u

static inline const char* fiberscope_fiber_state_name(uint32_t state) {
  static const char* const names[FIBERSCOPE_FIBER_STATE_COUNT] = {"free",    "runnable", "running", "syscall",
                                                                  "foreign", "waiting",  "dead"};
  return state < FIBERSCOPE_FIBER_STATE_COUNT ? names[state] : "invalid";
}

static inline const char* fiberscope_wait_reason_name(uint32_t reason) {
  static const char* const names[FIBERSCOPE_WAIT_REASON_COUNT] = {
      "", "sleep", "chan send", "chan receive", "mutex", "condvar", "waitgroup", "locked thread"};
  return reason < FIBERSCOPE_WAIT_REASON_COUNT ? names[reason] : "invalid";
}

static inline const char* fiberscope_worker_state_name(uint32_t state) {
  static const char* const names[FIBERSCOPE_WORKER_STATE_COUNT] = {"unused",  "idle",   "running",
                                                                   "syscall", "locked", "exited"};
  return state < FIBERSCOPE_WORKER_STATE_COUNT ? names[state] : "invalid";
}

#ifdef __cplusplus
} /* extern "C" */
#define FIBERSCOPE_ABI_STATIC_ASSERT static_assert
#else
#define FIBERSCOPE_ABI_STATIC_ASSERT _Static_assert
#endif

/* The layout is the contract: any change here is an ABI version bump. */
FIBERSCOPE_ABI_STATIC_ASSERT(sizeof(struct fiberscope_context) == 64, "context size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, pc) == 0, "context.pc");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, sp) == 8, "context.sp");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, rbp) == 16, "context.rbp");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, rbx) == 24, "context.rbx");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, r12) == 32, "context.r12");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, r13) == 40, "context.r13");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, r14) == 48, "context.r14");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_context, r15) == 56, "context.r15");

FIBERSCOPE_ABI_STATIC_ASSERT(sizeof(struct fiberscope_transition) == 64, "transition size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, prev) == 0, "transition.prev");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, kind) == 8, "transition.kind");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, depth) == 12, "transition.depth");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, from_sp) == 16, "transition.from_sp");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, from_pc) == 24, "transition.from_pc");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, from_fp) == 32, "transition.from_fp");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, to_sp) == 40, "transition.to_sp");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, saved_syscall_pc) == 48, "transition.saved_pc");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_transition, saved_syscall_sp) == 56, "transition.saved_sp");

FIBERSCOPE_ABI_STATIC_ASSERT(sizeof(struct fiberscope_fiber) == 256, "fiber record size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, seq) == 0, "fiber.seq");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, id) == 8, "fiber.id");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, state) == 16, "fiber.state");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, wait_reason) == 20, "fiber.wait_reason");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, wait_object) == 24, "fiber.wait_object");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, name) == 32, "fiber.name");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, stack_lo) == 64, "fiber.stack_lo");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, stack_hi) == 72, "fiber.stack_hi");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, guard_lo) == 80, "fiber.guard_lo");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, context) == 88, "fiber.context");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, syscall_pc) == 152, "fiber.syscall_pc");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, syscall_sp) == 160, "fiber.syscall_sp");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, state_since_ns) == 168, "fiber.state_since_ns");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, worker) == 176, "fiber.worker");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, foreign_depth) == 180, "fiber.foreign_depth");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, transition_top) == 184, "fiber.transition_top");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, spawn_pc) == 192, "fiber.spawn_pc");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, start_pc) == 200, "fiber.start_pc");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, parent_id) == 208, "fiber.parent_id");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, created_ns) == 216, "fiber.created_ns");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_fiber, flags) == 224, "fiber.flags");

FIBERSCOPE_ABI_STATIC_ASSERT(sizeof(struct fiberscope_worker) == 128, "worker record size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, seq) == 0, "worker.seq");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, tid) == 8, "worker.tid");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, state) == 12, "worker.state");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, current_fiber) == 16, "worker.current_fiber");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, current_record) == 24, "worker.current_record");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, sysstack_lo) == 32, "worker.sysstack_lo");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, sysstack_hi) == 40, "worker.sysstack_hi");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, state_since_ns) == 48, "worker.state_since_ns");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, index) == 56, "worker.index");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_worker, processor) == 60, "worker.processor");

FIBERSCOPE_ABI_STATIC_ASSERT(sizeof(struct fiberscope_chunk) == 32, "chunk header size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_chunk, next) == 0, "chunk.next");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_chunk, capacity) == 8, "chunk.capacity");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_chunk, record_size) == 12, "chunk.record_size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_chunk, used) == 16, "chunk.used");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_chunk, first_index) == 20, "chunk.first_index");

FIBERSCOPE_ABI_STATIC_ASSERT(sizeof(struct fiberscope_debug_root) == 160, "root size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, magic) == 0, "root.magic");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, abi_version) == 8, "root.abi_version");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, root_size) == 12, "root.root_size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, fiber_record_size) == 16, "root.fiber_size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, worker_record_size) == 20, "root.worker_size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, transition_record_size) == 24, "root.tr_size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, chunk_header_size) == 28, "root.chunk_size");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, fiber_chunks) == 32, "root.fiber_chunks");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, worker_chunks) == 40, "root.worker_chunks");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, fibers_live) == 48, "root.fibers_live");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, fibers_created) == 56, "root.fibers_created");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, clock_ns) == 64, "root.clock_ns");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, stack_bytes) == 72, "root.stack_bytes");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, guard_bytes) == 80, "root.guard_bytes");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, processors) == 88, "root.processors");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, faults) == 92, "root.faults");
FIBERSCOPE_ABI_STATIC_ASSERT(offsetof(struct fiberscope_debug_root, running) == 96, "root.running");

#endif /* FIBERSCOPE_DEBUG_ABI_H */
