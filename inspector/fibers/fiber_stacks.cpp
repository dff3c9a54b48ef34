#include "fibers/fiber_stacks.h"

#include "base/hex.h"
#include "fibers/capture_plan.h"

namespace fiberscope::fibers {
namespace {

using target::Reg;
using target::Registers;
using target::RemoteAddress;

Registers from_context(const SavedContext& context) {
  Registers registers;
  registers.set(Reg::rip, context.pc);
  registers.set(Reg::rsp, context.sp);
  registers.set(Reg::rbp, context.rbp);
  registers.set(Reg::rbx, context.rbx);
  registers.set(Reg::r12, context.r12);
  registers.set(Reg::r13, context.r13);
  registers.set(Reg::r14, context.r14);
  registers.set(Reg::r15, context.r15);
  return registers;
}

std::string range_text(const target::AddressRange& range) {
  return "[" + range.start.to_string() + ", " + range.end.to_string() + ")";
}

}  // namespace

Result<FiberStart> starting_registers(const FiberRecord& fiber, const FiberTable& table,
                                      const std::vector<target::ThreadState>& threads) {
  const std::string who = "fiber " + std::to_string(fiber.id);
  switch (fiber.state) {
    case FiberState::free:
    case FiberState::dead: return fail(who, " is ", state_name(fiber.state), ": it has no stack to walk");
    case FiberState::runnable:
    case FiberState::waiting: {
      // sp == stack_hi is legal only for an empty stack; anything outside would send the unwinder elsewhere.
      if (!fiber.stack.contains(RemoteAddress(fiber.context.sp)))
        return fail(who, ": saved sp ", hex(fiber.context.sp), " is outside its stack ", range_text(fiber.stack));
      FiberStart start{from_context(fiber.context), FiberStart::Source::saved_context, 0, {}};
      if (const WorkerRecord* worker = table.worker_of(fiber)) start.tid = worker->tid;
      return start;
    }
    case FiberState::running:
    case FiberState::syscall:
    case FiberState::foreign: break;
  }
  const WorkerRecord* worker = table.worker_of(fiber);
  const target::ThreadState* thread = worker ? thread_of(*worker, threads) : nullptr;
  if (thread) {
    FiberStart start{*thread->registers, FiberStart::Source::thread, thread->tid, {}};
    if (worker->current_record != fiber.address)
      start.note = "worker " + std::to_string(worker->index) + " (thread " + std::to_string(worker->tid) +
                   ") names record " + worker->current_record.to_string() + ", not this fiber's " +
                   fiber.address.to_string();
    return start;
  }
  const std::string missing = worker ? "thread " + std::to_string(worker->tid) + " of worker " +
                                           std::to_string(worker->index) + " has no captured registers"
                                     : "no worker record for it";
  if (fiber.state != FiberState::running && fiber.syscall_sp != 0) {
    if (!fiber.stack.contains(RemoteAddress(fiber.syscall_sp)))
      return fail(who, ": ", missing, ", and syscall_sp ", hex(fiber.syscall_sp), " is outside its stack ",
                  range_text(fiber.stack));
    Registers registers;
    registers.set(Reg::rip, fiber.syscall_pc);
    registers.set(Reg::rsp, fiber.syscall_sp);
    // The saved frame pointer helps frame-pointer code (-O0) find its CFA; only if it is plausible.
    if (fiber.context.rbp >= fiber.syscall_sp && fiber.stack.contains(RemoteAddress(fiber.context.rbp)))
      registers.set(Reg::rbp, fiber.context.rbp);
    return FiberStart{registers, FiberStart::Source::syscall_frame, worker ? worker->tid : 0,
                      missing + "; walking from the saved syscall frame (inner frames not shown)"};
  }
  return fail(who, " is ", state_name(fiber.state), " but ", missing);
}

FiberStack unwind_fiber(unwind::Unwinder& unwinder, const FiberRecord& fiber, const FiberTable& table,
                        const std::vector<target::ThreadState>& threads, const target::Memory& memory,
                        const FiberUnwindOptions& options) {
  FiberStack result;
  auto start = starting_registers(fiber, table, threads);
  if (!start) {
    result.stop_message = start.error().message;
    return result;
  }
  if (!start->note.empty()) result.notes.push_back(start->note);

  const WorkerRecord* worker = table.worker_of(fiber);
  std::vector<unwind::StackRegion> stacks{{fiber.stack, unwind::StackKind::fiber, fiber.id}};
  if (worker && !worker->system_stack.empty())
    stacks.push_back({worker->system_stack, unwind::StackKind::system, static_cast<std::uint64_t>(worker->tid)});
  // A thread stopped in a signal handler (a core written on a crash) starts there, then crosses its signal frame.
  if (worker && !worker->signal_stack.empty())
    stacks.push_back({worker->signal_stack, unwind::StackKind::system, static_cast<std::uint64_t>(worker->tid)});

  // A walk from the syscall frame starts outside every transition: there is nothing to stitch.
  std::size_t next_transition = start->source == FiberStart::Source::syscall_frame ? fiber.transitions.size() : 0;
  // Saved contexts, syscall frames and transition records all hold return addresses, not exact pcs.
  bool first_pc_is_return_address = start->source != FiberStart::Source::thread;
  Registers registers = start->registers;
  for (;;) {
    if (result.frames.size() >= options.max_depth) {
      result.truncated = true;
      result.stop_message = "stopped at the depth limit of " + std::to_string(options.max_depth) + " frames";
      return result;
    }
    unwind::UnwindResult piece = unwinder.unwind(
        registers, memory, {.max_depth = options.max_depth - result.frames.size(), .stacks = stacks});
    if (!piece.frames.empty()) piece.frames.front().pc_is_return_address |= first_pc_is_return_address;
    first_pc_is_return_address = true;

    // A piece belongs to the stack it starts on; where its frames move to the other stack, the CFI followed a
    // trampoline by itself and the transition record must agree.
    const unwind::StackKind piece_stack =
        piece.frames.empty() ? unwind::StackKind::unknown : piece.frames.front().stack_kind;
    std::size_t cut = piece.frames.size();
    const Transition* by_code = next_transition < fiber.transitions.size() &&
                                        !fiber.transitions[next_transition].switch_function.empty()
                                    ? &fiber.transitions[next_transition]
                                    : nullptr;
    for (std::size_t k = by_code ? 0 : 1; k < piece.frames.size(); ++k) {
      const bool switches = by_code ? by_code->switch_function.contains(piece.frames[k].lookup_pc())
                                    : piece.frames[k].stack_kind != piece_stack;
      if (switches) {
        cut = k;
        break;
      }
    }
    if (by_code && cut == piece.frames.size() && !piece.frames.empty()) {
      // The walk never reached the switching code: the records describe frames this walk does not have.
      result.notes.push_back("the walk did not reach the stack switch at " +
                             by_code->switch_function.start.to_string() + " that transition " +
                             std::to_string(next_transition + 1) + " of " +
                             std::to_string(fiber.transitions.size()) + " describes");
      next_transition = fiber.transitions.size();
    }
    if (next_transition >= fiber.transitions.size()) {
      // No switch left to explain: keep everything the unwinder found.
      if (result.frames.empty()) {
        result.frames = std::move(piece.frames);  // the common case (no transitions): no copy per fiber
      } else {
        result.frames.insert(result.frames.end(), piece.frames.begin(), piece.frames.end());
      }
      result.complete = piece.complete();
      result.truncated = piece.stop_reason == unwind::StopReason::max_depth;
      result.stop_message = piece.stop_message;
      return result;
    }
    result.frames.insert(result.frames.end(), piece.frames.begin(), piece.frames.begin() + cut);

    const Transition& transition = fiber.transitions[next_transition++];
    const char* kind = transition.kind == Transition::Kind::callback ? "callback" : "foreign-call";
    const target::AddressRange& record_stack =
        transition.kind == Transition::Kind::callback ? fiber.stack
                                                      : (worker ? worker->system_stack : target::AddressRange{});
    if (!record_stack.contains(transition.address))
      result.notes.push_back(std::string(kind) + " transition at " + transition.address.to_string() +
                             " is not on the stack it switched to " + range_text(record_stack));
    if (!by_code && cut < piece.frames.size()) {
      const unwind::Frame& crossed = piece.frames[cut];
      if (crossed.pc.value() != transition.from_pc || crossed.sp.value() != transition.from_sp)
        result.notes.push_back("CFI crossed the " + std::string(kind) + " switch to pc " + crossed.pc.to_string() +
                               " sp " + crossed.sp.to_string() + " but its transition record says pc " +
                               hex(transition.from_pc) + " sp " + hex(transition.from_sp) + "; using the record");
    }
    if (by_code) {
      // The switching frame goes on on the other stack: same pc and recovered registers, another sp.
      const unwind::Frame& switching = piece.frames[cut];
      registers = switching.registers;
      registers.set(Reg::rip, switching.pc.value());
      registers.set(Reg::rsp, transition.switch_sp);
      continue;
    }
    registers = Registers();
    registers.set(Reg::rip, transition.from_pc);
    registers.set(Reg::rsp, transition.from_sp);
    registers.set(Reg::rbp, transition.from_fp);
  }
}

}  // namespace fiberscope::fibers
