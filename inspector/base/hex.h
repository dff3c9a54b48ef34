// Formatting helpers shared by error messages and reports.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace fiberscope {

// "0x7ffd1234" (lower-case, no padding).
inline std::string hex(std::uint64_t value) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(value));
  return buffer;
}

}  // namespace fiberscope
