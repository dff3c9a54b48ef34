// Registers: DWARF register names, and the one conversion from the kernel's user_regs_struct that both the live
// capture (PTRACE_GETREGS) and the core reader (NT_PRSTATUS pr_reg) use.
#include <catch2/catch.hpp>

#include <sys/user.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "target/registers.h"

using namespace fiberscope::target;

namespace {

// A user_regs_struct filled by field name, each register a value that names it, as the kernel would lay it out.
user_regs_struct distinct_user_regs() {
  user_regs_struct regs{};
  regs.rax = 0xa0;
  regs.rdx = 0xd0;
  regs.rcx = 0xc0;
  regs.rbx = 0xb0;
  regs.rsi = 0x51;
  regs.rdi = 0xd1;
  regs.rbp = 0xb9;
  regs.rsp = 0x7ffd0000;
  regs.r8 = 0x8;
  regs.r9 = 0x9;
  regs.r10 = 0x10;
  regs.r11 = 0x11;
  regs.r12 = 0x12;
  regs.r13 = 0x13;
  regs.r14 = 0x14;
  regs.r15 = 0x15;
  regs.rip = 0x401000;
  regs.eflags = 0x246;
  regs.orig_rax = 0xe7;
  return regs;
}

std::array<std::uint64_t, kUserRegsWords> as_words(const user_regs_struct& regs) {
  std::array<std::uint64_t, kUserRegsWords> words{};
  static_assert(sizeof words == sizeof regs);
  std::memcpy(words.data(), &regs, sizeof regs);
  return words;
}

}  // namespace

TEST_CASE("register names follow the DWARF numbering of the x86-64 psABI") {
  CHECK(std::string(register_name(0)) == "rax");
  CHECK(std::string(register_name(1)) == "rdx");
  CHECK(std::string(register_name(3)) == "rbx");
  CHECK(std::string(register_name(7)) == "rsp");
  CHECK(std::string(register_name(16)) == "rip");
  CHECK(std::string(register_name(17)) == "r?");
  CHECK(std::string(register_name(~0u)) == "r?");
}

TEST_CASE("registers_from_user_regs takes every general register from its own field of user_regs_struct") {
  const user_regs_struct regs = distinct_user_regs();
  const Registers registers = registers_from_user_regs(as_words(regs));
  CHECK(registers.valid_mask() == (1u << kRegisterCount) - 1);
  CHECK(registers.get(Reg::rax) == regs.rax);
  CHECK(registers.get(Reg::rdx) == regs.rdx);
  CHECK(registers.get(Reg::rcx) == regs.rcx);
  CHECK(registers.get(Reg::rbx) == regs.rbx);
  CHECK(registers.get(Reg::rsi) == regs.rsi);
  CHECK(registers.get(Reg::rdi) == regs.rdi);
  CHECK(registers.get(Reg::rbp) == regs.rbp);
  CHECK(registers.get(Reg::rsp) == regs.rsp);
  CHECK(registers.get(Reg::r8) == regs.r8);
  CHECK(registers.get(Reg::r9) == regs.r9);
  CHECK(registers.get(Reg::r10) == regs.r10);
  CHECK(registers.get(Reg::r11) == regs.r11);
  CHECK(registers.get(Reg::r12) == regs.r12);
  CHECK(registers.get(Reg::r13) == regs.r13);
  CHECK(registers.get(Reg::r14) == regs.r14);
  CHECK(registers.get(Reg::r15) == regs.r15);
  CHECK(registers.get(Reg::rip) == regs.rip);
  CHECK(registers.pc() == regs.rip);
  CHECK(registers.sp() == regs.rsp);
}

TEST_CASE("registers_to_user_regs puts each register back in its field, with a plain 64-bit thread's selectors") {
  const user_regs_struct original = distinct_user_regs();
  Registers registers = registers_from_user_regs(as_words(original));
  registers.clear(static_cast<unsigned>(Reg::r11));  // unknown registers are written as 0

  std::array<std::uint64_t, kUserRegsWords> words;
  words.fill(0xffff);  // every word is overwritten, not left as it was
  registers_to_user_regs(registers, words);
  user_regs_struct back{};
  std::memcpy(&back, words.data(), sizeof back);

  CHECK(back.rax == original.rax);
  CHECK(back.rdx == original.rdx);
  CHECK(back.rbx == original.rbx);
  CHECK(back.rsi == original.rsi);
  CHECK(back.rsp == original.rsp);
  CHECK(back.r8 == original.r8);
  CHECK(back.r15 == original.r15);
  CHECK(back.rip == original.rip);
  CHECK(back.r11 == 0);
  CHECK(back.cs == 0x33);
  CHECK(back.ss == 0x2b);
  CHECK(back.eflags == 0x202);
  CHECK(back.orig_rax == UINT64_MAX);
  CHECK(back.fs_base == 0);
  CHECK(registers_from_user_regs(words).get(Reg::rbp) == original.rbp);  // a round trip keeps the values
}
