#include "unwind/cfi_section.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/hex.h"

namespace fiberscope::unwind {
namespace {

// DW_EH_PE_* (LSB 4.1, table 10-5 and 10-6).
constexpr std::uint8_t kPeOmit = 0xff;
constexpr std::uint8_t kPeIndirect = 0x80;
constexpr std::uint8_t kPeDatarelSdata4 = 0x3b;

std::string entry_name(const char* kind, const char* section, std::uint64_t offset) {
  return std::string(kind) + " at " + section + "+" + hex(offset);
}

// The reader's offset() is relative to the span it was given; these name the entry in the section.
std::span<const std::byte> subspan(std::span<const std::byte> bytes, std::uint64_t offset, std::uint64_t size) {
  return bytes.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(size));
}

}  // namespace

Result<std::uint64_t> read_encoded_pointer(ByteReader& reader, std::uint8_t encoding,
                                           std::uint64_t reader_address, std::uint64_t data_base, bool* indirect) {
  if (encoding == kPeOmit) return fail("pointer encoding DW_EH_PE_omit has no value");
  const std::uint64_t field_address = reader_address + reader.offset();
  std::uint64_t base = 0;
  switch (encoding & 0x70) {
    case 0x00: break;
    case 0x10: base = field_address; break;  // pcrel
    case 0x30:                               // datarel
      if (data_base == 0) return fail("datarel pointer encoding ", hex(encoding), " without a data base");
      base = data_base;
      break;
    case 0x50: {  // aligned: the value is an absptr at the next 8-byte boundary
      const std::uint64_t misalignment = field_address % 8;
      if (misalignment != 0) {
        FS_TRY_DISCARD(reader.bytes(8 - misalignment));
      }
      break;
    }
    default: return fail("unsupported pointer encoding ", hex(encoding));  // textrel/funcrel: not on x86-64
  }
  std::uint64_t value = 0;
  switch (encoding & 0x0f) {
    case 0x00: case 0x04: {
      FS_TRY(v, reader.fixed<std::uint64_t>()); value = *v; break;
    }
    case 0x01: { FS_TRY(v, reader.uleb128()); value = *v; break; }
    case 0x02: { FS_TRY(v, reader.fixed<std::uint16_t>()); value = *v; break; }
    case 0x03: { FS_TRY(v, reader.fixed<std::uint32_t>()); value = *v; break; }
    case 0x09: {
      FS_TRY(v, reader.sleb128());
      value = static_cast<std::uint64_t>(*v); break;
    }
    case 0x0a: {
      FS_TRY(v, reader.fixed<std::int16_t>());
      value = static_cast<std::uint64_t>(static_cast<std::int64_t>(*v)); break;
    }
    case 0x0b: {
      FS_TRY(v, reader.fixed<std::int32_t>());
      value = static_cast<std::uint64_t>(static_cast<std::int64_t>(*v)); break;
    }
    case 0x0c: {
      FS_TRY(v, reader.fixed<std::int64_t>());
      value = static_cast<std::uint64_t>(*v); break;
    }
    default: return fail("unsupported pointer format in encoding ", hex(encoding));
  }
  // Relative encodings wrap modulo 2^64 by definition (a negative sdata4 offset), so plain addition is right.
  value += base;
  *indirect = (encoding & kPeIndirect) != 0;
  return value;
}

CfiSection CfiSection::eh_frame(std::span<const std::byte> bytes, std::uint64_t address,
                                std::span<const std::byte> hdr, std::uint64_t hdr_address) {
  CfiSection section;
  section.format_ = CfiFormat::eh_frame;
  section.bytes_ = bytes;
  section.address_ = address;
  section.hdr_ = hdr;
  section.hdr_address_ = hdr_address;
  section.parse_search_table();
  return section;
}

CfiSection CfiSection::debug_frame(std::span<const std::byte> bytes) {
  CfiSection section;
  section.format_ = CfiFormat::debug_frame;
  section.bytes_ = bytes;
  return section;
}

// .eh_frame_hdr (LSB 4.1 "The .eh_frame_hdr section"): a table of (initial location, FDE address) pairs sorted by
// location. We only binary-search the datarel|sdata4 form every linker emits; anything else falls back to the index.
void CfiSection::parse_search_table() {
  if (hdr_.size() < 4) return;
  ByteReader reader(hdr_, ".eh_frame_hdr");
  const auto version = reader.fixed<std::uint8_t>();
  const auto eh_frame_ptr_encoding = reader.fixed<std::uint8_t>();
  const auto fde_count_encoding = reader.fixed<std::uint8_t>();
  const auto table_encoding = reader.fixed<std::uint8_t>();
  if (!version || *version != 1 || !table_encoding || *table_encoding != kPeDatarelSdata4) return;
  bool indirect = false;
  auto eh_frame_ptr = read_encoded_pointer(reader, *eh_frame_ptr_encoding, hdr_address_, hdr_address_, &indirect);
  if (!eh_frame_ptr || indirect || *eh_frame_ptr != address_) return;  // a table for some other .eh_frame
  if (*fde_count_encoding == kPeOmit) return;
  auto count = read_encoded_pointer(reader, *fde_count_encoding, hdr_address_, hdr_address_, &indirect);
  if (!count || indirect || *count == 0 || *count > reader.remaining() / 8) return;
  table_offset_ = reader.offset();
  table_count_ = static_cast<std::size_t>(*count);
}

Result<CfiSection::EntryHeader> CfiSection::read_header(std::uint64_t offset) const {
  if (offset >= bytes_.size()) return fail("entry offset ", hex(offset), " is past the end of ", name());
  ByteReader reader(bytes_.subspan(static_cast<std::size_t>(offset)), entry_name("entry", name(), offset));
  EntryHeader header;
  header.offset = offset;
  auto length32 = reader.fixed<std::uint32_t>();
  if (!length32) return fail("truncated entry at ", name(), "+", hex(offset));
  std::uint64_t length = *length32;
  if (length == 0) {
    header.is_terminator = true;
    header.body_offset = header.end_offset = offset + 4;
    return header;
  }
  if (*length32 == 0xffffffffu) {
    auto length64 = reader.fixed<std::uint64_t>();
    if (!length64) return fail("truncated 64-bit entry at ", name(), "+", hex(offset));
    length = *length64;
    header.is_64bit = true;
  }
  header.body_offset = offset + reader.offset();
  if (length > reader.remaining()) {
    return fail("truncated entry at ", name(), "+", hex(offset), ": length ", hex(length), " but only ",
                hex(reader.remaining()), " bytes left");
  }
  header.end_offset = header.body_offset + length;
  std::uint64_t id = 0;
  const std::uint64_t id_offset = header.body_offset;
  // .debug_frame's CIE id grows with the 64-bit format; .eh_frame's CIE pointer stays 4 bytes (LSB 4.1).
  if (header.is_64bit && format_ == CfiFormat::debug_frame) {
    auto v = reader.fixed<std::uint64_t>();
    if (!v) return fail("truncated entry at ", name(), "+", hex(offset), ": no CIE id");
    id = *v;
  } else {
    auto v = reader.fixed<std::uint32_t>();
    if (!v) return fail("truncated entry at ", name(), "+", hex(offset), ": no CIE id");
    id = *v;
  }
  header.after_id = offset + reader.offset();
  if (header.after_id > header.end_offset) return fail("truncated entry at ", name(), "+", hex(offset));
  if (format_ == CfiFormat::eh_frame) {
    // .eh_frame: 0 marks a CIE; otherwise the distance back from this field to the CIE.
    header.is_cie = id == 0;
    if (!header.is_cie) {
      if (id > id_offset) return fail("FDE at ", name(), "+", hex(offset), ": CIE pointer points before the section");
      header.cie_offset = id_offset - id;
    }
  } else {
    header.is_cie = header.is_64bit ? id == ~std::uint64_t{0} : id == 0xffffffffu;
    if (!header.is_cie) header.cie_offset = id;
  }
  return header;
}

Result<Cie> CfiSection::parse_cie(std::uint64_t offset) const {
  FS_TRY(header, read_header(offset));
  const std::string what = entry_name("CIE", name(), offset);
  if (header->is_terminator || !header->is_cie) return fail(what, ": not a CIE");
  const auto entry = subspan(bytes_, offset, header->end_offset - offset);
  ByteReader reader(entry, what);
  (void)reader.seek(static_cast<std::size_t>(header->after_id - offset));  // within `entry` by read_header

  Cie cie;
  cie.offset = offset;
  cie.entry = entry;
  FS_TRY(version, reader.fixed<std::uint8_t>());
  cie.version = *version;
  const bool version_ok = format_ == CfiFormat::eh_frame ? (*version == 1 || *version == 3)
                                                         : (*version == 1 || *version == 3 || *version == 4);
  if (!version_ok) return fail(what, ": unsupported CIE version ", std::to_string(*version));

  std::string augmentation;
  for (;;) {
    auto c = reader.fixed<std::uint8_t>();
    if (!c) return fail(what, ": unterminated augmentation string");
    if (*c == 0) break;
    augmentation.push_back(static_cast<char>(*c));
  }
  if (cie.version == 4) {
    auto address_size = reader.fixed<std::uint8_t>();
    auto segment_size = reader.fixed<std::uint8_t>();
    if (!address_size || !segment_size) return fail(what, ": truncated address size");
    if (*address_size != 8 || *segment_size != 0) {
      return fail(what, ": address size ", std::to_string(*address_size), " / segment size ",
                  std::to_string(*segment_size), " (only 8 / 0 supported)");
    }
  }
  FS_TRY(code_alignment, reader.uleb128());
  FS_TRY(data_alignment, reader.sleb128());
  cie.code_alignment = *code_alignment;
  cie.data_alignment = *data_alignment;
  std::uint64_t ra_register = 0;
  if (cie.version == 1) {
    FS_TRY(v, reader.fixed<std::uint8_t>());
    ra_register = *v;
  } else {
    FS_TRY(v, reader.uleb128());
    ra_register = *v;
  }
  if (ra_register > 0xffff) return fail(what, ": return address register ", hex(ra_register), " out of range");
  cie.return_address_register = static_cast<std::uint16_t>(ra_register);

  if (!augmentation.empty()) {
    if (augmentation[0] != 'z') return fail(what, ": unsupported augmentation \"", augmentation, "\"");
    cie.has_augmentation_data = true;
    FS_TRY(data_length, reader.uleb128());
    const std::size_t data_start = reader.offset();
    FS_TRY(data, reader.bytes(*data_length));
    ByteReader aug(*data, what + " augmentation data");
    const std::uint64_t aug_address = address_ + offset + data_start;
    for (std::size_t i = 1; i < augmentation.size(); ++i) {
      switch (augmentation[i]) {
        case 'L': {
          FS_TRY(encoding, aug.fixed<std::uint8_t>());
          cie.lsda_encoding = *encoding;
          break;
        }
        case 'P': {  // the personality routine: decoded only to skip it, never followed
          FS_TRY(encoding, aug.fixed<std::uint8_t>());
          bool indirect = false;
          auto personality = read_encoded_pointer(aug, *encoding, aug_address, 0, &indirect);
          if (!personality) return std::unexpected(personality.error().with_context(what + " personality"));
          break;
        }
        case 'R': {
          FS_TRY(encoding, aug.fixed<std::uint8_t>());
          cie.fde_pointer_encoding = *encoding;
          break;
        }
        case 'S': cie.signal_frame = true; break;
        case 'B': case 'G': break;  // AArch64 flags without data
        default:
          return fail(what, ": unknown augmentation '", std::string(1, augmentation[i]), "' in \"", augmentation, "\"");
      }
    }
  }
  cie.instructions_start = reader.offset();
  return cie;
}

Result<Cie> CfiSection::parse_cie_cached(std::uint64_t offset) const {
  if (auto it = cie_cache_.find(offset); it != cie_cache_.end()) return it->second;
  auto cie = parse_cie(offset);
  if (!cie) return cie;
  if (cie_cache_.size() < kMaxCfiEntries) cie_cache_.emplace(offset, *cie);
  return cie;
}

Result<Fde> CfiSection::parse_fde_with_cie(const EntryHeader& header, const Cie& cie) const {
  const std::string what = entry_name("FDE", name(), header.offset);
  const auto entry = subspan(bytes_, header.offset, header.end_offset - header.offset);
  ByteReader reader(entry, what);
  (void)reader.seek(static_cast<std::size_t>(header.after_id - header.offset));
  Fde fde;
  fde.offset = header.offset;
  fde.cie = cie;
  fde.entry = entry;
  if (format_ == CfiFormat::eh_frame) {
    bool indirect = false;
    const std::uint64_t entry_address = address_ + header.offset;
    auto begin = read_encoded_pointer(reader, cie.fde_pointer_encoding, entry_address, 0, &indirect);
    if (!begin) return std::unexpected(begin.error().with_context(what + " initial location"));
    if (indirect) return fail(what, ": indirect initial location is not supported");
    // The range has the encoding's format but never its application (it is a size, not an address).
    auto range = read_encoded_pointer(reader, cie.fde_pointer_encoding & 0x0f, entry_address, 0, &indirect);
    if (!range) return std::unexpected(range.error().with_context(what + " address range"));
    fde.pc_begin = *begin;
    if (*begin + *range < *begin) return fail(what, ": address range wraps past 2^64");
    fde.pc_end = *begin + *range;
  } else {
    auto begin = reader.fixed<std::uint64_t>();
    auto range = reader.fixed<std::uint64_t>();
    if (!begin || !range) return fail(what, ": truncated address range");
    if (*begin + *range < *begin) return fail(what, ": address range wraps past 2^64");
    fde.pc_begin = *begin;
    fde.pc_end = *begin + *range;
  }
  if (cie.has_augmentation_data) {
    FS_TRY(data_length, reader.uleb128());
    FS_TRY_DISCARD(reader.bytes(*data_length));
  }
  fde.instructions_start = reader.offset();
  return fde;
}

Result<Fde> CfiSection::parse_fde(std::uint64_t offset) const {
  FS_TRY(header, read_header(offset));
  if (header->is_terminator || header->is_cie) return fail(entry_name("FDE", name(), offset), ": not an FDE");
  auto cie = parse_cie_cached(header->cie_offset);
  if (!cie) return std::unexpected(cie.error().with_context(entry_name("FDE", name(), offset)));
  return parse_fde_with_cie(*header, *cie);
}

Result<std::vector<Fde>> CfiSection::all_fdes() const {
  std::vector<Fde> fdes;
  std::uint64_t offset = 0;
  while (offset < bytes_.size() && fdes.size() < kMaxCfiEntries) {
    FS_TRY(header, read_header(offset));
    if (header->is_terminator && format_ == CfiFormat::eh_frame) break;
    if (!header->is_terminator && !header->is_cie) {
      FS_TRY(fde, parse_fde(offset));
      fdes.push_back(*fde);
    }
    offset = header->end_offset;
  }
  return fdes;
}

Result<void> CfiSection::build_index() const {
  index_built_ = true;
  std::uint64_t offset = 0;
  while (offset < bytes_.size() && index_.size() < kMaxCfiEntries) {
    auto header = read_header(offset);
    if (!header) {  // the framing is lost: nothing after this point can be found
      index_error_ = header.error();
      break;
    }
    if (header->is_terminator && format_ == CfiFormat::eh_frame) break;
    if (!header->is_terminator && !header->is_cie) {
      auto cie = parse_cie_cached(header->cie_offset);
      auto fde = cie ? parse_fde_with_cie(*header, *cie)
                     : Result<Fde>(std::unexpected(cie.error().with_context(entry_name("FDE", name(), offset))));
      if (fde && fde->pc_end > fde->pc_begin) {
        index_.push_back({fde->pc_begin, fde->pc_end, offset});
      } else if (!fde && !index_error_) {
        index_error_ = fde.error();  // one bad FDE: remember why, keep indexing the others
      }
    }
    offset = header->end_offset;
  }
  std::sort(index_.begin(), index_.end(),
            [](const IndexEntry& a, const IndexEntry& b) { return a.pc_begin < b.pc_begin; });
  return {};
}

Result<std::optional<Fde>> CfiSection::find_in_table(std::uint64_t pc) const {
  const auto read_entry = [&](std::size_t index, std::uint64_t* location, std::uint64_t* fde_address) {
    std::int32_t pair[2];
    std::memcpy(pair, hdr_.data() + table_offset_ + index * 8, sizeof pair);
    *location = hdr_address_ + static_cast<std::uint64_t>(static_cast<std::int64_t>(pair[0]));
    *fde_address = hdr_address_ + static_cast<std::uint64_t>(static_cast<std::int64_t>(pair[1]));
  };
  // The last entry whose initial location is <= pc.
  std::size_t low = 0, high = table_count_;
  while (low < high) {
    const std::size_t mid = low + (high - low) / 2;
    std::uint64_t location = 0, fde_address = 0;
    read_entry(mid, &location, &fde_address);
    if (location <= pc) low = mid + 1; else high = mid;
  }
  if (low == 0) return std::optional<Fde>();
  std::uint64_t location = 0, fde_address = 0;
  read_entry(low - 1, &location, &fde_address);
  if (fde_address < address_ || fde_address - address_ >= bytes_.size()) {
    return fail(".eh_frame_hdr entry ", std::to_string(low - 1), " points outside .eh_frame (", hex(fde_address), ")");
  }
  FS_TRY(fde, parse_fde(fde_address - address_));
  if (pc < fde->pc_begin || pc >= fde->pc_end) return std::optional<Fde>();
  return std::optional<Fde>(*fde);
}

Result<std::optional<Fde>> CfiSection::find_fde(std::uint64_t pc) const {
  if (uses_search_table()) return find_in_table(pc);
  if (!index_built_) (void)build_index();
  auto it = std::upper_bound(index_.begin(), index_.end(), pc,
                             [](std::uint64_t value, const IndexEntry& e) { return value < e.pc_begin; });
  if (it != index_.begin()) {
    --it;
    if (pc < it->pc_end) {
      FS_TRY(fde, parse_fde(it->fde_offset));
      return std::optional<Fde>(*fde);
    }
  }
  if (index_error_) return std::unexpected(*index_error_);
  return std::optional<Fde>();
}

}  // namespace fiberscope::unwind
