#include "unwind/unwinder.h"

#include <array>
#include <cstring>

#include "base/hex.h"
#include "binary/dwarf_expression.h"
#include "unwind/cfi_program.h"

namespace fiberscope::unwind {
namespace {

using target::Reg;
using target::RemoteAddress;

constexpr unsigned kRsp = static_cast<unsigned>(Reg::rsp);
constexpr unsigned kRip = static_cast<unsigned>(Reg::rip);
constexpr unsigned kRbp = static_cast<unsigned>(Reg::rbp);

// Registers a callee must preserve (System V psABI 3.2.1): with no CFI rule they keep their value in the caller;
// the others are unknown there.
constexpr bool is_callee_saved(unsigned reg) {
  return reg == static_cast<unsigned>(Reg::rbx) || reg == kRbp || (reg >= 12 && reg <= 15);
}

// glibc's and musl's __restore_rt: `mov $15, %rax; syscall` (rt_sigreturn). The kernel makes a signal handler
// return there, so the handler's return address points at its first byte.
constexpr std::array<std::uint8_t, 9> kRestoreRtCode = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
constexpr std::uint64_t kSyscallOffsetInRestoreRt = 7;

// struct rt_sigframe (arch/x86/include/asm/sigframe.h) after the handler's `ret` popped pretcode: rsp points at
// the ucontext, whose uc_mcontext (struct sigcontext) starts after uc_flags, uc_link and uc_stack.
constexpr std::uint64_t kUcontextMcontextOffset = 40;
// struct sigcontext's first 17 words, in order: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip.
constexpr std::array<Reg, 17> kSigcontextOrder = {Reg::r8,  Reg::r9,  Reg::r10, Reg::r11, Reg::r12, Reg::r13,
                                                  Reg::r14, Reg::r15, Reg::rdi, Reg::rsi, Reg::rbp, Reg::rbx,
                                                  Reg::rdx, Reg::rax, Reg::rcx, Reg::rsp, Reg::rip};

std::unexpected<StepError> stop(StopReason reason, std::string message) {
  return std::unexpected(StepError{reason, std::move(message)});
}

// Evaluates a CFI expression; the result is an address (DW_CFA_expression, def_cfa_expression) or a value
// (val_expression): in both cases the top of the stack.
std::expected<std::uint64_t, StepError> evaluate_cfi_expression(std::span<const std::byte> expression,
                                                                const target::Registers& registers,
                                                                const target::Memory& memory,
                                                                std::optional<std::uint64_t> cfa,
                                                                std::uint64_t load_bias, const char* what) {
  binary::ExpressionContext context;
  context.registers = &registers;
  context.memory = &memory;
  context.cfa = cfa;
  context.load_bias = load_bias;
  if (cfa) context.initial_stack.push_back(*cfa);  // DWARF 5 6.4.2.3: the CFA is pushed first
  auto location = binary::evaluate(expression, context);
  if (!location) return stop(StopReason::bad_cfi, std::string(what) + ": " + location.error().message);
  if (location->kind == binary::Location::Kind::memory) return location->address;
  if (location->kind == binary::Location::Kind::value) return location->value;
  return stop(StopReason::bad_cfi, std::string(what) + ": expression does not compute an address");
}

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::end_of_stack: return "end of stack";
    case StopReason::no_cfi: return "no CFI";
    case StopReason::bad_cfi: return "bad CFI";
    case StopReason::missing_register: return "missing register";
    case StopReason::read_failed: return "read failed";
    case StopReason::cfa_outside_stack: return "CFA outside the stack";
    case StopReason::cfa_not_increasing: return "CFA not increasing";
    case StopReason::loop: return "loop";
    case StopReason::max_depth: return "max depth";
  }
  return "unknown";
}

Unwinder::CachedRow Unwinder::compute(std::uint64_t lookup_pc) const {
  CachedRow cached;
  const ModuleCfi* module = modules_.module_at(lookup_pc);
  cached.module = module;
  if (!module) {
    cached.message = "no CFI for pc " + hex(lookup_pc) + " (in no known module)";
    return cached;
  }
  const std::uint64_t file_pc = lookup_pc - module->load_bias;
  // A caller frame's lookup pc is its return address - 1: a return address at a trampoline's first byte (a signal
  // handler's) looks up the byte before it, which belongs to some other function's CFI.
  std::array<std::byte, kRestoreRtCode.size()> code{};
  cached.next_is_signal_trampoline = module->read_code(lookup_pc + 1, code) &&
                                     std::memcmp(code.data(), kRestoreRtCode.data(), code.size()) == 0;
  std::optional<binary::GoFunction> go_function;
  if (module->go_table) {
    if (auto found = module->go_table->function_at(file_pc); found && *found) go_function = **found;
  }
  const auto with_go_flags = [&](CachedRow& row) -> CachedRow& {
    if (go_function) row.go_flag = go_function->flag;
    return row;
  };
  std::optional<Error> first_error;
  // .eh_frame first: it is what the process itself unwinds with; .debug_frame covers what it lacks.
  for (const auto* section : {module->eh_frame ? &*module->eh_frame : nullptr,
                              module->debug_frame ? &*module->debug_frame : nullptr}) {
    if (!section) continue;
    auto fde = section->find_fde(file_pc);
    if (!fde) {
      if (!first_error) first_error = fde.error();
      continue;
    }
    if (!*fde) continue;
    auto row = compute_row(*section, **fde, file_pc);
    if (!row) {
      if (!first_error) first_error = row.error();
      continue;
    }
    cached.status = CachedRow::Status::found;
    cached.row = *row;
    cached.method = section->format() == CfiFormat::eh_frame ? FrameMethod::eh_frame : FrameMethod::debug_frame;
    return with_go_flags(cached);
  }
  if (go_function) {
    // What Go's own traceback does (runtime.gentraceback): the pcsp table gives the bytes the function has pushed
    // at this pc; the return address sits just above them. A Go function with a frame saved the caller's rbp just
    // below the return address (its prologue: SUBQ $n, SP; MOVQ BP, n-8(SP)); assembly may do anything else.
    auto frame_size = module->go_table->frame_size(*go_function, file_pc);
    if (frame_size && *frame_size >= 0) {
      cached.status = CachedRow::Status::found;
      cached.method = FrameMethod::go_pclntab;
      cached.row.start_address = file_pc;
      cached.row.end_address = file_pc + 1;
      cached.row.cfa = {CfaRule::Kind::register_offset, static_cast<std::uint16_t>(kRsp), *frame_size + 8, {}};
      cached.row.registers[kRip] = {RegisterRule::Kind::offset, 0, -8, {}};
      if (*frame_size > 0 && !(go_function->flag & binary::kGoFuncFlagAsm))
        cached.row.registers[kRbp] = {RegisterRule::Kind::offset, 0, -16, {}};
      return with_go_flags(cached);
    }
    if (!frame_size && !first_error) first_error = frame_size.error();
  }
  if (first_error) {
    cached.status = CachedRow::Status::error;
    cached.message = "bad CFI for pc " + hex(lookup_pc) + " in " + module->name + ": " + first_error->message;
  } else {
    cached.message = "no CFI for pc " + hex(lookup_pc) + " in " + module->name;
  }
  return with_go_flags(cached);
}

const Unwinder::CachedRow& Unwinder::lookup(std::uint64_t lookup_pc) {
  if (auto it = cache_.find(lookup_pc); it != cache_.end()) {
    ++hits_;
    return it->second;
  }
  ++misses_;
  return cache_.emplace(lookup_pc, compute(lookup_pc)).first->second;
}

Result<const CfiRow*> Unwinder::row_for(std::uint64_t lookup_pc) {
  const CachedRow& cached = lookup(lookup_pc);
  if (cached.status != CachedRow::Status::found) return fail(cached.message);
  return &cached.row;
}

std::expected<StepOutcome, StepError> Unwinder::step_with_row(const Frame& frame, const CachedRow& cached,
                                                              const target::Memory& memory) const {
  const CfiRow& row = cached.row;
  const target::Registers& registers = frame.registers;
  const std::uint64_t load_bias = cached.module ? cached.module->load_bias : 0;
  // Built only when a message needs it: a successful step allocates nothing.
  const auto where = [&] { return "pc " + frame.pc.to_string(); };

  std::uint64_t cfa = 0;
  if (row.cfa.kind == CfaRule::Kind::register_offset) {
    auto base = registers.get(row.cfa.base_register);
    if (!base) {
      return stop(StopReason::missing_register, "CFA at " + where() + " needs register " +
                                                    target::register_name(row.cfa.base_register) +
                                                    ", not known in this frame");
    }
    cfa = *base + static_cast<std::uint64_t>(row.cfa.offset);  // two's complement: a negative offset subtracts
  } else {
    FS_TRY(value, evaluate_cfi_expression(row.cfa.expression, registers, memory, std::nullopt, load_bias,
                                          "CFA expression"));
    cfa = *value;
  }

  StepOutcome outcome;
  outcome.cfa = RemoteAddress(cfa);
  outcome.frame_is_signal_trampoline = row.signal_frame;
  if (row.return_address_register >= target::kRegisterCount) {
    return stop(StopReason::bad_cfi, "return address column " + std::to_string(row.return_address_register) +
                                         " at " + where() + " is not a general register");
  }
  const RegisterRule& ra_rule = row.registers[row.return_address_register];
  if (ra_rule.kind == RegisterRule::Kind::undefined) return outcome;  // .cfi_undefined rip: the outermost frame
  if (ra_rule.kind == RegisterRule::Kind::unspecified) {
    return stop(StopReason::bad_cfi, "no rule for the return address at " + where());
  }

  Frame caller;
  caller.recovered_by = cached.method;
  caller.pc_is_return_address = !row.signal_frame;
  for (unsigned reg = 0; reg < target::kRegisterCount; ++reg) {
    const RegisterRule& rule = row.registers[reg];
    const bool is_ra = reg == row.return_address_register;
    std::optional<std::uint64_t> value;
    std::optional<std::uint64_t> load_from;
    switch (rule.kind) {
      case RegisterRule::Kind::unspecified:
        if (reg == kRsp) value = cfa;  // the CFA is by definition the caller's sp (x86-64 psABI 3.7)
        else if (is_callee_saved(reg)) value = registers.get(reg);
        break;
      case RegisterRule::Kind::undefined: break;
      case RegisterRule::Kind::same_value: value = registers.get(reg); break;
      case RegisterRule::Kind::offset: load_from = cfa + static_cast<std::uint64_t>(rule.offset); break;
      case RegisterRule::Kind::val_offset: value = cfa + static_cast<std::uint64_t>(rule.offset); break;
      case RegisterRule::Kind::register_copy:
        value = registers.get(rule.source_register);
        if (!value && is_ra) {
          return stop(StopReason::missing_register, "return address at " + where() + " is in register " +
                                                        std::to_string(rule.source_register) + ", not known");
        }
        break;
      case RegisterRule::Kind::expression:
      case RegisterRule::Kind::val_expression: {
        auto result = evaluate_cfi_expression(rule.expression, registers, memory, cfa, load_bias,
                                              is_ra ? "return address expression" : "register expression");
        if (!result) {
          if (is_ra) return std::unexpected(result.error());
          break;  // a callee-saved register we cannot recover is unknown, not fatal
        }
        if (rule.kind == RegisterRule::Kind::expression) load_from = *result; else value = *result;
        break;
      }
    }
    if (load_from) {
      auto loaded = memory.read_u64(RemoteAddress(*load_from));
      if (loaded) {
        value = *loaded;
      } else if (is_ra) {
        return stop(StopReason::read_failed,
                    "read of return address at " + hex(*load_from) + " failed: " + loaded.error().message);
      }
    }
    if (value) caller.registers.set(reg, *value);
  }
  if (row.return_address_register != kRip) {
    if (auto ra = caller.registers.get(row.return_address_register)) caller.registers.set(Reg::rip, *ra);
  }
  const auto pc = caller.registers.get(Reg::rip);
  if (!pc) return stop(StopReason::missing_register, "return address at " + where() + " could not be recovered");
  if (*pc == 0) return outcome;  // a zeroed return address: the conventional end of a stack
  caller.pc = RemoteAddress(*pc);
  caller.sp = RemoteAddress(caller.registers.get(Reg::rsp).value_or(cfa));
  outcome.caller = caller;
  return outcome;
}

bool Unwinder::starts_signal_trampoline(std::uint64_t pc, const target::Memory& memory) const {
  const ModuleCfi* module = modules_.module_at(pc);
  std::array<std::byte, kRestoreRtCode.size()> code{};
  const bool have = (module && module->read_code(pc, code)) || memory.read(RemoteAddress(pc), code).has_value();
  return have && std::memcmp(code.data(), kRestoreRtCode.data(), code.size()) == 0;
}

// A signal trampoline that no CFI describes (static binaries without it, other libcs): recognised by its code, and
// the interrupted registers read from the ucontext the kernel left on the stack.
std::optional<std::expected<StepOutcome, StepError>> Unwinder::step_signal_trampoline(
    const Frame& frame, const ModuleCfi* module, const target::Memory& memory) const {
  const auto matches_at = [&](std::uint64_t start) {
    std::array<std::byte, kRestoreRtCode.size()> code{};
    const bool have = (module && module->read_code(start, code)) || memory.read(RemoteAddress(start), code).has_value();
    return have && std::memcmp(code.data(), kRestoreRtCode.data(), code.size()) == 0;
  };
  const std::uint64_t pc = frame.pc.value();
  if (!matches_at(pc) && !(pc >= kSyscallOffsetInRestoreRt && matches_at(pc - kSyscallOffsetInRestoreRt))) {
    return std::nullopt;
  }
  std::array<std::uint64_t, kSigcontextOrder.size()> words{};
  const RemoteAddress mcontext = frame.sp + kUcontextMcontextOffset;
  if (auto ok = memory.read(mcontext, std::as_writable_bytes(std::span(words))); !ok) {
    return stop(StopReason::read_failed, "read of the signal frame's registers at " + mcontext.to_string() +
                                             " failed: " + ok.error().message);
  }
  StepOutcome outcome;
  outcome.frame_is_signal_trampoline = true;
  Frame caller;
  caller.recovered_by = FrameMethod::signal_frame;
  caller.pc_is_return_address = false;  // the interrupted instruction itself
  for (std::size_t i = 0; i < words.size(); ++i) caller.registers.set(kSigcontextOrder[i], words[i]);
  caller.pc = RemoteAddress(caller.registers.pc());
  caller.sp = RemoteAddress(caller.registers.sp());
  outcome.cfa = caller.sp;
  if (caller.pc.is_null()) return std::expected<StepOutcome, StepError>(outcome);
  outcome.caller = caller;
  return std::expected<StepOutcome, StepError>(outcome);
}

// The rbp chain (System V psABI 3.2.2 with -fno-omit-frame-pointer): [rbp] is the caller's rbp, [rbp+8] the
// return address, and the caller's sp is rbp+16.
std::expected<StepOutcome, StepError> Unwinder::step_frame_pointer(const Frame& frame,
                                                                   const target::Memory& memory) const {
  auto rbp = frame.registers.get(Reg::rbp);
  if (!rbp || *rbp == 0 || *rbp % 8 != 0 || *rbp < frame.sp.value() || *rbp > UINT64_MAX - 16) {
    return stop(StopReason::no_cfi, "no CFI for pc " + frame.pc.to_string() + " and no usable frame pointer");
  }
  std::array<std::uint64_t, 2> saved{};  // caller's rbp, return address
  if (auto ok = memory.read(RemoteAddress(*rbp), std::as_writable_bytes(std::span(saved))); !ok) {
    return stop(StopReason::read_failed, "read of return address at " + hex(*rbp + 8) +
                                             " failed (frame pointer chain): " + ok.error().message);
  }
  StepOutcome outcome;
  outcome.cfa = RemoteAddress(*rbp + 16);
  if (saved[1] == 0) return outcome;
  Frame caller;
  caller.recovered_by = FrameMethod::frame_pointer;
  caller.pc_is_return_address = true;
  caller.registers.set(Reg::rbp, saved[0]);
  caller.registers.set(Reg::rsp, *rbp + 16);
  caller.registers.set(Reg::rip, saved[1]);
  caller.pc = RemoteAddress(saved[1]);
  caller.sp = RemoteAddress(*rbp + 16);
  outcome.caller = caller;
  return outcome;
}

std::expected<StepOutcome, StepError> Unwinder::step(const Frame& frame, const target::Memory& memory,
                                                     bool use_frame_pointers) {
  const CachedRow& cached = lookup(frame.lookup_pc().value());
  if (frame.pc_is_return_address && cached.next_is_signal_trampoline) {
    if (auto signal = step_signal_trampoline(frame, cached.module, memory)) return *signal;
  }
  if (cached.status == CachedRow::Status::found) {
    auto outcome = step_with_row(frame, cached, memory);
    if (outcome && outcome->caller && cached.go_flag) {
      // Go's traceback ends at a TOPFRAME function whatever its CFI says about a caller, but runtime.sigtramp is one
      // only for Go's walk of the signal stack: the kernel's signal frame above it leads to the interrupted code.
      const bool top = (cached.go_flag & binary::kGoFuncFlagTopFrame) &&
                       !starts_signal_trampoline(outcome->caller->pc.value(), memory);
      // A Go function that switched stacks (mcall, systemstack, asmcgocall) and called out: what lies above its CFA
      // on this stack is not its caller. Go's traceback stops here too.
      const bool switched = frame.pc_is_return_address && (cached.go_flag & binary::kGoFuncFlagSpWrite);
      if (top || switched) outcome->caller.reset();
    }
    return outcome;
  }
  if (auto signal = step_signal_trampoline(frame, cached.module, memory)) return *signal;
  if (cached.status == CachedRow::Status::error) return stop(StopReason::bad_cfi, cached.message);
  if (use_frame_pointers) {
    auto outcome = step_frame_pointer(frame, memory);
    if (outcome || outcome.error().reason != StopReason::no_cfi) return outcome;
  }
  return stop(StopReason::no_cfi, cached.message);
}

UnwindResult Unwinder::unwind(const target::Registers& start, const target::Memory& memory,
                              const UnwindOptions& options) {
  UnwindResult result;
  const auto region_of = [&](RemoteAddress address) -> const StackRegion* {
    for (const StackRegion& region : options.stacks) {
      if (region.range.contains(address)) return &region;
    }
    return nullptr;
  };
  const auto label = [&](Frame& frame) {
    const StackRegion* region = region_of(frame.sp);
    if (region) {
      frame.stack_kind = region->kind;
      frame.stack_id = region->id;
      frame.on_known_stack = true;
    }
    return region;
  };
  const auto finish = [&](StopReason reason, std::string message) {
    result.stop_reason = reason;
    result.stop_message = std::move(message);
    return std::move(result);
  };

  Frame first;
  first.registers = start;
  first.pc = RemoteAddress(start.pc());
  first.sp = RemoteAddress(start.sp());
  if (!start.has(Reg::rip) || !start.has(Reg::rsp)) {
    return finish(StopReason::missing_register, "the start registers lack rip or rsp");
  }
  const StackRegion* current_region = label(first);
  result.frames.reserve(32);  // most stacks fit without regrowing (frames carry a register file each)
  result.frames.push_back(first);
  if (first.pc.is_null()) return finish(StopReason::end_of_stack, "");

  const bool check_bounds = options.require_cfa_in_stacks && !options.stacks.empty();
  // The kernel may deliver a signal on an alternate stack (sigaltstack, Go's gsignal stacks): the interrupted code
  // then runs on another stack, one the caller may not have listed. Past such a signal frame the walk goes on there,
  // its sp still required to move up.
  bool off_known_stacks = false;
  for (;;) {
    if (result.frames.size() >= options.max_depth) {
      // The last frame still gets its CFA (the frame base its arguments are found from); its caller is left out.
      if (auto outcome = step(result.frames.back(), memory, options.use_frame_pointers)) {
        result.frames.back().cfa = outcome->cfa;
        result.frames.back().is_signal_trampoline = outcome->frame_is_signal_trampoline;
      }
      return finish(StopReason::max_depth, "max depth " + std::to_string(options.max_depth) + " reached");
    }
    auto outcome = step(result.frames.back(), memory, options.use_frame_pointers);
    if (!outcome) return finish(outcome.error().reason, std::move(outcome.error().message));
    Frame& callee = result.frames.back();
    callee.cfa = outcome->cfa;
    callee.is_signal_trampoline = outcome->frame_is_signal_trampoline;
    // The kernel makes the trampoline's own address a handler's return address: no call precedes it, so it is
    // looked up (symbolized: __restore_rt) at its exact pc, as gdb does for its "<signal handler called>" frame.
    if (callee.is_signal_trampoline) callee.pc_is_return_address = false;
    if (!outcome->caller) return finish(StopReason::end_of_stack, "");

    Frame& caller = *outcome->caller;
    const bool via_signal = caller.recovered_by == FrameMethod::signal_frame;
    if (check_bounds && !via_signal && !off_known_stacks) {
      // The CFA may equal a stack's end: the outermost frame's CFA is the top of its stack.
      const bool cfa_inside = region_of(outcome->cfa) ||
                              (outcome->cfa.value() > 0 && region_of(outcome->cfa - 1) &&
                               region_of(outcome->cfa - 1)->range.end == outcome->cfa);
      if (!cfa_inside) {
        return finish(StopReason::cfa_outside_stack, "CFA " + outcome->cfa.to_string() + " of the frame at pc " +
                                                         callee.pc.to_string() + " is outside the stack");
      }
    }
    const StackRegion* caller_region = label(caller);
    if (check_bounds && !caller_region && !via_signal && !off_known_stacks) {
      return finish(StopReason::cfa_outside_stack, "sp " + caller.sp.to_string() + " of the caller of pc " +
                                                       callee.pc.to_string() + " is outside the stack");
    }
    const bool was_off_known_stacks = off_known_stacks;
    if (check_bounds) off_known_stacks = !caller_region && (via_signal || off_known_stacks);
    // Within one stack callers live at higher addresses (the unlisted stack past a signal frame counts as one).
    // Anywhere else (a stack switch, a signal frame, or no known stacks) a repeated (pc, sp) betrays a cycle.
    const bool same_region = !via_signal && (caller_region ? caller_region == current_region
                                                           : was_off_known_stacks && off_known_stacks);
    if (!same_region || caller.sp <= callee.sp) {
      for (const Frame& earlier : result.frames) {
        if (earlier.pc == caller.pc && earlier.sp == caller.sp) {
          return finish(StopReason::loop, "loop at pc " + caller.pc.to_string() + " sp " + caller.sp.to_string() +
                                              ": this frame was already unwound");
        }
      }
      if (same_region && caller.sp < callee.sp) {
        return finish(StopReason::cfa_not_increasing, "sp " + caller.sp.to_string() + " of the caller of pc " +
                                                          callee.pc.to_string() + " is below its callee's sp " +
                                                          callee.sp.to_string() + " on the same stack");
      }
    }
    current_region = caller_region;
    result.frames.push_back(std::move(caller));
  }
}

}  // namespace fiberscope::unwind
