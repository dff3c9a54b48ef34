// The file register of every row of one DWARF 5 line program, read from the raw .debug_line bytes.
//
//   FS_TRY(files, line_program_files(debug_line, stmt_list));   // (*files)[i]: file number of row i
//
// libdwarf 20210528 starts each sequence's file register at 0 in DWARF 5 line programs, where the standard says 1
// (DWARF 5 section 6.2.2): a row before the sequence's first DW_LNS_set_file is reported in file 0, the unit's
// primary file, although it is in file 1 (a header whose function gcc emitted first). The index takes the file
// numbers from here and everything else (addresses, lines) from libdwarf; the rows come in the same order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"

namespace fiberscope::binary {

// The file register of each row (DW_LNS_copy, special opcodes, DW_LNE_end_sequence) of the line program at
// `offset` in .debug_line, in program order. Errors for a truncated or malformed program or header.
Result<std::vector<std::uint64_t>> line_program_files(std::span<const std::byte> debug_line, std::uint64_t offset);

}  // namespace fiberscope::binary
