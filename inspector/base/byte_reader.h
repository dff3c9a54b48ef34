// ByteReader: the one bounds-checked cursor over untrusted bytes from a file or a target (DWARF, CFI, core notes
// and headers, ELF notes). It lives in base/ so that every layer, down to target/'s core reader, shares it.
//
//   ByteReader reader(bytes, "DW_AT_location");
//   auto size = reader.uleb128();          // Error "DW_AT_location: truncated ULEB128 at offset 0x3"
//   auto word = reader.fixed<std::uint32_t>();
//   auto header = reader.object<Elf64_Nhdr>();
//
// Every read checks the remaining length first and fails with the reader's name and offset; nothing is read past
// the span, and LEB128 values longer than 64 bits are rejected rather than silently truncated.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/hex.h"
#include "base/result.h"

namespace fiberscope {

class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  std::string_view what() const { return what_; }
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

  // Moves to the next multiple of `alignment` (a power of two), failing if that lies past the end.
  Result<void> align(std::size_t alignment) {
    const std::size_t padding = (alignment - offset_ % alignment) % alignment;
    if (padding > remaining()) return error("padding runs past the end from", offset_);
    offset_ += padding;
    return {};
  }

  // Reads a little-endian fixed-size integer.
  template <class T>
  Result<T> fixed() {
    static_assert(std::is_integral_v<T>);
    if (remaining() < sizeof(T)) return error("truncated operand", offset_);
    return copy<T>();
  }

  // Copies out a record of a fixed layout (Elf64_Nhdr, elf_prstatus), which may be unaligned in the bytes.
  template <class T>
  Result<T> object() {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return error("truncated " + std::to_string(sizeof(T)) + "-byte record", offset_);
    return copy<T>();
  }

  Result<std::uint64_t> uleb128() { return leb128(/*is_signed=*/false); }

  Result<std::int64_t> sleb128() {
    FS_TRY(value, leb128(/*is_signed=*/true));
    return static_cast<std::int64_t>(*value);
  }

  // The next `count` bytes as a span, advancing past them.
  Result<std::span<const std::byte>> bytes(std::uint64_t count) {
    if (count > remaining()) return error("truncated block of " + std::to_string(count) + " bytes", offset_);
    auto out = bytes_.subspan(offset_, static_cast<std::size_t>(count));
    offset_ += static_cast<std::size_t>(count);
    return out;
  }

  // The `count` bytes at `offset`, leaving the cursor where it is.
  Result<std::span<const std::byte>> bytes_at(std::uint64_t offset, std::uint64_t count) const {
    ByteReader there(*this);
    FS_TRY_DISCARD(there.seek(offset));
    return there.bytes(count);
  }

  // The record of type T at `offset`, leaving the cursor where it is.
  template <class T>
  Result<T> object_at(std::uint64_t offset) const {
    FS_TRY(bytes, bytes_at(offset, sizeof(T)));
    return ByteReader(*bytes, what_).object<T>();  // cannot fail: exactly sizeof(T) bytes
  }

  // Reads a NUL-terminated string and moves past its NUL; the text is returned without it.
  Result<std::string_view> c_string() {
    const auto rest = bytes_.subspan(offset_);
    const auto nul = std::find(rest.begin(), rest.end(), std::byte{0});
    if (nul == rest.end()) return error("string without a terminating NUL", offset_);
    const std::string_view text(reinterpret_cast<const char*>(rest.data()),
                                static_cast<std::size_t>(nul - rest.begin()));
    offset_ += text.size() + 1;
    return text;
  }

 private:
  // Callers have checked that sizeof(T) bytes remain.
  template <class T>
  T copy() {
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  // DWARF 5 section 7.6: seven bits a byte, least significant first, the high bit set on all but the last; a signed
  // value is sign-extended from bit 6 of its last byte. An unsigned value may use only bit 63 of a tenth byte.
  Result<std::uint64_t> leb128(bool is_signed) {
    const std::size_t start = offset_;
    const std::string_view kind = is_signed ? "SLEB128" : "ULEB128";
    std::uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (at_end()) return error("truncated " + std::string(kind), start);
      const auto byte = std::to_integer<std::uint8_t>(bytes_[offset_++]);
      if (shift >= 64 || (!is_signed && shift == 63 && (byte & 0x7e) != 0))
        return error(std::string(kind) + " wider than 64 bits", start);
      value |= std::uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) {
        if (is_signed && shift + 7 < 64 && (byte & 0x40)) value |= ~std::uint64_t{0} << (shift + 7);
        return value;
      }
    }
  }

  std::unexpected<Error> error(std::string_view problem, std::size_t at) const {
    return fail(what_, ": ", problem, " at offset ", hex(at));
  }

  std::span<const std::byte> bytes_;
  std::string what_;
  std::size_t offset_ = 0;
};

}  // namespace fiberscope
