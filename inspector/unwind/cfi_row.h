// CfiRow: one row of the DWARF call frame table (DWARF 5 section 6.4.1) — how to find a frame's CFA and its
// caller's registers at one pc.
//
// Rows are computed by running a CIE's and an FDE's instructions (cfi_program.h), cached by pc in the Unwinder, and
// applied to a frame's registers to recover its caller. Expression rules point into the section bytes, so a row is
// valid only while the ElfImage it came from lives.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "target/registers.h"

namespace fiberscope::unwind {

// Where a caller's register is found (DWARF 5 section 6.4.1, "register rules").
struct RegisterRule {
  enum class Kind : std::uint8_t {
    unspecified,     // no rule given: callee-saved registers keep their value, the others are unknown
    undefined,       // the register has no recoverable value (for the return address: the end of the stack)
    same_value,      // unchanged from the callee
    offset,          // saved at address CFA + offset
    val_offset,      // the value is CFA + offset
    register_copy,   // the value is in register `source_register` of the callee
    expression,      // saved at the address computed by `expression` (initial stack: the CFA)
    val_expression,  // the value is computed by `expression` (initial stack: the CFA)
  };
  Kind kind = Kind::unspecified;
  std::uint16_t source_register = 0;
  std::int64_t offset = 0;
  std::span<const std::byte> expression;
};

// How the CFA is computed.
struct CfaRule {
  enum class Kind : std::uint8_t {
    unset,            // no DW_CFA_def_cfa* seen yet: the row cannot be used
    register_offset,  // value of `base_register` + offset
    expression,       // value computed by `expression`
  };
  Kind kind = Kind::unset;
  std::uint16_t base_register = 0;
  std::int64_t offset = 0;
  std::span<const std::byte> expression;
};

struct CfiRow {
  std::uint64_t start_address = 0;  // file address where this row starts
  std::uint64_t end_address = 0;    // file address where the next row (or the FDE) ends
  CfaRule cfa;
  std::array<RegisterRule, target::kRegisterCount> registers{};  // x86-64 DWARF numbers 0..16; others are ignored
  std::uint16_t return_address_register = static_cast<std::uint16_t>(target::Reg::rip);
  bool signal_frame = false;        // the CIE's "S" augmentation: the caller's pc is exact, not a return address
  std::uint64_t args_size = 0;      // DW_CFA_GNU_args_size
};

}  // namespace fiberscope::unwind
