// Golden-file comparison for output formats: the expected output lives in tests/golden/; set
// FIBERSCOPE_UPDATE_GOLDEN=1 to rewrite it on purpose (and review the diff before committing).
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

namespace fiberscope::testing {

inline void check_golden(const std::string& relative_path, const std::string& actual) {
  const std::string path = std::string(FIBERSCOPE_SOURCE_DIR) + "/tests/golden/" + relative_path;
  const char* update = std::getenv("FIBERSCOPE_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    WARN("rewrote golden file " << path);
    return;
  }
  std::ifstream file(path, std::ios::binary);
  INFO("golden file " << path << " (FIBERSCOPE_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(file.good());
  std::stringstream expected;
  expected << file.rdbuf();
  CHECK(actual == expected.str());
}

}  // namespace fiberscope::testing
