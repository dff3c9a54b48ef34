#include "binary/dwarf_lists.h"

#include <libdwarf/dwarf.h>

#include "base/hex.h"
#include "binary/dwarf_limits.h"

namespace fiberscope::binary {

Result<std::uint64_t> DwarfLists::indexed_address(std::uint64_t index, const ListUnit& unit) const {
  ByteReader reader(sections_.debug_addr, where(".debug_addr"));
  if (index > sections_.debug_addr.size() / 8)
    return fail(where(".debug_addr index "), std::to_string(index), " out of range");
  FS_TRY_DISCARD(reader.seek(unit.addr_base + index * 8));
  return reader.fixed<std::uint64_t>();
}

// One entry of a DWARF 5 range or location list. Both lists encode bounds alike: the location kinds are the range
// kinds with DW_LLE_default_location inserted before DW_LLE_base_address, and a location entry with bounds (or
// the default) is followed by its counted expression.
struct DwarfLists::Entry {
  enum class Kind : std::uint8_t {
    end,
    base,        // low is the new base address
    offsets,     // [base + low, base + high)
    bounds,      // [low, high)
    everywhere,  // DW_LLE_default_location
  };
  Kind kind = Kind::end;
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  std::span<const std::byte> expression;
};

static_assert(DW_LLE_end_of_list == DW_RLE_end_of_list && DW_LLE_base_addressx == DW_RLE_base_addressx &&
              DW_LLE_startx_endx == DW_RLE_startx_endx && DW_LLE_startx_length == DW_RLE_startx_length &&
              DW_LLE_offset_pair == DW_RLE_offset_pair && DW_LLE_default_location == DW_RLE_base_address &&
              DW_LLE_base_address == DW_RLE_base_address + 1 && DW_LLE_start_end == DW_RLE_start_end + 1 &&
              DW_LLE_start_length == DW_RLE_start_length + 1);

Result<DwarfLists::Entry> DwarfLists::read_entry(ByteReader& reader, const ListUnit& unit, bool location) const {
  const std::string_view section = location ? ".debug_loclists" : ".debug_rnglists";
  FS_TRY(code, reader.fixed<std::uint8_t>());
  unsigned kind = *code;
  Entry entry;
  if (location && kind == DW_LLE_default_location) {
    entry.kind = Entry::Kind::everywhere;
  } else {
    if (location && kind > DW_LLE_default_location) --kind;  // to the range list's numbering
    switch (kind) {
      case DW_RLE_end_of_list: return entry;
      case DW_RLE_base_addressx: {
        FS_TRY(index, reader.uleb128());
        FS_TRY(address, indexed_address(*index, unit));
        return Entry{Entry::Kind::base, *address, 0, {}};
      }
      case DW_RLE_base_address: {
        FS_TRY(address, reader.fixed<std::uint64_t>());
        return Entry{Entry::Kind::base, *address, 0, {}};
      }
      case DW_RLE_startx_endx: {
        FS_TRY(a, reader.uleb128());
        FS_TRY(b, reader.uleb128());
        FS_TRY(low, indexed_address(*a, unit));
        FS_TRY(high, indexed_address(*b, unit));
        entry = {Entry::Kind::bounds, *low, *high, {}};
        break;
      }
      case DW_RLE_startx_length: {
        FS_TRY(a, reader.uleb128());
        FS_TRY(length, reader.uleb128());
        FS_TRY(low, indexed_address(*a, unit));
        entry = {Entry::Kind::bounds, *low, *low + *length, {}};
        break;
      }
      case DW_RLE_offset_pair: {
        FS_TRY(a, reader.uleb128());
        FS_TRY(b, reader.uleb128());
        entry = {Entry::Kind::offsets, *a, *b, {}};
        break;
      }
      case DW_RLE_start_end: {
        FS_TRY(low, reader.fixed<std::uint64_t>());
        FS_TRY(high, reader.fixed<std::uint64_t>());
        entry = {Entry::Kind::bounds, *low, *high, {}};
        break;
      }
      case DW_RLE_start_length: {
        FS_TRY(low, reader.fixed<std::uint64_t>());
        FS_TRY(length, reader.uleb128());
        entry = {Entry::Kind::bounds, *low, *low + *length, {}};
        break;
      }
      default:
        return fail(where(std::string(section) + ": unknown entry kind "), hex(*code), " at offset ",
                    hex(reader.offset() - 1));
    }
  }
  if (location) {
    FS_TRY(length, reader.uleb128());
    FS_TRY(expression, reader.bytes(*length));
    entry.expression = *expression;
  }
  return entry;
}

Result<std::vector<FileAddressRange>> DwarfLists::ranges(std::uint64_t offset, const ListUnit& unit) const {
  std::vector<FileAddressRange> ranges;
  std::uint64_t base = unit.base_address;
  auto add = [&](std::uint64_t low, std::uint64_t high) {
    if (high > low) ranges.push_back({low, high});
  };
  if (unit.version < 5) {
    // DWARF 4 .debug_ranges (2.17.3): address pairs, (0,0) ends, (~0, base) selects a new base.
    ByteReader reader(sections_.debug_ranges, where(".debug_ranges"));
    FS_TRY_DISCARD(reader.seek(offset));
    for (std::size_t n = 0; n < kMaxListEntries; ++n) {
      FS_TRY(low, reader.fixed<std::uint64_t>());
      FS_TRY(high, reader.fixed<std::uint64_t>());
      if (*low == 0 && *high == 0) return ranges;
      if (*low == ~std::uint64_t{0}) {
        base = *high;
        continue;
      }
      add(base + *low, base + *high);
    }
    return fail(where(".debug_ranges list at "), hex(offset), " has no end");
  }
  // DWARF 5 .debug_rnglists (2.17.3): typed entries.
  ByteReader reader(sections_.debug_rnglists, where(".debug_rnglists"));
  FS_TRY_DISCARD(reader.seek(offset));
  for (std::size_t n = 0; n < kMaxListEntries; ++n) {
    FS_TRY(entry, read_entry(reader, unit, false));
    switch (entry->kind) {
      case Entry::Kind::end: return ranges;
      case Entry::Kind::base: base = entry->low; break;
      case Entry::Kind::offsets: add(base + entry->low, base + entry->high); break;
      case Entry::Kind::bounds: add(entry->low, entry->high); break;
      case Entry::Kind::everywhere: break;  // location lists only
    }
  }
  return fail(where(".debug_rnglists list at "), hex(offset), " has no end");
}

Result<std::vector<LocationListEntry>> DwarfLists::locations(std::uint64_t offset, const ListUnit& unit) const {
  std::vector<LocationListEntry> entries;
  std::uint64_t base = unit.base_address;
  auto add = [&](std::uint64_t low, std::uint64_t high, std::span<const std::byte> expression) {
    if (high > low) entries.push_back({{low, high}, std::vector<std::byte>(expression.begin(), expression.end())});
  };
  if (unit.version < 5) {
    // DWARF 4 .debug_loc (2.6.2): pairs relative to the base, then a 2-byte length and the expression.
    ByteReader reader(sections_.debug_loc, where(".debug_loc"));
    FS_TRY_DISCARD(reader.seek(offset));
    for (std::size_t n = 0; n < kMaxListEntries; ++n) {
      FS_TRY(low, reader.fixed<std::uint64_t>());
      FS_TRY(high, reader.fixed<std::uint64_t>());
      if (*low == 0 && *high == 0) return entries;
      if (*low == ~std::uint64_t{0}) {
        base = *high;
        continue;
      }
      FS_TRY(length, reader.fixed<std::uint16_t>());
      FS_TRY(expression, reader.bytes(*length));
      add(base + *low, base + *high, *expression);
    }
    return fail(where(".debug_loc list at "), hex(offset), " has no end");
  }
  // DWARF 5 .debug_loclists (2.6.2): typed entries, each bounded one followed by its expression.
  ByteReader reader(sections_.debug_loclists, where(".debug_loclists"));
  FS_TRY_DISCARD(reader.seek(offset));
  for (std::size_t n = 0; n < kMaxListEntries; ++n) {
    FS_TRY(entry, read_entry(reader, unit, true));
    switch (entry->kind) {
      case Entry::Kind::end: return entries;
      case Entry::Kind::base: base = entry->low; break;
      case Entry::Kind::offsets: add(base + entry->low, base + entry->high, entry->expression); break;
      case Entry::Kind::bounds: add(entry->low, entry->high, entry->expression); break;
      case Entry::Kind::everywhere: add(0, ~std::uint64_t{0}, entry->expression); break;
    }
  }
  return fail(where(".debug_loclists list at "), hex(offset), " has no end");
}

}  // namespace fiberscope::binary
