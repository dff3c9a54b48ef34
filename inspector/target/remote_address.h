// RemoteAddress: an address in the target's address space. Never a pointer in ours.
//
// Arithmetic that could wrap (an offset read from the target added to a base) goes through `checked_add`, so a
// hostile size field cannot make a read land somewhere else.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "base/hex.h"

namespace fiberscope::target {

class RemoteAddress {
 public:
  constexpr RemoteAddress() = default;
  constexpr explicit RemoteAddress(std::uint64_t value) : value_(value) {}

  constexpr std::uint64_t value() const { return value_; }
  constexpr bool is_null() const { return value_ == 0; }

  // The address `offset` bytes further, or nothing if that wraps past 2^64.
  constexpr std::optional<RemoteAddress> checked_add(std::uint64_t offset) const {
    if (value_ + offset < value_) return std::nullopt;
    return RemoteAddress(value_ + offset);
  }
  // Unchecked arithmetic for offsets the inspector itself computed (struct fields, small constants).
  constexpr RemoteAddress operator+(std::uint64_t offset) const { return RemoteAddress(value_ + offset); }
  constexpr RemoteAddress operator-(std::uint64_t offset) const { return RemoteAddress(value_ - offset); }
  constexpr std::uint64_t operator-(RemoteAddress other) const { return value_ - other.value_; }

  constexpr auto operator<=>(const RemoteAddress&) const = default;

  std::string to_string() const { return hex(value_); }

 private:
  std::uint64_t value_ = 0;
};

// A half-open address range [start, end).
struct AddressRange {
  RemoteAddress start;
  RemoteAddress end;

  constexpr std::uint64_t size_bytes() const { return end.value() > start.value() ? end - start : 0; }
  constexpr bool contains(RemoteAddress address) const { return start <= address && address < end; }
  constexpr bool contains(RemoteAddress address, std::uint64_t size) const {
    return contains(address) && size <= end - address;
  }
  constexpr bool empty() const { return size_bytes() == 0; }
};

}  // namespace fiberscope::target
