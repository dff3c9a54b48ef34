#include "target/registers.h"

#include <sys/user.h>

#include <algorithm>
#include <cstddef>

namespace fiberscope::target {

namespace {

// A mismatch would misread every thread, live and from a core.
static_assert(sizeof(user_regs_struct) == kUserRegsWords * sizeof(std::uint64_t));

// The word of user_regs_struct that holds each DWARF-numbered register. The kernel orders them as its entry code
// pushes them (r15 first), which is neither the DWARF order nor the hardware encoding.
constexpr std::array<std::size_t, kRegisterCount> kUserRegsWord = {
    offsetof(user_regs_struct, rax) / 8, offsetof(user_regs_struct, rdx) / 8, offsetof(user_regs_struct, rcx) / 8,
    offsetof(user_regs_struct, rbx) / 8, offsetof(user_regs_struct, rsi) / 8, offsetof(user_regs_struct, rdi) / 8,
    offsetof(user_regs_struct, rbp) / 8, offsetof(user_regs_struct, rsp) / 8, offsetof(user_regs_struct, r8) / 8,
    offsetof(user_regs_struct, r9) / 8,  offsetof(user_regs_struct, r10) / 8, offsetof(user_regs_struct, r11) / 8,
    offsetof(user_regs_struct, r12) / 8, offsetof(user_regs_struct, r13) / 8, offsetof(user_regs_struct, r14) / 8,
    offsetof(user_regs_struct, r15) / 8, offsetof(user_regs_struct, rip) / 8,
};

}  // namespace

const char* register_name(unsigned dwarf_number) {
  // Indexed by the psABI's DWARF numbering, which is not the hardware encoding order (rdx is 1, rbx is 3).
  static constexpr const char* kNames[kRegisterCount] = {
      "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8",
      "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip",
  };
  if (dwarf_number >= kRegisterCount) return "r?";
  return kNames[dwarf_number];
}

Registers registers_from_user_regs(std::span<const std::uint64_t, kUserRegsWords> user_regs) {
  Registers registers;
  for (unsigned dwarf_number = 0; dwarf_number < kRegisterCount; ++dwarf_number)
    registers.set(dwarf_number, user_regs[kUserRegsWord[dwarf_number]]);
  return registers;
}

void registers_to_user_regs(const Registers& registers, std::span<std::uint64_t, kUserRegsWords> user_regs) {
  std::fill(user_regs.begin(), user_regs.end(), 0);
  for (unsigned dwarf_number = 0; dwarf_number < kRegisterCount; ++dwarf_number)
    user_regs[kUserRegsWord[dwarf_number]] = registers.get(dwarf_number).value_or(0);
  // The selectors and flags of any 64-bit user thread on Linux (__USER_CS, __USER_DS, IF set): debuggers check cs
  // to tell 64-bit from compat frames.
  user_regs[offsetof(user_regs_struct, cs) / 8] = 0x33;
  user_regs[offsetof(user_regs_struct, ss) / 8] = 0x2b;
  user_regs[offsetof(user_regs_struct, eflags) / 8] = 0x202;
  user_regs[offsetof(user_regs_struct, orig_rax) / 8] = UINT64_MAX;  // -1: not in a system call, so none restarts
}

}  // namespace fiberscope::target
