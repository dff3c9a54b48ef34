#include "checks/checks.h"

#include <algorithm>
#include <map>

#include "base/hex.h"
#include "binary/go_stackmap.h"
#include "checks/location_text.h"
#include "fiberscope/debug_abi.h"
#include "fibers/fiber_stacks.h"
#include "unwind/unwinder.h"

namespace fiberscope::checks {
namespace {

using fibers::FiberRecord;
using fibers::FiberState;
using fibers::Transition;
using target::AddressRange;
using target::Reg;
using target::RemoteAddress;

const char* const kExplanation7978 =
    "The saved syscall frame is not the frame the fiber will resume in: a stack walk or collector starting from "
    "it reads dead or foreign stack memory (the bug class of Go issue 7978, syscall frame saved inside a callback).";
const char* const kExplanation17785 =
    "A reader that starts from the saved pc X believes this variable is live, but at the real resume pc Y the "
    "compiler no longer keeps it: its slot holds whatever was put there since (the bug class of Go issue 17785, "
    "undead arguments of a foreign call).";

std::string range_text(const AddressRange& range) {
  return "[" + range.start.to_string() + ", " + range.end.to_string() + ")";
}

// The function that contains `lookup_pc` (the concrete one, not an inlined call), by name and start address.
struct FunctionIdentity {
  std::string name;
  std::optional<std::uint64_t> start;
};

FunctionIdentity function_at(binary::Symbolizer& symbols, std::uint64_t lookup_pc) {
  const binary::Symbolization& where = symbols.symbolize(lookup_pc);
  for (auto it = where.frames.rbegin(); it != where.frames.rend(); ++it) {
    if (it->inlined || it->source == binary::SymbolizedFrame::Source::none) continue;
    return {it->function, it->offset <= lookup_pc ? std::optional(lookup_pc - it->offset) : std::nullopt};
  }
  return {};
}

bool same_function(const FunctionIdentity& a, const FunctionIdentity& b) {
  if (a.start && b.start) return *a.start == *b.start;
  return !a.name.empty() && a.name == b.name;
}

// The pc at which to ask DWARF whether a variable is live across the call that `return_address` returns from.
// Scopes are found with return_address - 1 (the call instruction, as debuggers do), but liveness *across* the call
// is what matters to a reader of a suspended frame, and DWARF states it at the return address itself: gcc ends an
// argument's location list right after the call that consumes it, so at the call instruction a dead-after-the-call
// argument still looks live. The return address is used whenever it is still inside the same function (a call to
// a noreturn function can end the function's code right at the call).
std::uint64_t liveness_pc(binary::Symbolizer& symbols, std::uint64_t return_address) {
  if (return_address == 0) return 0;
  return same_function(function_at(symbols, return_address), function_at(symbols, return_address - 1))
             ? return_address
             : return_address - 1;
}

// Whether a location expression names a place this frame keeps the value in. A location made only of
// DW_OP_entry_value (DWARF 5) or DW_OP_GNU_entry_value says "the value the caller passed": the frame itself no
// longer holds it, so for liveness it is dead.
bool held_by_frame(const std::vector<std::byte>& location) {
  if (location.empty()) return false;
  const auto op = static_cast<unsigned char>(location.front());
  return op != 0xa3 /* DW_OP_entry_value */ && op != 0xf3 /* DW_OP_GNU_entry_value */;
}

CodePoint code_point(binary::Symbolizer& symbols, std::uint64_t return_address) {
  CodePoint point{return_address, {}, {}, 0};
  if (return_address == 0) return point;
  const binary::Symbolization& where = symbols.symbolize(return_address - 1);
  if (!where.frames.empty()) {
    point.function = where.frames.front().function;
    point.file = where.frames.front().file;
    point.line = where.frames.front().line;
  }
  return point;
}

// Everything one fiber's checks share.
struct FiberContext {
  const CheckInput& input;
  const CheckOptions& options;
  unwind::Unwinder& unwinder;
  const FiberRecord& fiber;
  std::vector<unwind::StackRegion> stacks;
  CheckResult& result;
};

Finding new_finding(const FiberContext& context, FindingKind kind) {
  Finding finding;
  finding.kind = kind;
  finding.fiber_id = context.fiber.id;
  finding.fiber_name = context.fiber.name;
  finding.syscall_pc = context.fiber.syscall_pc;
  finding.syscall_sp = context.fiber.syscall_sp;
  finding.stack = context.fiber.stack;
  finding.explanation = kind == FindingKind::invalid_syscall_frame ? kExplanation7978 : kExplanation17785;
  return finding;
}

Finding frame_finding(const FiberContext& context, SyscallFrameRule rule, std::string summary) {
  Finding finding = new_finding(context, FindingKind::invalid_syscall_frame);
  finding.rule = rule;
  finding.summary = std::move(summary);
  finding.x = code_point(context.input.symbols, context.fiber.syscall_pc);
  finding.frame = finding.x->function;
  return finding;
}

// Where the fiber really is: the deepest live sp on its own stack and, in a foreign call, the frame that made it.
struct RealPosition {
  std::optional<std::uint64_t> deepest_live_sp;
  const Transition* foreign_call = nullptr;  // innermost transition, when it is a foreign call
  std::string unknown_because;               // why deepest_live_sp is unknown
};

const target::ThreadState* thread_of(const FiberContext& context) {
  const fibers::WorkerRecord* worker = context.input.table.worker_of(context.fiber);
  if (!worker || worker->tid == 0) return nullptr;
  for (const target::ThreadState& thread : context.input.snapshot.threads)
    if (thread.tid == worker->tid && thread.registers) return &thread;
  return nullptr;
}

RealPosition real_position(const FiberContext& context) {
  RealPosition position;
  const FiberRecord& fiber = context.fiber;
  if (fiber.state == FiberState::foreign && !fiber.transitions.empty() &&
      fiber.transitions.front().kind == Transition::Kind::foreign_call) {
    // The trampoline's record names the fiber-side sp at the return address Y: everything below it is C's.
    position.foreign_call = &fiber.transitions.front();
    position.deepest_live_sp = position.foreign_call->from_sp;
    return position;
  }
  // A syscall (or a foreign call before its trampoline linked the record) runs on the fiber stack itself: the
  // thread's own sp is the deepest live point.
  const target::ThreadState* thread = thread_of(context);
  if (!thread) {
    position.unknown_because = "no thread registers for the fiber's worker";
    return position;
  }
  // A thread stopped inside the runtime's exit check (a core left by its abort) has runtime frames below the
  // fiber's own, or runs them on another stack (Go's throw switches to g0, its crash to the signal stack): the
  // fiber's deepest live frame is the check's caller, whose sp is the check function's CFA — exactly the "caller
  // sp" Go's exitsyscall compares with syscallsp.
  const std::string& exit_check = context.input.table.syscall_exit_check.empty()
                                      ? std::string(FIBERSCOPE_EXITSYSCALL_SYMBOL)
                                      : context.input.table.syscall_exit_check;
  fibers::FiberStack stack =
      fibers::unwind_fiber(context.unwinder, fiber, context.input.table, context.input.snapshot.threads,
                           *context.input.snapshot.memory, {.max_depth = context.options.max_unwind_depth});
  const auto exit_check_cfa = [&](const std::vector<unwind::Frame>& frames) -> std::optional<std::uint64_t> {
    for (const unwind::Frame& frame : frames)
      if (!frame.cfa.is_null() && fiber.stack.contains(frame.cfa) &&
          function_at(context.input.symbols, frame.lookup_pc().value()).name == exit_check)
        return frame.cfa.value();
    return std::nullopt;
  };
  if (auto cfa = exit_check_cfa(stack.frames)) {
    position.deepest_live_sp = cfa;
    return position;
  }
  // Go's throw runs on g0 after systemstack saved the goroutine's own registers in its context: the exit check's
  // frame is found from there.
  if (fiber.context.pc != 0 && fiber.stack.contains(RemoteAddress(fiber.context.sp))) {
    target::Registers saved;
    saved.set(Reg::rip, fiber.context.pc);
    saved.set(Reg::rsp, fiber.context.sp);
    saved.set(Reg::rbp, fiber.context.rbp);
    const unwind::UnwindResult walk = context.unwinder.unwind(
        saved, *context.input.snapshot.memory,
        {.max_depth = context.options.max_unwind_depth, .stacks = context.stacks});
    if (auto cfa = exit_check_cfa(walk.frames)) {
      position.deepest_live_sp = cfa;
      return position;
    }
  }
  const std::uint64_t sp = thread->registers->sp();
  if (!fiber.stack.contains(RemoteAddress(sp))) {
    position.unknown_because = "its thread (" + std::to_string(thread->tid) + ") is at sp " + hex(sp) +
                               ", outside the fiber's stack, with no foreign-call record";
    return position;
  }
  position.deepest_live_sp = sp;
  return position;
}

// The real stack: from the thread when it runs the fiber, else (foreign calls) from the trampoline's record.
struct RealStack {
  std::vector<unwind::Frame> frames;
  bool complete = false;
  std::string stop_message;
};

RealStack real_stack(const FiberContext& context, const RealPosition& position) {
  RealStack real;
  auto start = fibers::starting_registers(context.fiber, context.input.table, context.input.snapshot.threads);
  if (start && start->source == fibers::FiberStart::Source::thread) {
    fibers::FiberStack stack = fibers::unwind_fiber(context.unwinder, context.fiber, context.input.table,
                                                    context.input.snapshot.threads, *context.input.snapshot.memory,
                                                    {.max_depth = context.options.max_unwind_depth});
    real.frames = std::move(stack.frames);
    real.complete = stack.complete;
    real.stop_message = stack.stop_message;
    return real;
  }
  if (!position.foreign_call) {
    real.stop_message = start ? "no thread runs the fiber" : start.error().message;
    return real;
  }
  // The record gives pc, sp and frame pointer at Y; the CFI row of Y - 1 does the rest.
  target::Registers registers;
  registers.set(Reg::rip, position.foreign_call->from_pc - 1);
  registers.set(Reg::rsp, position.foreign_call->from_sp);
  registers.set(Reg::rbp, position.foreign_call->from_fp);
  unwind::UnwindResult unwound = context.unwinder.unwind(
      registers, *context.input.snapshot.memory,
      {.max_depth = context.options.max_unwind_depth, .stacks = context.stacks});
  if (!unwound.frames.empty()) {
    unwound.frames.front().pc = RemoteAddress(position.foreign_call->from_pc);
    unwound.frames.front().pc_is_return_address = true;
  }
  real.frames = std::move(unwound.frames);
  real.complete = unwound.complete();
  real.stop_message = unwound.stop_message;
  return real;
}

// The walk a reader starting from the saved syscall frame makes: (syscall_pc, syscall_sp) plus the saved
// callee-saved registers, looked up at syscall_pc - 1 since syscall_pc is a return address.
unwind::UnwindResult unwind_from_syscall_frame(const FiberContext& context) {
  const FiberRecord& fiber = context.fiber;
  target::Registers registers;
  registers.set(Reg::rip, fiber.syscall_pc - 1);
  registers.set(Reg::rsp, fiber.syscall_sp);
  registers.set(Reg::rbp, fiber.context.rbp);
  registers.set(Reg::rbx, fiber.context.rbx);
  registers.set(Reg::r12, fiber.context.r12);
  registers.set(Reg::r13, fiber.context.r13);
  registers.set(Reg::r14, fiber.context.r14);
  registers.set(Reg::r15, fiber.context.r15);
  unwind::UnwindResult unwound = context.unwinder.unwind(
      registers, *context.input.snapshot.memory,
      {.max_depth = context.options.max_unwind_depth, .stacks = context.stacks});
  if (!unwound.frames.empty()) {
    unwound.frames.front().pc = RemoteAddress(fiber.syscall_pc);
    unwound.frames.front().pc_is_return_address = true;
  }
  return unwound;
}

// The frame of the real stack that owns `sp` on the fiber's own stack, as an index into `frames`.
std::optional<std::size_t> frame_owning(const std::vector<unwind::Frame>& frames, const AddressRange& stack,
                                        std::uint64_t sp) {
  for (std::size_t k = 0; k < frames.size(); ++k) {
    const unwind::Frame& frame = frames[k];
    // A switch frame (fiber_callback) has its sp on the fiber stack and its CFA on the system stack: its
    // [sp, CFA) spans unrelated memory and owns nothing on the fiber stack.
    if (frame.cfa.is_null() || !stack.contains(frame.sp) || frame.cfa > stack.end) continue;
    if (frame.sp.value() <= sp && sp < frame.cfa.value()) return k;
  }
  return std::nullopt;
}

// Rule 3: the saved frame must be the real frame — same function, same CFA, and a walk that agrees with the real
// one up to the fiber's bottom frame. Returns the finding, or nothing when the frame is sound.
std::optional<Finding> check_names_real_frame(const FiberContext& context, const RealStack& real,
                                              std::optional<std::size_t>& owner_index) {
  const FiberRecord& fiber = context.fiber;
  binary::Symbolizer& symbols = context.input.symbols;
  owner_index = frame_owning(real.frames, fiber.stack, fiber.syscall_sp);
  if (!owner_index) {
    Finding finding = frame_finding(context, SyscallFrameRule::names_no_frame,
                                    "syscall_sp " + hex(fiber.syscall_sp) +
                                        " lies in no frame of the fiber's real stack");
    finding.details.push_back("the real stack has " + std::to_string(real.frames.size()) + " frames" +
                              (real.complete ? "" : " (" + real.stop_message + ")"));
    return finding;
  }
  const unwind::Frame& owner = real.frames[*owner_index];
  const FunctionIdentity saved_function = function_at(symbols, fiber.syscall_pc - 1);
  const FunctionIdentity owner_function = function_at(symbols, owner.lookup_pc().value());
  const unwind::UnwindResult from_x = unwind_from_syscall_frame(context);

  auto finding_with = [&](std::string summary) {
    Finding finding = frame_finding(context, SyscallFrameRule::names_no_frame, std::move(summary));
    finding.y = code_point(symbols, owner.pc_is_return_address ? owner.pc.value() : owner.pc.value() + 1);
    finding.y->pc = owner.pc.value();
    finding.cfa_at_y = owner.cfa.value();
    if (!from_x.frames.empty() && !from_x.frames.front().cfa.is_null())
      finding.cfa_at_x = from_x.frames.front().cfa.value();
    finding.details.push_back("the frame at syscall_sp belongs to " +
                              (owner_function.name.empty() ? std::string("an unknown function") : owner_function.name) +
                              " (sp " + owner.sp.to_string() + ", CFA " + owner.cfa.to_string() + ")");
    return finding;
  };

  if (!saved_function.name.empty() || saved_function.start) {
    if (!same_function(saved_function, owner_function))
      return finding_with("syscall_pc " + hex(fiber.syscall_pc) + " is in " +
                          (saved_function.name.empty() ? "??" : saved_function.name) +
                          ", not in the function that owns the frame at syscall_sp");
  } else {
    return finding_with("syscall_pc " + hex(fiber.syscall_pc) + " is in no known function");
  }
  if (from_x.frames.empty() || from_x.frames.front().cfa.is_null()) {
    Finding finding = finding_with("the saved syscall frame cannot be unwound: " + from_x.stop_message);
    return finding;
  }
  if (from_x.frames.front().cfa != owner.cfa)
    return finding_with("the CFA from the saved frame is " + from_x.frames.front().cfa.to_string() +
                        ", the real frame's is " + owner.cfa.to_string());

  // The callers must be the same frames. The walk from X crosses stack switches by CFI alone, the real one by
  // the runtime's records: where X's walk stops at such a switch, the records took over, not a disagreement.
  for (std::size_t j = 1; j < from_x.frames.size(); ++j) {
    const std::size_t k = *owner_index + j;
    if (k >= real.frames.size()) {
      if (real.complete)
        return finding_with("the walk from the saved frame goes on past the real stack's bottom frame, to pc " +
                            from_x.frames[j].pc.to_string());
      break;  // the real walk stopped early: nothing more to compare with
    }
    if (from_x.frames[j].pc != real.frames[k].pc || from_x.frames[j].sp != real.frames[k].sp)
      return finding_with("caller " + std::to_string(j) + " differs: pc " + from_x.frames[j].pc.to_string() + " sp " +
                          from_x.frames[j].sp.to_string() + " from the saved frame, pc " +
                          real.frames[k].pc.to_string() + " sp " + real.frames[k].sp.to_string() + " really");
  }
  if (!from_x.complete()) {
    const std::size_t k = *owner_index + from_x.frames.size() - 1;
    const bool at_switch = k + 1 < real.frames.size() && real.frames[k + 1].stack_kind != real.frames[k].stack_kind;
    const bool real_also_stopped = k + 1 >= real.frames.size() && !real.complete;
    if (!at_switch && !real_also_stopped)
      return finding_with("the walk from the saved frame does not reach the fiber's bottom frame: " +
                          from_x.stop_message);
  }
  return std::nullopt;
}

// Variables of the frame that made the foreign call, by name, from the concrete function's DWARF frame.
const binary::DwarfFrame* concrete_frame(const std::vector<binary::DwarfFrame>& frames) {
  for (auto it = frames.rbegin(); it != frames.rend(); ++it)
    if (!it->inlined) return &*it;
  return frames.empty() ? nullptr : &frames.back();
}

bool is_pointer_type(const std::string& type_name) {
  return !type_name.empty() && (type_name.back() == '*' || type_name.find("(*)") != std::string::npos);
}

// A pointer value into a popped part of this fiber's stack, or into the stack of a finished fiber that no live
// fiber has taken over; "" when it points nowhere suspicious.
std::string pointer_problem(const FiberContext& context, std::uint64_t value, std::uint64_t deepest_live_sp) {
  const FiberRecord& fiber = context.fiber;
  const AddressRange popped{fiber.stack.start, RemoteAddress(deepest_live_sp)};
  if (popped.contains(RemoteAddress(value)))
    return "points into the popped part " + range_text(popped) + " of the fiber's own stack";
  const auto& all = context.input.table.fibers;
  const bool live_owner = std::any_of(all.begin(), all.end(), [&](const FiberRecord& other) {
    return other.is_live() && other.stack.contains(RemoteAddress(value));
  });
  if (live_owner) return {};
  for (const FiberRecord& other : all)
    if (other.state == FiberState::dead && other.stack.contains(RemoteAddress(value)))
      return "points into the stack " + range_text(other.stack) + " of finished fiber " + std::to_string(other.id) +
             (other.name.empty() ? "" : " \"" + other.name + "\"");
  return {};
}

// The frame that made the foreign call, with the registers its callee (the trampoline) saved. A frame stitched from
// a transition record knows only pc, sp and rbp; the trampoline's own CFI step also recovers the callee-saved
// registers it pushed, which is where the arguments usually are.
unwind::Frame foreign_call_frame(const FiberContext& context, const RealStack& real, std::size_t owner_index) {
  unwind::Frame frame = real.frames[owner_index];
  if (owner_index > 0) {
    auto stepped = context.unwinder.step(real.frames[owner_index - 1], *context.input.snapshot.memory);
    if (stepped && stepped->caller && stepped->caller->pc == frame.pc && stepped->caller->sp == frame.sp) {
      for (unsigned number = 0; number < target::kRegisterCount; ++number)
        if (auto value = stepped->caller->registers.get(number); value && !frame.registers.get(number))
          frame.registers.set(number, *value);
    }
  }
  return frame;
}

// The 17785 check by DWARF locations (runtime_lib): the frame that made the innermost foreign call (X = syscall_pc,
// Y = the real resume pc).
void check_live_by_dwarf_locations(const FiberContext& context, const RealStack& real, std::size_t owner_index,
                                   std::uint64_t deepest_live_sp) {
  const FiberRecord& fiber = context.fiber;
  binary::Symbolizer& symbols = context.input.symbols;
  const unwind::Frame frame = foreign_call_frame(context, real, owner_index);
  const std::uint64_t x = fiber.syscall_pc, y = frame.pc.value();
  const std::uint64_t live_x = liveness_pc(symbols, x), live_y = liveness_pc(symbols, y);
  auto at_x = symbols.dwarf_frames(live_x);
  auto at_y = symbols.dwarf_frames(live_y);
  if (!at_x || !at_y) {
    context.result.errors.push_back("fiber " + std::to_string(fiber.id) + ": no DWARF for the foreign-call frame: " +
                                    (!at_x ? at_x.error().message : at_y.error().message));
    return;
  }
  const binary::DwarfFrame* frame_x = concrete_frame(*at_x);
  const binary::DwarfFrame* frame_y = concrete_frame(*at_y);
  if (!frame_x || !frame_y) return;  // no DWARF covers the frame: nothing to compare (stripped code)

  // What a reader starting from X sees: X's locations evaluated against the real frame's registers and memory.
  const unwind::Frame* caller = owner_index + 1 < real.frames.size() ? &real.frames[owner_index + 1] : nullptr;
  std::optional<binary::CallerState> caller_state;
  if (caller) caller_state = binary::CallerState{caller->pc.value(), &caller->registers,
                                                 caller->cfa.is_null() ? std::nullopt
                                                                       : std::optional(caller->cfa.value())};
  auto values = symbols.variables({.pc = live_x,
                                   .registers = &frame.registers,
                                   .memory = context.input.snapshot.memory.get(),
                                   .cfa = frame.cfa.is_null() ? std::nullopt : std::optional(frame.cfa.value()),
                                   .caller = caller_state});
  const binary::VariableValue* (*find_value)(const std::vector<binary::FrameVariables>&, const std::string&) =
      [](const std::vector<binary::FrameVariables>& all, const std::string& name) -> const binary::VariableValue* {
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (it->inlined) continue;
      for (const binary::VariableValue& value : it->variables)
        if (value.name == name) return &value;
    }
    return nullptr;
  };

  const CodePoint point_x = code_point(symbols, x);
  const CodePoint point_y = code_point(symbols, y);
  for (const binary::DwarfVariable& variable : frame_x->variables) {
    if (!held_by_frame(variable.location)) continue;  // not live at X: a reader from X would not look at it
    const binary::DwarfVariable* at_y_variable = nullptr;
    for (const binary::DwarfVariable& candidate : frame_y->variables)
      if (candidate.name == variable.name) at_y_variable = &candidate;
    const bool dead_at_y = !at_y_variable || !held_by_frame(at_y_variable->location);
    const bool moved = !dead_at_y && at_y_variable->location != variable.location;

    VariableEvidence evidence;
    evidence.name = variable.name;
    evidence.type_name = variable.type_name;
    evidence.is_parameter = variable.is_parameter;
    evidence.location_at_x = location_text(variable.location);
    evidence.location_at_y = at_y_variable ? location_text(at_y_variable->location) : "not in scope";
    if (values) {
      if (const binary::VariableValue* value = find_value(*values, variable.name)) {
        evidence.value_at_x = value->value;
        evidence.value_status = value->status;
      }
    } else {
      evidence.value_status = values.error().message;
    }
    // Pointer-valued live variables are checked even when X and Y agree: the pointee may be gone.
    if (variable.is_scalar && is_pointer_type(variable.type_name) && evidence.value_status.empty()) {
      const std::string& text = evidence.value_at_x;
      std::uint64_t pointer = 0;
      if (text.rfind("0x", 0) == 0) pointer = std::strtoull(text.c_str() + 2, nullptr, 16);
      if (pointer != 0) {
        evidence.pointer_target = pointer;
        evidence.pointer_problem = pointer_problem(context, pointer, deepest_live_sp);
      }
    }
    if (!dead_at_y && !moved && evidence.pointer_problem.empty()) continue;

    Finding finding = new_finding(context, FindingKind::stale_live_argument);
    finding.frame = point_x.function;
    finding.x = point_x;
    finding.y = point_y;
    finding.cfa_at_x = frame.cfa.value();
    finding.cfa_at_y = frame.cfa.value();
    finding.deepest_live_sp = deepest_live_sp;
    std::string what = variable.is_parameter ? "argument " : "local ";
    if (dead_at_y)
      finding.summary = what + "'" + variable.name + "' is live at X " + hex(x) + " (" + evidence.location_at_x +
                        ") but dead at the real resume pc Y " + hex(y);
    else if (moved)
      finding.summary = what + "'" + variable.name + "' lives in different places at X " + hex(x) + " (" +
                        evidence.location_at_x + ") and Y " + hex(y) + " (" + evidence.location_at_y + ")";
    else
      finding.summary = what + "'" + variable.name + "' = " + evidence.value_at_x + " " + evidence.pointer_problem;
    if (!dead_at_y && !moved) {
      finding.explanation = "A live pointer argument of the foreign call points into stack memory that no live "
                            "frame owns: whoever reads through it reads freed stack (the dangling side of Go "
                            "issues 7978 and 17785).";
    }
    finding.variable = std::move(evidence);
    context.result.findings.push_back(std::move(finding));
  }
}

// The names DWARF gives the words of a frame at `pc`: every variable whose location there is a stack address.
std::map<std::uint64_t, const binary::VariableValue*> named_stack_words(
    const std::vector<binary::FrameVariables>& all) {
  std::map<std::uint64_t, const binary::VariableValue*> names;
  for (const binary::FrameVariables& frame : all) {
    if (frame.inlined) continue;
    for (const binary::VariableValue& value : frame.variables)
      if (value.location && value.location->kind == binary::Location::Kind::memory)
        names.emplace(value.location->address, &value);
  }
  return names;
}

// The 17785 check by the runtime's stack maps (Go): every pointer word of the foreign-call frame that the map in
// force at X calls live but the one at Y calls dead. Go's collector and stack copier trust the map of the pc they
// start from: from X they scan (and adjust, when the stack moves) a word the frame stopped maintaining at Y.
void check_live_by_stack_maps(const FiberContext& context, const RealStack& real, std::size_t owner_index,
                              std::uint64_t deepest_live_sp) {
  const FiberRecord& fiber = context.fiber;
  binary::Symbolizer& symbols = context.input.symbols;
  const unwind::Frame frame = foreign_call_frame(context, real, owner_index);
  const std::uint64_t x = fiber.syscall_pc, y = frame.pc.value();
  const auto error = [&](const std::string& message) {
    context.result.errors.push_back("fiber " + std::to_string(fiber.id) + ": " + message);
  };
  const binary::Module* module = symbols.module_at(x);
  if (!module || !module->range.contains(RemoteAddress(y))) return error("X and Y are not in one module");
  std::string table_error;
  const binary::GoPclntab* table = symbols.go_pclntab(*module, &table_error);
  if (!table) return error("no stack maps for the foreign-call frame: " + table_error);
  // Return addresses: the maps in force are those of the call instructions (runtime.getStackMap's targetpc - 1).
  const std::uint64_t file_x = x - module->load_bias - 1, file_y = y - module->load_bias - 1;
  auto function = table->function_at(file_x);
  if (!function) return error(function.error().message);
  if (!*function || file_y < (*function)->entry || file_y >= (*function)->end) return;  // rule 3's business
  auto at_x = binary::go_live_pointer_slots(*table, **function, file_x);
  auto at_y = binary::go_live_pointer_slots(*table, **function, file_y);
  if (!at_x || !at_y) return error((!at_x ? at_x.error() : at_y.error()).message);
  if (frame.cfa.is_null()) return error("no CFA for the foreign-call frame");
  // amd64 (runtime/traceback.go): argp is the CFA; varp sits below the return address and the saved frame pointer.
  const std::uint64_t cfa = frame.cfa.value(), varp = cfa - 16;

  auto values = symbols.variables({.pc = liveness_pc(symbols, x),
                                   .registers = &frame.registers,
                                   .memory = context.input.snapshot.memory.get(),
                                   .cfa = cfa,
                                   .caller = std::nullopt});
  const auto names = values ? named_stack_words(*values) : std::map<std::uint64_t, const binary::VariableValue*>{};
  const CodePoint point_x = code_point(symbols, x);
  const CodePoint point_y = code_point(symbols, y);
  struct Area {
    const std::vector<bool>& live_x;
    const std::vector<bool>& live_y;
    std::uint64_t base;
    bool arguments;
  };
  const Area areas[] = {{at_x->args, at_y->args, cfa, true},
                        {at_x->locals, at_y->locals, varp - 8 * at_x->locals.size(), false}};
  for (const Area& area : areas) {
    for (std::size_t word = 0; word < area.live_x.size(); ++word) {
      if (!area.live_x[word] || (word < area.live_y.size() && area.live_y[word])) continue;
      const std::uint64_t address = area.base + 8 * word;
      VariableEvidence evidence;
      const auto named = names.find(address);
      if (named != names.end()) {
        evidence.name = named->second->name;
        evidence.type_name = named->second->type_name;
        evidence.is_parameter = named->second->is_parameter;
      } else {
        evidence.name = (area.arguments ? "argument word " : "local word ") + std::to_string(word);
        evidence.is_parameter = area.arguments;
      }
      const std::string place = (area.arguments ? "args" : "locals") + std::string(" word ") +
                                std::to_string(word) + " at " + hex(address);
      evidence.location_at_x = "stack map: live pointer, " + place;
      evidence.location_at_y = "stack map: dead";
      if (auto value = context.input.snapshot.memory->read_u64(RemoteAddress(address))) {
        evidence.value_at_x = hex(*value);
        evidence.pointer_target = *value;
        if (*value != 0) evidence.pointer_problem = pointer_problem(context, *value, deepest_live_sp);
      } else {
        evidence.value_status = "unreadable at " + hex(address);
      }
      Finding finding = new_finding(context, FindingKind::stale_live_argument);
      finding.frame = point_x.function;
      finding.x = point_x;
      finding.y = point_y;
      finding.cfa_at_x = cfa;
      finding.cfa_at_y = cfa;
      finding.deepest_live_sp = deepest_live_sp;
      finding.summary = std::string(evidence.is_parameter ? "argument '" : "local '") + evidence.name +
                        "' is a live pointer at X " + hex(x) + " but dead at the real resume pc Y " + hex(y) +
                        " (" + place + ")";
      finding.variable = std::move(evidence);
      context.result.findings.push_back(std::move(finding));
    }
  }
}

// The 17785 check with the liveness the runtime's own readers trust.
void check_live_arguments(const FiberContext& context, const RealStack& real, std::size_t owner_index,
                          std::uint64_t deepest_live_sp) {
  switch (context.input.table.frame_liveness) {
    case fibers::FiberTable::FrameLiveness::dwarf_locations:
      return check_live_by_dwarf_locations(context, real, owner_index, deepest_live_sp);
    case fibers::FiberTable::FrameLiveness::go_stack_maps:
      return check_live_by_stack_maps(context, real, owner_index, deepest_live_sp);
  }
}

void check_fiber(FiberContext& context) {
  const FiberRecord& fiber = context.fiber;
  CheckResult& result = context.result;
  ++result.fibers_checked;

  // Rule 1 (Go's entersyscall_bad).
  if (!fiber.stack.contains(RemoteAddress(fiber.syscall_sp))) {
    Finding finding = frame_finding(context, SyscallFrameRule::outside_stack,
                                    "syscall_sp " + hex(fiber.syscall_sp) + " is outside the fiber's stack " +
                                        range_text(fiber.stack));
    result.findings.push_back(std::move(finding));
    return;
  }
  if (!fiber.transition_error.empty()) {
    result.errors.push_back("fiber " + std::to_string(fiber.id) + ": transition chain unusable (" +
                            fiber.transition_error + "): syscall frame not checked against it");
    return;
  }

  // Rule 2: below the deepest live frame means popped (Go's "syscall frame is no longer valid").
  const RealPosition position = real_position(context);
  if (!position.deepest_live_sp) {
    // Caught between a stack switch and its record, or no registers (a core without the thread): not judged.
    result.transients.push_back({fiber.id, "deepest live frame unknown: " + position.unknown_because});
    return;
  }
  if (fiber.syscall_sp < *position.deepest_live_sp) {
    Finding finding = frame_finding(context, SyscallFrameRule::below_live_frame,
                                    "syscall_sp " + hex(fiber.syscall_sp) + " is below the deepest live frame (sp " +
                                        hex(*position.deepest_live_sp) + "): the frames in between were popped");
    finding.deepest_live_sp = position.deepest_live_sp;
    finding.popped = AddressRange{RemoteAddress(fiber.syscall_sp), RemoteAddress(*position.deepest_live_sp)};
    if (position.foreign_call) {
      finding.y = code_point(context.input.symbols, position.foreign_call->from_pc);
      finding.details.push_back("the foreign call's trampoline record at " +
                                position.foreign_call->address.to_string() + " resumes at pc " +
                                hex(position.foreign_call->from_pc) + " sp " + hex(position.foreign_call->from_sp));
    }
    result.findings.push_back(std::move(finding));
    return;
  }

  // Rule 3, against the real stack.
  const RealStack real = real_stack(context, position);
  if (real.frames.empty()) {
    result.transients.push_back({fiber.id, "real stack unknown: " + real.stop_message});
    return;
  }
  // A running target (--no-stop) is read while its threads move: a real stack that breaks off (a return address
  // in no module, memory rewritten under the walk) is a torn read, not evidence against the saved frame.
  if (!real.complete && !context.input.snapshot.target_was_stopped) {
    result.transients.push_back({fiber.id, "real stack torn (--no-stop): " + real.stop_message});
    return;
  }
  std::optional<std::size_t> owner_index;
  if (auto finding = check_names_real_frame(context, real, owner_index)) {
    finding->deepest_live_sp = position.deepest_live_sp;
    result.findings.push_back(std::move(*finding));
    return;
  }

  // Stale live arguments: only a foreign call has a second pc Y for the same frame.
  if (position.foreign_call && owner_index) {
    const unwind::Frame& frame = real.frames[*owner_index];
    if (frame.pc.value() != position.foreign_call->from_pc || frame.sp.value() != position.foreign_call->from_sp) {
      // The frame at syscall_sp is sound but is not the one the trampoline returns to.
      Finding finding = frame_finding(context, SyscallFrameRule::names_no_frame,
                                      "the saved frame (sp " + hex(fiber.syscall_sp) +
                                          ") is not the frame that made the foreign call (pc " +
                                          hex(position.foreign_call->from_pc) + " sp " +
                                          hex(position.foreign_call->from_sp) + ")");
      finding.deepest_live_sp = position.deepest_live_sp;
      finding.y = code_point(context.input.symbols, position.foreign_call->from_pc);
      result.findings.push_back(std::move(finding));
      return;
    }
    check_live_arguments(context, real, *owner_index, *position.deepest_live_sp);
  }
}

}  // namespace

std::string_view finding_kind_name(FindingKind kind) {
  switch (kind) {
    case FindingKind::invalid_syscall_frame: return "invalid-syscall-frame";
    case FindingKind::stale_live_argument: return "stale-live-argument";
  }
  return "?";
}

std::string_view rule_name(SyscallFrameRule rule) {
  switch (rule) {
    case SyscallFrameRule::outside_stack: return "outside-stack";
    case SyscallFrameRule::below_live_frame: return "below-live-frame";
    case SyscallFrameRule::names_no_frame: return "names-no-frame";
  }
  return "?";
}

std::string Finding::identity() const {
  std::string key = std::to_string(fiber_id) + "/" + std::string(finding_kind_name(kind));
  if (rule) key += "/" + std::to_string(static_cast<int>(*rule));
  key += "/" + frame;
  if (variable) key += "/" + variable->name;
  return key;
}

CheckResult run_checks(const CheckInput& input, const CheckOptions& options) {
  CheckResult result;
  unwind::Unwinder unwinder(input.cfi);
  if (!input.snapshot.memory) {
    result.errors.push_back("the snapshot has no memory: nothing to check");
    return result;
  }
  for (const FiberRecord& fiber : input.table.fibers) {
    if (fiber.state != FiberState::syscall && fiber.state != FiberState::foreign) continue;
    if (fiber.integrity != fibers::Integrity::consistent) {
      // A record read mid-update may pair an old syscall_sp with a new state: judging it would be a false alarm.
      result.transients.push_back({fiber.id, "record " + std::string(fibers::integrity_name(fiber.integrity))});
      continue;
    }
    FiberContext context{input, options, unwinder, fiber, {{fiber.stack, unwind::StackKind::fiber, fiber.id}}, result};
    if (const fibers::WorkerRecord* worker = input.table.worker_of(fiber); worker && !worker->system_stack.empty())
      context.stacks.push_back(
          {worker->system_stack, unwind::StackKind::system, static_cast<std::uint64_t>(worker->tid)});
    check_fiber(context);
  }
  return result;
}

std::vector<std::string> evidence_lines(const Finding& finding) {
  std::vector<std::string> lines;
  lines.push_back("syscall_pc " + hex(finding.syscall_pc) + ", syscall_sp " + hex(finding.syscall_sp) +
                  ", stack " + range_text(finding.stack));
  if (finding.deepest_live_sp) lines.push_back("deepest live frame sp " + hex(*finding.deepest_live_sp));
  if (finding.popped)
    lines.push_back("popped region " + range_text(*finding.popped) + " (" +
                    std::to_string(finding.popped->size_bytes()) + " bytes)");
  auto point = [](const char* label, const CodePoint& p) {
    std::string text = std::string(label) + " " + hex(p.pc) + " in " + (p.function.empty() ? "??" : p.function);
    if (!p.file.empty()) text += " at " + p.file + ":" + std::to_string(p.line);
    return text;
  };
  if (finding.x) lines.push_back(point("X (saved syscall_pc)", *finding.x));
  if (finding.y) lines.push_back(point("Y (real resume pc)", *finding.y));
  if (finding.cfa_at_x || finding.cfa_at_y)
    lines.push_back("CFA at X " + (finding.cfa_at_x ? hex(*finding.cfa_at_x) : std::string("?")) + ", at Y " +
                    (finding.cfa_at_y ? hex(*finding.cfa_at_y) : std::string("?")));
  if (finding.variable) {
    const VariableEvidence& v = *finding.variable;
    lines.push_back((v.is_parameter ? "argument " : "local ") + v.name + " (" + v.type_name + "): at X " +
                    v.location_at_x + ", at Y " + v.location_at_y);
    lines.push_back("a reader at X sees " +
                    (v.value_status.empty() ? v.value_at_x : "nothing (" + v.value_status + ")"));
    if (!v.pointer_problem.empty()) lines.push_back("pointer " + v.pointer_problem);
  }
  for (const std::string& detail : finding.details) lines.push_back(detail);
  return lines;
}

}  // namespace fiberscope::checks
