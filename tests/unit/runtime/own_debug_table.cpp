#include "own_debug_table.h"

#include <dlfcn.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "fiberscope/runtime.h"

namespace runtime_test {
namespace {

constexpr std::size_t kMaxChunks = 1 << 16;
constexpr std::size_t kMaxTransitions = 256;

std::string hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

bool in_stack(std::uint64_t address, const fiberscope_fiber& fiber) {
  return address >= fiber.stack_lo && address < fiber.stack_hi;
}

// A saved stack pointer may equal stack_hi: an empty stack.
bool sp_in_stack(std::uint64_t sp, const fiberscope_fiber& fiber) {
  return sp > fiber.stack_lo && sp <= fiber.stack_hi;
}

}  // namespace

const fiberscope_debug_root* find_debug_root() {
  return static_cast<const fiberscope_debug_root*>(::dlsym(RTLD_DEFAULT, FIBERSCOPE_DEBUG_ROOT_SYMBOL));
}

bool read_own_memory(std::uint64_t address, void* out, std::size_t size_bytes) {
  iovec local{out, size_bytes};
  iovec remote{reinterpret_cast<void*>(address), size_bytes};
  return ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size_bytes);
}

// Follows the transition chain of out.record; the caller decides through the seqlock whether it belongs.
void read_chain(FiberSnapshot& out) {
  out.transitions.clear();
  out.transition_addresses.clear();
  out.chain_error.clear();
  std::uint64_t next = out.record.transition_top;
  std::set<std::uint64_t> visited;
  while (next != 0) {
    if (out.transitions.size() >= kMaxTransitions || !visited.insert(next).second) {
      out.chain_error =
          "transition chain longer than " + std::to_string(kMaxTransitions) + " or cyclic at " + hex(next);
      return;
    }
    auto transition = read_own<fiberscope_transition>(next);
    if (!transition) {
      out.chain_error = "unreadable transition record at " + hex(next);
      return;
    }
    out.transitions.push_back(*transition);
    out.transition_addresses.push_back(next);
    next = transition->prev;
  }
}

ReadOutcome read_fiber(std::uint64_t address, FiberSnapshot& out, int attempts) {
  for (int attempt = 0; attempt < attempts; ++attempt) {
    out = FiberSnapshot{};
    out.address = address;
    if (!read_own_memory(address, &out.record, sizeof out.record)) return ReadOutcome::unreadable;
    const std::uint64_t seq_before = out.record.seq;
    if (seq_before % 2 != 0) continue;
    // The chain lives on stacks that change under us; it belongs to this record only if the seqlock holds
    // across the whole read.
    read_chain(out);
    auto seq_after = read_own<std::uint64_t>(address + offsetof(fiberscope_fiber, seq));
    if (!seq_after) return ReadOutcome::unreadable;
    if (*seq_after == seq_before) return ReadOutcome::consistent;
  }
  return ReadOutcome::torn;
}

std::vector<FiberRead> read_all_fibers(std::uint64_t first_chunk, std::string& error) {
  std::vector<FiberRead> reads;
  std::set<std::uint64_t> visited;
  for (std::uint64_t chunk_address = first_chunk; chunk_address != 0;) {
    if (visited.size() >= kMaxChunks || !visited.insert(chunk_address).second) {
      error = "chunk list cyclic or longer than " + std::to_string(kMaxChunks) + " at " + hex(chunk_address);
      break;
    }
    auto chunk = read_own<fiberscope_chunk>(chunk_address);
    if (!chunk) {
      error = "unreadable chunk at " + hex(chunk_address);
      break;
    }
    if (chunk->record_size != sizeof(fiberscope_fiber) || chunk->used > chunk->capacity) {
      error = "chunk at " + hex(chunk_address) + " has record_size " + std::to_string(chunk->record_size) +
              ", used " + std::to_string(chunk->used) + " of " + std::to_string(chunk->capacity);
      break;
    }
    const std::uint64_t first_record = chunk_address + sizeof(fiberscope_chunk);
    std::vector<fiberscope_fiber> before(chunk->used), after(chunk->used);
    const std::size_t bytes = before.size() * sizeof(fiberscope_fiber);
    if (!read_own_memory(first_record, before.data(), bytes)) {
      error = "unreadable records of chunk " + hex(chunk_address);
      break;
    }
    const std::size_t first_read = reads.size();
    for (std::size_t slot = 0; slot < before.size(); ++slot) {
      FiberRead read;
      read.snapshot.address = first_record + slot * sizeof(fiberscope_fiber);
      read.snapshot.record = before[slot];
      if (before[slot].seq % 2 == 0) read_chain(read.snapshot);
      reads.push_back(std::move(read));
    }
    const bool second_copy = read_own_memory(first_record, after.data(), bytes);
    for (std::size_t slot = 0; slot < before.size(); ++slot) {
      FiberRead& read = reads[first_read + slot];
      if (second_copy && before[slot].seq % 2 == 0 && before[slot].seq == after[slot].seq) {
        read.outcome = ReadOutcome::consistent;
      } else {
        read.outcome = read_fiber(read.snapshot.address, read.snapshot);
      }
    }
    chunk_address = chunk->next;
  }
  return reads;
}

std::vector<std::uint64_t> record_addresses(std::uint64_t first_chunk, std::uint32_t expected_record_size,
                                            std::string& error) {
  std::vector<std::uint64_t> addresses;
  std::set<std::uint64_t> visited;
  for (std::uint64_t chunk_address = first_chunk; chunk_address != 0;) {
    if (visited.size() >= kMaxChunks || !visited.insert(chunk_address).second) {
      error = "chunk list cyclic or longer than " + std::to_string(kMaxChunks) + " at " + hex(chunk_address);
      break;
    }
    auto chunk = read_own<fiberscope_chunk>(chunk_address);
    if (!chunk) {
      error = "unreadable chunk at " + hex(chunk_address);
      break;
    }
    if (chunk->record_size != expected_record_size || chunk->used > chunk->capacity) {
      error = "chunk at " + hex(chunk_address) + " has record_size " + std::to_string(chunk->record_size) +
              ", used " + std::to_string(chunk->used) + " of " + std::to_string(chunk->capacity);
      break;
    }
    for (std::uint32_t slot = 0; slot < chunk->used; ++slot)
      addresses.push_back(chunk_address + sizeof(fiberscope_chunk) + std::uint64_t{slot} * chunk->record_size);
    chunk_address = chunk->next;
  }
  return addresses;
}

std::vector<std::optional<fiberscope_worker>> read_workers(const fiberscope_debug_root& root, std::string& error) {
  std::vector<std::optional<fiberscope_worker>> workers;
  for (std::uint64_t address : record_addresses(root.worker_chunks, sizeof(fiberscope_worker), error)) {
    std::optional<fiberscope_worker> consistent;
    for (int attempt = 0; attempt < 8 && !consistent; ++attempt) {
      auto worker = read_own<fiberscope_worker>(address);
      auto seq_after = read_own<std::uint64_t>(address);
      if (!worker || !seq_after) {
        error = "unreadable worker record at " + hex(address);
        return workers;
      }
      if (worker->seq % 2 == 0 && worker->seq == *seq_after) consistent = worker;
    }
    workers.push_back(consistent);
  }
  return workers;
}

std::vector<FiberSnapshot> consistent_fibers() {
  std::vector<FiberSnapshot> fibers;
  const auto* root_address = find_debug_root();
  if (root_address == nullptr) return fibers;
  auto root = read_own<fiberscope_debug_root>(reinterpret_cast<std::uint64_t>(root_address));
  if (!root) return fibers;
  std::string error;
  for (auto& read : read_all_fibers(root->fiber_chunks, error))
    if (read.outcome == ReadOutcome::consistent) fibers.push_back(std::move(read.snapshot));
  return fibers;
}

std::optional<FiberSnapshot> fiber_snapshot(std::uint64_t id) {
  for (auto& snapshot : consistent_fibers())
    if (snapshot.record.id == id) return snapshot;
  return std::nullopt;
}

std::optional<FiberSnapshot> own_fiber_snapshot() { return fiber_snapshot(fiber::current()); }

std::vector<std::string> implausibilities(const FiberSnapshot& snapshot, const fiberscope_debug_root& root,
                                          std::size_t worker_count) {
  std::vector<std::string> problems;
  const fiberscope_fiber& fiber = snapshot.record;
  auto problem = [&](std::string text) {
    problems.push_back("fiber " + std::to_string(fiber.id) + " at " + hex(snapshot.address) + " [" +
                       fiberscope_fiber_state_name(fiber.state) + "]: " + std::move(text));
  };
  if (fiber.state >= FIBERSCOPE_FIBER_STATE_COUNT) problem("state " + std::to_string(fiber.state) + " out of range");
  if (fiber.wait_reason >= FIBERSCOPE_WAIT_REASON_COUNT)
    problem("wait_reason " + std::to_string(fiber.wait_reason) + " out of range");
  if (fiber.state == FIBERSCOPE_FIBER_FREE) return problems;  // never used: nothing else is meaningful
  if (fiber.id == 0) problem("used record with id 0");
  if (fiber.id > root.fibers_created)
    problem("id above fibers_created " + std::to_string(root.fibers_created));
  if (fiber.state == FIBERSCOPE_FIBER_WAITING) {
    if (fiber.wait_reason == FIBERSCOPE_WAIT_NONE) problem("waiting without a wait reason");
    const bool waits_on_object = fiber.wait_reason >= FIBERSCOPE_WAIT_CHAN_SEND &&
                                 fiber.wait_reason <= FIBERSCOPE_WAIT_WAITGROUP;
    if (waits_on_object && fiber.wait_object == 0)
      problem(std::string("waits on ") + fiberscope_wait_reason_name(fiber.wait_reason) + " with no wait_object");
  }
  if (fiber.state == FIBERSCOPE_FIBER_DEAD) return problems;  // the rest describes a live fiber

  if (!(fiber.stack_lo < fiber.stack_hi))
    problem("stack [" + hex(fiber.stack_lo) + ", " + hex(fiber.stack_hi) + ") empty");
  if (fiber.stack_lo - fiber.guard_lo != root.guard_bytes)
    problem("guard [" + hex(fiber.guard_lo) + ", " + hex(fiber.stack_lo) + ") is not guard_bytes " +
            std::to_string(root.guard_bytes));
  if (fiber.stack_lo % 4096 != 0 || fiber.stack_hi % 4096 != 0) problem("stack bounds not page aligned");
  if (fiber.worker < -1 || fiber.worker >= static_cast<std::int64_t>(worker_count))
    problem("worker index " + std::to_string(fiber.worker) + " with " + std::to_string(worker_count) + " workers");
  const bool on_worker = fiber.state == FIBERSCOPE_FIBER_RUNNING || fiber.state == FIBERSCOPE_FIBER_SYSCALL ||
                         fiber.state == FIBERSCOPE_FIBER_FOREIGN;
  if (on_worker && fiber.worker < 0) problem("on a worker but worker is " + std::to_string(fiber.worker));

  const bool parked = fiber.state == FIBERSCOPE_FIBER_RUNNABLE || fiber.state == FIBERSCOPE_FIBER_WAITING;
  if (parked) {
    if (!sp_in_stack(fiber.context.sp, fiber))
      problem("parked with context.sp " + hex(fiber.context.sp) + " outside stack (" + hex(fiber.stack_lo) + ", " +
              hex(fiber.stack_hi) + "]");
    if (fiber.context.pc == 0) problem("parked with context.pc 0");
  }
  const bool in_syscall = fiber.state == FIBERSCOPE_FIBER_SYSCALL || fiber.state == FIBERSCOPE_FIBER_FOREIGN;
  if (in_syscall) {
    if (!in_stack(fiber.syscall_sp, fiber))
      problem("syscall_sp " + hex(fiber.syscall_sp) + " outside stack [" + hex(fiber.stack_lo) + ", " +
              hex(fiber.stack_hi) + ")");
    if (fiber.syscall_pc == 0) problem("in a syscall with syscall_pc 0");
  }

  // The transition chain: innermost first, depths counting down to 1, foreign calls at odd depths and callbacks
  // at even ones, and the fiber-stack side of each switch deeper (lower) than the one outside it.
  if (!snapshot.chain_error.empty()) problem(snapshot.chain_error);
  if (snapshot.transitions.size() != fiber.foreign_depth)
    problem("transition chain has " + std::to_string(snapshot.transitions.size()) + " records, foreign_depth is " +
            std::to_string(fiber.foreign_depth));
  if ((fiber.state == FIBERSCOPE_FIBER_FOREIGN) != (fiber.foreign_depth % 2 == 1))
    problem("foreign_depth " + std::to_string(fiber.foreign_depth) + " disagrees with the state");
  std::uint64_t inner_fiber_sp = 0;
  for (std::size_t i = 0; i < snapshot.transitions.size(); ++i) {
    const fiberscope_transition& transition = snapshot.transitions[i];
    const std::uint32_t expected_depth = static_cast<std::uint32_t>(snapshot.transitions.size() - i);
    const std::string where = "transition " + std::to_string(expected_depth) + " at " +
                              hex(snapshot.transition_addresses[i]) + ": ";
    if (transition.depth != expected_depth) problem(where + "depth " + std::to_string(transition.depth));
    const std::uint32_t expected_kind =
        expected_depth % 2 == 1 ? FIBERSCOPE_TRANSITION_FOREIGN_CALL : FIBERSCOPE_TRANSITION_CALLBACK;
    if (transition.kind != expected_kind) {
      problem(where + "kind " + std::to_string(transition.kind));
      continue;
    }
    const std::uint64_t fiber_side_sp =
        expected_kind == FIBERSCOPE_TRANSITION_FOREIGN_CALL ? transition.from_sp : transition.to_sp;
    if (!sp_in_stack(fiber_side_sp, fiber))
      problem(where + "fiber-side sp " + hex(fiber_side_sp) + " off the fiber stack");
    if (inner_fiber_sp != 0 && fiber_side_sp < inner_fiber_sp)
      problem(where + "fiber-side sp " + hex(fiber_side_sp) + " below the inner switch's " + hex(inner_fiber_sp));
    inner_fiber_sp = fiber_side_sp;
    if (expected_kind == FIBERSCOPE_TRANSITION_CALLBACK) {
      if (!in_stack(snapshot.transition_addresses[i], fiber)) problem(where + "callback record not on the fiber stack");
      if (!in_stack(transition.saved_syscall_sp, fiber))
        problem(where + "saved_syscall_sp " + hex(transition.saved_syscall_sp) + " off the fiber stack");
    } else if (in_stack(snapshot.transition_addresses[i], fiber)) {
      problem(where + "foreign-call record on the fiber stack, not the system stack");
    }
  }
  if (!snapshot.transitions.empty() && snapshot.transitions.back().prev != 0)
    problem("outermost transition has prev " + hex(snapshot.transitions.back().prev));
  if (fiber.state == FIBERSCOPE_FIBER_FOREIGN && !snapshot.transitions.empty() &&
      fiber.syscall_sp < snapshot.transitions.front().from_sp)
    problem("syscall_sp " + hex(fiber.syscall_sp) + " below the foreign call's trampoline sp " +
            hex(snapshot.transitions.front().from_sp));
  return problems;
}

std::vector<std::string> implausibilities(const fiberscope_worker& worker, std::size_t position,
                                          const fiberscope_debug_root& root) {
  std::vector<std::string> problems;
  auto problem = [&](std::string text) {
    problems.push_back("worker " + std::to_string(position) + ": " + std::move(text));
  };
  if (worker.index != position) problem("index " + std::to_string(worker.index));
  if (worker.state >= FIBERSCOPE_WORKER_STATE_COUNT) problem("state " + std::to_string(worker.state));
  if (worker.state == FIBERSCOPE_WORKER_UNUSED) return problems;
  if (worker.tid <= 0 && worker.state != FIBERSCOPE_WORKER_EXITED)
    problem("started with tid " + std::to_string(worker.tid));
  if (worker.tid > 0 && !(worker.sysstack_lo < worker.sysstack_hi)) problem("empty system stack");
  if (worker.processor < -1 || worker.processor >= static_cast<std::int64_t>(root.processors))
    problem("processor " + std::to_string(worker.processor) + " of " + std::to_string(root.processors));
  if (worker.state == FIBERSCOPE_WORKER_RUNNING && (worker.current_fiber == 0 || worker.current_record == 0))
    problem("running without a current fiber");
  return problems;
}

}  // namespace runtime_test
