// Guards against three bugs of libdwarf 20210528 (Debian 12's), each found by tests/fuzz/fuzz_dwarf: a hostile file
// that would make libdwarf double-free, read past an array or allocate gigabytes is refused with our Error before
// the libdwarf call that has the bug.
//
//   FS_TRY_DISCARD(check_list_table_headers(rnglists, ".debug_rnglists"));  // before dwarf_init_b
//   FS_TRY_DISCARD(check_line_table_counts(debug_line, stmt_list));         // before dwarf_srclines_b
//   FS_TRY_DISCARD(check_file_directories(debug, context, version));        // before dwarf_srcfiles, dwarf_linesrc
//
// Each check applies the DWARF rules the buggy code relies on, no more: what passes is still judged by libdwarf.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/result.h"
#include "binary/libdwarf.h"

namespace fiberscope::binary {

// The table headers of a .debug_rnglists or .debug_loclists section (`name` says which).
Result<void> check_list_table_headers(std::span<const std::byte> section, std::string_view name);

// The directory and file name counts of the DWARF 5 line table header at `offset` in .debug_line.
Result<void> check_line_table_counts(std::span<const std::byte> debug_line, std::uint64_t offset);

// The directory index of every file of a loaded line table (`version` as dwarf_srclines_b gave it).
Result<void> check_file_directories(Dwarf_Debug debug, Dwarf_Line_Context context, Dwarf_Unsigned version);

}  // namespace fiberscope::binary
