// CfiSection: the CIEs and FDEs of one `.eh_frame` (with its `.eh_frame_hdr` search table when present) or
// `.debug_frame` section, parsed from raw section bytes.
//
//   auto eh = CfiSection::eh_frame(bytes, section_address, hdr_bytes, hdr_address);
//   auto fde = eh.find_fde(file_pc);            // Result<std::optional<Fde>>: nothing if no FDE covers the pc
//   auto row = compute_row(*eh, **fde, file_pc); // cfi_program.h
//
// The bytes are hostile: every length, offset and pointer is checked, and errors name the section and offset
// ("FDE at .eh_frame+0x1a4: ..."). Addresses are the file's own (unbiased) addresses. Lookups go through the
// `.eh_frame_hdr` binary-search table when it is usable, otherwise through a sorted index built by one scan of
// the section on first use. Not thread-safe (the index is built lazily).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/byte_reader.h"
#include "base/result.h"

namespace fiberscope::unwind {

enum class CfiFormat : std::uint8_t { eh_frame, debug_frame };

// A Common Information Entry (DWARF 5 section 6.4.1; LSB 4.1 "Exception Frames" for .eh_frame).
struct Cie {
  std::uint64_t offset = 0;               // of its length field in the section
  std::uint8_t version = 0;
  std::uint64_t code_alignment = 1;
  std::int64_t data_alignment = 1;
  std::uint16_t return_address_register = 16;
  std::uint8_t fde_pointer_encoding = 0;  // DW_EH_PE_* of the FDEs' addresses ("R"); absptr by default
  std::uint8_t lsda_encoding = 0xff;      // "L", DW_EH_PE_omit if absent
  bool has_augmentation_data = false;     // "z"
  bool signal_frame = false;              // "S"
  std::span<const std::byte> entry;       // the whole entry, from its length field
  std::size_t instructions_start = 0;     // where the initial instructions start in `entry`
};

// A Frame Description Entry: the pc range [pc_begin, pc_end) and the instructions that describe it.
struct Fde {
  std::uint64_t offset = 0;               // of its length field in the section
  std::uint64_t pc_begin = 0;
  std::uint64_t pc_end = 0;
  Cie cie;
  std::span<const std::byte> entry;       // the whole entry, from its length field
  std::size_t instructions_start = 0;     // where the instructions start in `entry`
};

// Caps on hostile input.
inline constexpr std::size_t kMaxCfiEntries = 1'000'000;

class CfiSection {
 public:
  // `.eh_frame` loaded at file address `address`; `hdr` is `.eh_frame_hdr` (may be empty) at `hdr_address`.
  static CfiSection eh_frame(std::span<const std::byte> bytes, std::uint64_t address,
                             std::span<const std::byte> hdr = {}, std::uint64_t hdr_address = 0);
  // `.debug_frame` (not loaded: FDE addresses are absolute file addresses).
  static CfiSection debug_frame(std::span<const std::byte> bytes);

  CfiFormat format() const { return format_; }
  const char* name() const { return format_ == CfiFormat::eh_frame ? ".eh_frame" : ".debug_frame"; }
  std::span<const std::byte> bytes() const { return bytes_; }
  std::uint64_t address() const { return address_; }
  // True when lookups use the .eh_frame_hdr table (it was present and well-formed).
  bool uses_search_table() const { return table_count_ > 0; }

  // The FDE covering file address `pc`, nothing if none does, or an Error if the section is malformed there.
  Result<std::optional<Fde>> find_fde(std::uint64_t pc) const;

  // The CIE whose length field is at section offset `offset`.
  Result<Cie> parse_cie(std::uint64_t offset) const;
  // The FDE whose length field is at section offset `offset`.
  Result<Fde> parse_fde(std::uint64_t offset) const;

  // Every FDE in section order (for tests and tools); stops at the first malformed entry with its Error.
  Result<std::vector<Fde>> all_fdes() const;

 private:
  struct IndexEntry {
    std::uint64_t pc_begin;
    std::uint64_t pc_end;
    std::uint64_t fde_offset;
  };
  // What the length field and CIE id/pointer of the entry at `offset` say.
  struct EntryHeader {
    std::uint64_t offset = 0;
    std::uint64_t body_offset = 0;   // after the length field
    std::uint64_t end_offset = 0;    // first byte after the entry
    bool is_terminator = false;      // a zero length (.eh_frame's end marker)
    bool is_cie = false;
    std::uint64_t cie_offset = 0;    // FDEs: the section offset of their CIE
    std::uint64_t after_id = 0;      // offset just past the CIE id / CIE pointer
    bool is_64bit = false;
  };

  CfiSection() = default;
  Result<EntryHeader> read_header(std::uint64_t offset) const;
  Result<Cie> parse_cie_cached(std::uint64_t offset) const;
  Result<Fde> parse_fde_with_cie(const EntryHeader& header, const Cie& cie) const;
  void parse_search_table();
  Result<std::optional<Fde>> find_in_table(std::uint64_t pc) const;
  Result<void> build_index() const;

  CfiFormat format_ = CfiFormat::eh_frame;
  std::span<const std::byte> bytes_;
  std::uint64_t address_ = 0;
  std::span<const std::byte> hdr_;
  std::uint64_t hdr_address_ = 0;
  std::size_t table_offset_ = 0;   // offset of the search table in .eh_frame_hdr
  std::size_t table_count_ = 0;    // 0: no usable table

  mutable bool index_built_ = false;
  mutable std::optional<Error> index_error_;
  mutable std::vector<IndexEntry> index_;
  mutable std::unordered_map<std::uint64_t, Cie> cie_cache_;
};

// Reads a DW_EH_PE_* encoded pointer (LSB 4.1 "DWARF Exception Header Encoding") at the reader's offset.
// `reader_address` is the address of the reader's first byte (the base for pcrel and aligned), `data_base` the
// base for datarel (0: none). An indirect pointer is returned as the address where the pointer is stored, with
// `*indirect` set; the caller decides whether it can follow it.
Result<std::uint64_t> read_encoded_pointer(ByteReader& reader, std::uint8_t encoding,
                                           std::uint64_t reader_address, std::uint64_t data_base, bool* indirect);

}  // namespace fiberscope::unwind
