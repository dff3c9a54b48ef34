// ByteReader: the one bounds-checked cursor over bytes from a file or a target (DWARF expressions, CFI, notes).
//
//   ByteReader reader(bytes, "DW_AT_location");
//   auto size = reader.uleb128();          // Error "DW_AT_location: truncated ULEB128 at offset 0x3"
//   auto word = reader.fixed<std::uint32_t>();
//
// Every read checks the remaining length first and fails with the reader's name and offset; nothing is read past
// the span, and LEB128 values longer than 64 bits are rejected rather than silently truncated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

#include "base/hex.h"
#include "base/result.h"

namespace fiberscope::binary {

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  std::size_t offset() const { return offset_; }
  std::size_t size() const { return bytes_.size(); }
  std::size_t remaining() const { return bytes_.size() - offset_; }
  bool at_end() const { return offset_ >= bytes_.size(); }

  // Moves to `offset` (which may equal size(), the end).
  Result<void> seek(std::size_t offset) {
    if (offset > bytes_.size()) return error("seek past the end to", offset);
    offset_ = offset;
    return {};
  }

  // Reads a little-endian fixed-size integer.
  template <class T>
  Result<T> fixed() {
    static_assert(std::is_integral_v<T>);
    if (remaining() < sizeof(T)) return error("truncated operand", offset_);
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  Result<std::uint64_t> uleb128() {
    const std::size_t start = offset_;
    std::uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (at_end()) return error("truncated ULEB128", start);
      const auto byte = std::to_integer<std::uint8_t>(bytes_[offset_++]);
      if (shift >= 64 || (shift == 63 && (byte & 0x7e) != 0)) return error("ULEB128 wider than 64 bits", start);
      value |= std::uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return value;
    }
  }

  Result<std::int64_t> sleb128() {
    const std::size_t start = offset_;
    std::uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (at_end()) return error("truncated SLEB128", start);
      const auto byte = std::to_integer<std::uint8_t>(bytes_[offset_++]);
      if (shift >= 64) return error("SLEB128 wider than 64 bits", start);
      value |= std::uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) {
        if (shift + 7 < 64 && (byte & 0x40)) value |= ~std::uint64_t{0} << (shift + 7);
        return static_cast<std::int64_t>(value);
      }
    }
  }

  // The next `count` bytes as a span, advancing past them.
  Result<std::span<const std::byte>> bytes(std::uint64_t count) {
    if (count > remaining()) return error("truncated block of " + std::to_string(count) + " bytes", offset_);
    auto out = bytes_.subspan(offset_, static_cast<std::size_t>(count));
    offset_ += static_cast<std::size_t>(count);
    return out;
  }

 private:
  std::unexpected<Error> error(std::string_view problem, std::size_t at) const {
    return fail(what_, ": ", problem, " at offset ", hex(at));
  }

  std::span<const std::byte> bytes_;
  std::string what_;
  std::size_t offset_ = 0;
};

}  // namespace fiberscope::binary
