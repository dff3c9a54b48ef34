// The "role goid" lines the Go test programs (tests/programs/go) print before READY, as a map from role to goid.
#pragma once

#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fiberscope::testing {

inline std::map<std::string, std::uint64_t> go_roles(const std::vector<std::string>& lines) {
  std::map<std::string, std::uint64_t> roles;
  for (const std::string& line : lines) {
    std::istringstream words(line);
    std::string role;
    std::uint64_t goid = 0;
    if (words >> role >> goid) roles[role] = goid;
  }
  return roles;
}

}  // namespace fiberscope::testing
