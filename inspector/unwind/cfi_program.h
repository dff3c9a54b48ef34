// Running call frame instructions (DWARF 5 section 6.4.2): the CIE's initial instructions, then the FDE's, up to
// a pc, give the CfiRow that describes the frame at that pc.
//
// Every DW_CFA_* operation of DWARF 5 is supported, plus the GNU extensions GCC emits (DW_CFA_GNU_args_size,
// DW_CFA_GNU_negative_offset_extended). The instructions are hostile: operand reads are bounds-checked, the number
// of operations and the depth of remember_state are capped, and arithmetic that would overflow is an Error.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.h"
#include "unwind/cfi_row.h"
#include "unwind/cfi_section.h"

namespace fiberscope::unwind {

inline constexpr std::size_t kMaxCfiOps = 100'000;
inline constexpr std::size_t kMaxRememberDepth = 64;

// The row of `fde` (from `section`) that covers file address `pc`; `pc` must lie in [pc_begin, pc_end).
Result<CfiRow> compute_row(const CfiSection& section, const Fde& fde, std::uint64_t pc);

}  // namespace fiberscope::unwind
