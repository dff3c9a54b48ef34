// FileAddressRange: a half-open range of an ELF file's own (unbiased) addresses, as DWARF's ranges, range lists,
// location lists and .debug_aranges give them. target::AddressRange is its counterpart in a process's memory.
#pragma once

#include <cstdint>

namespace fiberscope::binary {

struct FileAddressRange {
  std::uint64_t low = 0;
  std::uint64_t high = 0;  // exclusive
  bool contains(std::uint64_t pc) const { return low <= pc && pc < high; }
};

}  // namespace fiberscope::binary
