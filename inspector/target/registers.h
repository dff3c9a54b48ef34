// Registers: a thread's or frame's general-purpose registers, indexed by their DWARF numbers (x86-64 psABI).
//
// A frame recovered by unwinding knows only some registers (callee-saved ones the CFI describes); `valid`
// says which. Reading an unknown register gives nothing rather than a stale value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace fiberscope::target {

// DWARF register numbers for x86-64 (System V psABI, figure 3.36).
enum class Reg : std::uint8_t {
  rax = 0, rdx = 1, rcx = 2, rbx = 3, rsi = 4, rdi = 5, rbp = 6, rsp = 7,
  r8 = 8, r9 = 9, r10 = 10, r11 = 11, r12 = 12, r13 = 13, r14 = 14, r15 = 15,
  rip = 16,  // the return-address column
};

inline constexpr unsigned kRegisterCount = 17;

class Registers {
 public:
  std::optional<std::uint64_t> get(Reg reg) const { return get(static_cast<unsigned>(reg)); }
  std::optional<std::uint64_t> get(unsigned dwarf_number) const {
    if (dwarf_number >= kRegisterCount || !(valid_ & (1u << dwarf_number))) return std::nullopt;
    return values_[dwarf_number];
  }
  void set(Reg reg, std::uint64_t value) { set(static_cast<unsigned>(reg), value); }
  void set(unsigned dwarf_number, std::uint64_t value) {
    if (dwarf_number >= kRegisterCount) return;
    values_[dwarf_number] = value;
    valid_ |= 1u << dwarf_number;
  }
  void clear(unsigned dwarf_number) {
    if (dwarf_number < kRegisterCount) valid_ &= ~(1u << dwarf_number);
  }
  bool has(Reg reg) const { return get(reg).has_value(); }

  std::uint64_t pc() const { return values_[static_cast<unsigned>(Reg::rip)]; }
  std::uint64_t sp() const { return values_[static_cast<unsigned>(Reg::rsp)]; }
  std::uint32_t valid_mask() const { return valid_; }

 private:
  std::array<std::uint64_t, kRegisterCount> values_{};
  std::uint32_t valid_ = 0;
};

// Returns the name of a DWARF register number ("rbx"), or "r?" for an unknown one.
const char* register_name(unsigned dwarf_number);

// The kernel's general-purpose register block, struct user_regs_struct of <sys/user.h>, as 64-bit words: what
// PTRACE_GETREGS fills and what an NT_PRSTATUS note holds in pr_reg.
inline constexpr std::size_t kUserRegsWords = 27;

// Converts a user_regs_struct block to DWARF-numbered Registers (rax..r15, rip; all marked valid).
Registers registers_from_user_regs(std::span<const std::uint64_t, kUserRegsWords> user_regs);

// Converts Registers back to a user_regs_struct block; registers Registers does not hold (eflags, segment
// selectors) get the values of a plain 64-bit user thread, unknown general registers are written as 0.
void registers_to_user_regs(const Registers& registers, std::span<std::uint64_t, kUserRegsWords> user_regs);

}  // namespace fiberscope::target
