// Location text: a DWARF location expression written out for a finding's evidence ("DW_OP_reg3 (rbx)",
// "DW_OP_fbreg -24", "DW_OP_entry_value(DW_OP_reg5 (rdi)) DW_OP_stack_value"), as objdump --dwarf spells it.
// The checks compare raw expressions; this is only how a reader sees them. Hostile bytes give a text that says
// where decoding stopped, never a failure.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace fiberscope::checks {

// The operations of `expression`, space-separated; "none" for an empty expression (no location at that pc).
std::string location_text(std::span<const std::byte> expression);

}  // namespace fiberscope::checks
