#include "fibers/capture_plan.h"

#include <algorithm>

#include "fiberscope/debug_abi.h"

namespace fiberscope::fibers {
namespace {

using target::AddressRange;
using target::Mapping;
using target::RemoteAddress;
using target::ThreadState;

// [sp - red zone, hi), keeping the innermost max_bytes.
AddressRange used_part(std::uint64_t sp, std::uint64_t lo, std::uint64_t hi, const PlanOptions& options,
                       std::uint64_t red_zone_bytes) {
  std::uint64_t start = sp >= lo + red_zone_bytes ? sp - red_zone_bytes : lo;
  start = std::max(start, lo);
  std::uint64_t end = hi;
  if (end > start && end - start > options.max_stack_bytes) end = start + options.max_stack_bytes;
  return AddressRange{RemoteAddress(start), RemoteAddress(end)};
}

AddressRange used_part(std::uint64_t sp, std::uint64_t lo, std::uint64_t hi, const PlanOptions& options) {
  return used_part(sp, lo, hi, options, options.red_zone_bytes);
}

// Runnable and waiting fibers sit where a switch left them: their lowest sp was saved by a call (the switch, or a
// transition's trampoline), so the System V red zone below it holds nothing live.
bool is_parked(FiberState state) { return state == FiberState::runnable || state == FiberState::waiting; }

const Mapping* mapping_containing(const std::vector<Mapping>& mappings, std::uint64_t address) {
  for (const Mapping& mapping : mappings)
    if (mapping.range.contains(RemoteAddress(address))) return &mapping;
  return nullptr;
}

}  // namespace

Result<RemoteAddress> locate_debug_root(const binary::Symbolizer& symbols) {
  auto address = symbols.symbol_address(FIBERSCOPE_DEBUG_ROOT_SYMBOL);
  if (!address) return fail("no fiber table found (not built on fiberscope runtime?)");
  return *address;
}

std::uint64_t expected_copy_bytes(const target::Memory& running, RemoteAddress root,
                                  std::uint64_t used_stack_bytes) {
  // The estimate only sizes a reservation, but a hostile root must not make it huge: capped like the copy itself.
  constexpr std::uint64_t kMaxFibers = 1u << 20;
  constexpr std::uint64_t kMaxEstimateBytes = 1ull << 30;
  auto abi = running.read_object<fiberscope_debug_root>(root);
  if (!abi || abi->magic != FIBERSCOPE_DEBUG_MAGIC || abi->abi_version != FIBERSCOPE_DEBUG_ABI_VERSION) return 0;
  const std::uint64_t fibers = std::min<std::uint64_t>(abi->fibers_live, kMaxFibers);
  const std::uint64_t per_fiber = std::min<std::uint64_t>(abi->fiber_record_size, 4096) +
                                  std::min<std::uint64_t>(used_stack_bytes, 1u << 20);
  return std::min(fibers * per_fiber, kMaxEstimateBytes);
}

const ThreadState* thread_of(const WorkerRecord& worker, const std::vector<ThreadState>& threads) {
  if (worker.tid <= 0) return nullptr;
  for (const ThreadState& thread : threads)
    if (thread.tid == worker.tid && thread.registers) return &thread;
  return nullptr;
}

std::optional<std::uint64_t> lowest_known_sp(const FiberRecord& fiber, const FiberTable& table,
                                             const std::vector<ThreadState>& threads) {
  std::optional<std::uint64_t> lowest;
  auto consider = [&](std::uint64_t sp) {
    if (fiber.stack.contains(RemoteAddress(sp)) || sp == fiber.stack.end.value())
      lowest = lowest ? std::min(*lowest, sp) : sp;
  };
  switch (fiber.state) {
    case FiberState::runnable:
    case FiberState::waiting: consider(fiber.context.sp); break;
    case FiberState::running:
    case FiberState::syscall:
    case FiberState::foreign:
      if (const WorkerRecord* worker = table.worker_of(fiber))
        if (const ThreadState* thread = thread_of(*worker, threads)) consider(thread->registers->sp());
      if (fiber.syscall_sp) consider(fiber.syscall_sp);
      break;
    case FiberState::free:
    case FiberState::dead: break;
  }
  // A parked fiber inside a callback still has its outer frames above the transitions.
  for (const Transition& transition : fiber.transitions) {
    consider(transition.from_sp);
    consider(transition.to_sp);
    consider(transition.address.value());
  }
  return lowest;
}

std::optional<AddressRange> parked_stack_part(std::uint64_t sp, AddressRange stack, const PlanOptions& options) {
  if (stack.empty() || sp < stack.start.value() || sp > stack.end.value()) return std::nullopt;
  return used_part(sp, stack.start.value(), stack.end.value(), options, 0);
}

StackPrecopyPlan plan_stack_precopy(const StackScan& scan, const PlanOptions& options) {
  // A stack claiming more than read_fiber_table accepts is refused there; no point copying it.
  const std::uint64_t max_stack_span = ReadOptions{}.max_stack_bytes;
  StackPrecopyPlan plan;
  plan.table_ranges = scan.table_ranges;
  for (const StackView& view : scan.fibers) {
    if (view.state == FiberState::free || view.state == FiberState::dead) continue;
    ++plan.live_fibers;
    if ((view.sequence & 1) || !is_parked(view.state) || view.has_transitions) continue;
    if (view.stack.end <= view.stack.start || view.stack.size_bytes() > max_stack_span) continue;
    if (auto used = parked_stack_part(view.context_sp, view.stack, options); used && !used->empty())
      plan.stacks.push_back(ParkedStack{view.record, view.sequence, *used});
  }
  std::sort(plan.stacks.begin(), plan.stacks.end(),
            [](const ParkedStack& a, const ParkedStack& b) { return a.record < b.record; });
  return plan;
}

bool precopy_still_valid(const ParkedStack& before, const StackView& now, const PlanOptions& options) {
  if (now.record != before.record || now.sequence != before.sequence || (now.sequence & 1)) return false;
  if (!is_parked(now.state) || now.has_transitions) return false;
  auto used = parked_stack_part(now.context_sp, now.stack, options);
  return used && used->start == before.used.start && used->end == before.used.end;
}

std::vector<AddressRange> plan_regions(const FiberTable* table, const std::vector<ThreadState>& threads,
                                       const std::vector<Mapping>& mappings, const PlanOptions& options) {
  std::vector<AddressRange> ranges;
  ranges.reserve(threads.size() + (table ? table->fibers.size() + table->chunk_ranges.size() + 1 : 0));
  // Every thread's own stack from its sp to the end of the mapping holding it (a worker running a fiber has its
  // sp in the fiber stack: the same rule copies the fiber's used part).
  for (const ThreadState& thread : threads) {
    if (!thread.registers) continue;
    const std::uint64_t sp = thread.registers->sp();
    if (const Mapping* mapping = mapping_containing(mappings, sp))
      ranges.push_back(used_part(sp, mapping->range.start.value(), mapping->range.end.value(), options));
  }
  if (!table) return ranges;

  // A Go table has no root: its g and m structures are all in chunk_ranges.
  if (const std::uint64_t root = table->root_address.value())
    ranges.push_back(AddressRange{RemoteAddress(root), RemoteAddress(root + sizeof(fiberscope_debug_root))});
  for (const AddressRange& chunk : table->chunk_ranges)
    ranges.push_back(AddressRange{chunk.start, chunk.start + std::min(chunk.size_bytes(), options.max_chunk_bytes)});
  for (const FiberRecord& fiber : table->fibers) {
    if (!fiber.is_live()) continue;
    if (auto sp = lowest_known_sp(fiber, *table, threads)) {
      ranges.push_back(used_part(*sp, fiber.stack.start.value(), fiber.stack.end.value(), options,
                                 is_parked(fiber.state) ? 0 : options.red_zone_bytes));
    } else {
      // Nothing says where the used part starts: take the top of the stack, where the outer frames are.
      const std::uint64_t hi = fiber.stack.end.value();
      const std::uint64_t size = std::min(fiber.stack.size_bytes(), options.max_stack_bytes);
      ranges.push_back(AddressRange{RemoteAddress(hi - size), RemoteAddress(hi)});
    }
  }
  // A worker in a foreign call runs C on its system stack, and transition records may sit there: copy from the
  // lowest of the thread's sp and the records down there. Only fibers with transitions can put records there, so
  // the workers' records are matched against those alone (not every worker against every fiber: this runs
  // inside the pause, with up to millions of fibers).
  std::vector<const FiberRecord*> with_transitions;
  for (const FiberRecord& fiber : table->fibers)
    if (!fiber.transitions.empty()) with_transitions.push_back(&fiber);
  for (const WorkerRecord& worker : table->workers) {
    if (worker.system_stack.empty() || worker.current_record.is_null()) continue;
    std::optional<std::uint64_t> lowest;
    if (const ThreadState* thread = thread_of(worker, threads)) {
      const std::uint64_t sp = thread->registers->sp();
      if (worker.system_stack.contains(RemoteAddress(sp))) lowest = sp;
    }
    for (const FiberRecord* fiber : with_transitions) {
      if (fiber->address != worker.current_record) continue;
      for (const Transition& transition : fiber->transitions)
        for (std::uint64_t sp : {transition.from_sp, transition.to_sp, transition.address.value()})
          if (worker.system_stack.contains(RemoteAddress(sp))) lowest = lowest ? std::min(*lowest, sp) : sp;
    }
    if (lowest)
      ranges.push_back(used_part(*lowest, worker.system_stack.start.value(), worker.system_stack.end.value(),
                                 options));
  }
  return ranges;
}

}  // namespace fiberscope::fibers
