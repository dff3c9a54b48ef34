// DwarfLists: the range lists (DW_AT_ranges) and location lists (DW_AT_location, DW_AT_frame_base) of one ELF file,
// read from the raw sections: DWARF 2-4's .debug_ranges and .debug_loc, DWARF 5's .debug_rnglists and
// .debug_loclists (whose entries may index .debug_addr).
//
//   DwarfLists lists(sections, image.path());
//   FS_TRY(ranges, lists.ranges(offset, unit));       // DW_AT_ranges' offset, the unit that refers to it
//   FS_TRY(entries, lists.locations(offset, unit));   // one expression per address range
//
// Every list is bounded (kMaxListEntries) and must end inside its section. The sections must outlive the lists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/byte_reader.h"
#include "base/result.h"
#include "binary/file_address_range.h"

namespace fiberscope::binary {

struct LocationListEntry {
  FileAddressRange range;
  std::vector<std::byte> expression;
};

// What reading a list takes from the compile unit that refers to it.
struct ListUnit {
  unsigned version = 0;            // 2-4: .debug_ranges / .debug_loc; 5: .debug_rnglists / .debug_loclists
  std::uint64_t base_address = 0;  // the unit's DW_AT_low_pc: the base of offset pairs until a list sets another
  std::uint64_t addr_base = 0;     // DW_AT_addr_base: where the unit's entries of .debug_addr start
};

struct ListSections {
  std::span<const std::byte> debug_ranges, debug_rnglists, debug_loc, debug_loclists, debug_addr;
};

class DwarfLists {
 public:
  DwarfLists() = default;
  // `path` prefixes errors.
  DwarfLists(const ListSections& sections, std::string path) : sections_(sections), path_(std::move(path)) {}

  // The non-empty ranges of the range list at `offset`.
  Result<std::vector<FileAddressRange>> ranges(std::uint64_t offset, const ListUnit& unit) const;
  // The entries with a non-empty range of the location list at `offset` (DW_LLE_default_location: all addresses).
  Result<std::vector<LocationListEntry>> locations(std::uint64_t offset, const ListUnit& unit) const;

 private:
  struct Entry;
  Result<Entry> read_entry(ByteReader& reader, const ListUnit& unit, bool location) const;
  Result<std::uint64_t> indexed_address(std::uint64_t index, const ListUnit& unit) const;
  std::string where(std::string_view what) const { return path_ + ": " + std::string(what); }

  ListSections sections_;
  std::string path_;
};

}  // namespace fiberscope::binary
