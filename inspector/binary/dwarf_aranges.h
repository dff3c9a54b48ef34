// .debug_aranges (DWARF 5 section 6.1.2): which compile unit covers which addresses, read from the raw bytes without
// visiting a single DIE, so that opening a large debug file (libc's has ~1800 units) costs one table walk instead
// of one libdwarf unit visit per unit.
//
//   FS_TRY(units, read_aranges(debug_aranges, debug_info, image.path()));
//   for (const ArangesUnit& unit : *units) ...   // unit.die_offset, unit.ranges
//
// Only sets of version 2 with 8-byte addresses and no segment selectors are read; others are skipped. An empty
// result (no section, or no set naming code) means the caller must find the units another way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "binary/file_address_range.h"

namespace fiberscope::binary {

struct ArangesUnit {
  std::uint64_t die_offset = 0;           // .debug_info offset of the unit's DIE (just past the unit header)
  unsigned version = 0;                   // DWARF version of the unit header
  std::vector<FileAddressRange> ranges;   // never empty; sets naming the same unit are merged
};

// The units of `debug_aranges` in the order their first set names them. `debug_info` is read only for the unit
// headers the sets point to; errors are prefixed with `path`.
Result<std::vector<ArangesUnit>> read_aranges(std::span<const std::byte> debug_aranges,
                                              std::span<const std::byte> debug_info, const std::string& path);

// The number of unit headers in `debug_info`, following unit lengths only (a last unit whose length overruns the
// section counts: its error is reported when it is read), capped at kMaxCompileUnits. A .debug_aranges naming fewer
// units than this leaves some code without a unit (Go's linker writes sets for none of its own).
std::size_t count_unit_headers(std::span<const std::byte> debug_info);

}  // namespace fiberscope::binary
