// CfiBuilder: hand-assembled .eh_frame / .debug_frame bytes for the unwind unit tests.
//
//   CfiBuilder cfi;
//   auto cie = cfi.cie({0x0c, 7, 8, 0x90, 1});          // def_cfa rsp+8; rip at cfa-8
//   cfi.fde(cie, 0x1000, 0x100, {0x41, 0x0e, 16});       // advance 1; def_cfa_offset 16
//   auto section = CfiSection::eh_frame(cfi.bytes(), 0x5000);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace fiberscope::unwind::testing {

class CfiBuilder {
 public:
  explicit CfiBuilder(bool debug_frame = false) : debug_frame_(debug_frame) {}

  // A CIE (version 1, code alignment 1, data alignment -8, return address column 16) with augmentation "zR"
  // and absptr FDE addresses (.eh_frame) or no augmentation (.debug_frame). Returns its offset.
  std::size_t cie(const std::vector<std::uint8_t>& instructions, std::string augmentation = "zR") {
    const std::size_t start = bytes_.size();
    u32(0);  // length, patched below
    u32(debug_frame_ ? 0xffffffffu : 0);
    u8(1);
    if (debug_frame_) augmentation.clear();
    for (char c : augmentation) u8(static_cast<std::uint8_t>(c));
    u8(0);
    uleb(1);
    sleb(-8);
    u8(16);
    if (!augmentation.empty()) {
      std::vector<std::uint8_t> data;
      for (char c : augmentation.substr(1)) {
        if (c == 'R') data.push_back(0x00);  // DW_EH_PE_absptr
      }
      uleb(data.size());
      for (auto b : data) u8(b);
    }
    for (auto b : instructions) u8(b);
    patch_length(start);
    return start;
  }

  // An FDE for [begin, begin + size) under the CIE at `cie_offset`. Returns its offset.
  std::size_t fde(std::size_t cie_offset, std::uint64_t begin, std::uint64_t size,
                  const std::vector<std::uint8_t>& instructions, bool with_augmentation_data = true) {
    const std::size_t start = bytes_.size();
    u32(0);
    const std::size_t id_offset = bytes_.size();
    u32(debug_frame_ ? static_cast<std::uint32_t>(cie_offset) : static_cast<std::uint32_t>(id_offset - cie_offset));
    u64(begin);
    u64(size);
    if (!debug_frame_ && with_augmentation_data) uleb(0);
    for (auto b : instructions) u8(b);
    patch_length(start);
    return start;
  }

  void terminator() { u32(0); }
  std::span<const std::byte> bytes() const { return bytes_; }
  std::vector<std::byte>& mutable_bytes() { return bytes_; }

  void u8(std::uint8_t v) { bytes_.push_back(std::byte{v}); }
  void u32(std::uint32_t v) { for (int i = 0; i < 4; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i))); }
  void u64(std::uint64_t v) { for (int i = 0; i < 8; ++i) u8(static_cast<std::uint8_t>(v >> (8 * i))); }
  void uleb(std::uint64_t v) {
    do {
      std::uint8_t b = v & 0x7f;
      v >>= 7;
      u8(v ? (b | 0x80) : b);
    } while (v);
  }
  void sleb(std::int64_t v) {
    for (;;) {
      std::uint8_t b = v & 0x7f;
      v >>= 7;
      const bool done = (v == 0 && !(b & 0x40)) || (v == -1 && (b & 0x40));
      u8(done ? b : (b | 0x80));
      if (done) return;
    }
  }

 private:
  void patch_length(std::size_t start) {
    const auto length = static_cast<std::uint32_t>(bytes_.size() - start - 4);
    for (int i = 0; i < 4; ++i) bytes_[start + i] = std::byte{static_cast<std::uint8_t>(length >> (8 * i))};
  }

  bool debug_frame_;
  std::vector<std::byte> bytes_;
};

// Appends ULEB128 `v` to an instruction list.
inline void append_uleb(std::vector<std::uint8_t>& out, std::uint64_t v) {
  do {
    std::uint8_t b = v & 0x7f;
    v >>= 7;
    out.push_back(v ? (b | 0x80) : b);
  } while (v);
}

}  // namespace fiberscope::unwind::testing
