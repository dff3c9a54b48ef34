#include "binary/dwarf_aranges.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "base/byte_reader.h"
#include "base/hex.h"
#include "binary/dwarf_limits.h"

namespace fiberscope::binary {
namespace {

struct UnitHeader {
  std::uint64_t die_offset = 0;
  unsigned version = 0;
};

// The unit header at `info_offset`: its version, and where the unit's DIE starts. The DIE follows the header:
// 4+2+1+1+4 bytes (DWARF 5) or 4+2+4+1 (DWARF 2-4), 8 more each for 64-bit DWARF (DWARF 5 section 7.5.1.1).
Result<UnitHeader> unit_header(std::span<const std::byte> debug_info, std::uint64_t info_offset,
                               const std::string& path) {
  ByteReader header(debug_info, path + ": .debug_info");
  FS_TRY_DISCARD(header.seek(info_offset));
  FS_TRY(unit_length, header.fixed<std::uint32_t>());
  const bool unit64 = *unit_length == 0xffffffff;
  if (unit64) FS_TRY_DISCARD(header.fixed<std::uint64_t>());
  FS_TRY(unit_version, header.fixed<std::uint16_t>());
  const std::uint64_t header_size = (unit64 ? 12 : 4) + 2 + (*unit_version >= 5 ? 2 : 1) + (unit64 ? 8 : 4);
  return UnitHeader{info_offset + header_size, *unit_version};
}

}  // namespace

Result<std::vector<ArangesUnit>> read_aranges(std::span<const std::byte> debug_aranges,
                                              std::span<const std::byte> debug_info, const std::string& path) {
  std::vector<ArangesUnit> units;
  if (debug_aranges.empty() || debug_info.empty()) return units;
  const std::string where = path + ": .debug_aranges";
  ByteReader reader(debug_aranges, where);
  std::unordered_map<std::uint64_t, std::size_t> unit_by_header;
  for (std::size_t n = 0; !reader.at_end(); ++n) {
    if (n >= kMaxCompileUnits) return fail(where, " has too many sets");
    const std::size_t set_start = reader.offset();
    FS_TRY(length32, reader.fixed<std::uint32_t>());
    std::uint64_t length = *length32;
    const bool offset64 = *length32 == 0xffffffff;
    if (offset64) {
      FS_TRY(length64, reader.fixed<std::uint64_t>());
      length = *length64;
    }
    if (length > reader.remaining()) return fail(where, " set at ", hex(set_start), " is truncated");
    const std::size_t set_end = reader.offset() + static_cast<std::size_t>(length);
    FS_TRY(version, reader.fixed<std::uint16_t>());
    std::uint64_t info_offset = 0;
    if (offset64) {
      FS_TRY(value, reader.fixed<std::uint64_t>());
      info_offset = *value;
    } else {
      FS_TRY(value, reader.fixed<std::uint32_t>());
      info_offset = *value;
    }
    FS_TRY(address_size, reader.fixed<std::uint8_t>());
    FS_TRY(segment_size, reader.fixed<std::uint8_t>());
    if (*version != 2 || *address_size != 8 || *segment_size != 0) {
      FS_TRY_DISCARD(reader.seek(set_end));
      continue;
    }
    // Tuples start at a multiple of twice the address size from the set's start.
    const std::size_t tuples = set_start + ((reader.offset() - set_start + 15) / 16) * 16;
    FS_TRY_DISCARD(reader.seek(std::min(tuples, set_end)));
    FS_TRY(header, unit_header(debug_info, info_offset, path));
    auto [slot, inserted] = unit_by_header.try_emplace(info_offset, units.size());
    if (inserted) units.push_back(ArangesUnit{header->die_offset, header->version, {}});
    ArangesUnit& unit = units[slot->second];
    for (std::size_t t = 0; reader.offset() + 16 <= set_end; ++t) {
      if (t >= kMaxListEntries) return fail(where, " set at ", hex(set_start), " has too many ranges");
      FS_TRY(address, reader.fixed<std::uint64_t>());
      FS_TRY(size, reader.fixed<std::uint64_t>());
      if (*address == 0 && *size == 0) break;
      if (*size != 0 && *address + *size > *address) unit.ranges.push_back({*address, *address + *size});
    }
    FS_TRY_DISCARD(reader.seek(set_end));
  }
  std::erase_if(units, [](const ArangesUnit& unit) { return unit.ranges.empty(); });
  return units;
}

std::size_t count_unit_headers(std::span<const std::byte> debug_info) {
  ByteReader reader(debug_info, ".debug_info");
  std::size_t count = 0;
  while (count < kMaxCompileUnits && !reader.at_end()) {
    auto length32 = reader.fixed<std::uint32_t>();
    if (!length32) break;
    ++count;
    auto length = *length32 == 0xffffffff ? reader.fixed<std::uint64_t>() : Result<std::uint64_t>(*length32);
    if (!length || !reader.bytes(*length)) break;
  }
  return count;
}

}  // namespace fiberscope::binary
