#include "target/registers.h"

namespace fiberscope::target {

const char* register_name(unsigned dwarf_number) {
  // Indexed by the psABI's DWARF numbering, which is not the hardware encoding order (rdx is 1, rbx is 3).
  static constexpr const char* kNames[kRegisterCount] = {
      "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8",
      "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip",
  };
  if (dwarf_number >= kRegisterCount) return "r?";
  return kNames[dwarf_number];
}

}  // namespace fiberscope::target
