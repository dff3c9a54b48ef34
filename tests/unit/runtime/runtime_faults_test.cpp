// The runtime's own checks, provoked on purpose in a child process (tests/programs/runtime_faults): the stale
// syscall frame of Go issue 7978 under FIBERSCOPE_FAULTS, a stack overflow into the guard page, and a send on a
// closed channel.
#include <sys/wait.h>

#include <csignal>
#include <cctype>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "child_process.h"

using namespace std::chrono_literals;

namespace {

const std::string kFaultsProgram = std::string(FIBERSCOPE_TEST_BIN_DIR) + "/runtime_faults";

// The id the program announced with "runtime_faults: ... in fiber <id>" on stderr, or "" if it did not get
// that far. (Plain scanning: GCC 12's <regex> trips -Wmaybe-uninitialized under ASan with -Werror.)
std::string announced_fiber_id(const std::string& stderr_text) {
  std::istringstream lines(stderr_text);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t announcement = line.find("runtime_faults: ");
    if (announcement == std::string::npos) continue;
    const std::size_t at = line.rfind(" in fiber ");
    if (at == std::string::npos || at < announcement) continue;
    std::string digits;
    for (std::size_t i = at + 10; i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); ++i)
      digits += line[i];
    if (!digits.empty()) return digits;
  }
  return "";
}

// The first stderr line that contains `phrase`, or "".
std::string line_with(const std::string& text, const std::string& phrase) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find(phrase) != std::string::npos) return line;
  return "";
}

// Whether `line` contains `number` as a whole number (not as part of a longer one).
bool mentions_number(const std::string& line, const std::string& number) {
  if (number.empty()) return false;
  auto is_digit = [&](std::size_t i) { return i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); };
  for (std::size_t at = line.find(number); at != std::string::npos; at = line.find(number, at + 1))
    if ((at == 0 || !is_digit(at - 1)) && !is_digit(at + number.size())) return true;
  return false;
}

}  // namespace

TEST_CASE("a foreign call with a callback exits cleanly when no fault is injected", "[runtime][faults]") {
  const auto child = runtime_test::run_child({kFaultsProgram, "callback"}, {"FIBERSCOPE_FAULTS="}, 20s);
  INFO("stderr:\n" << child.stderr_text);
  CHECK_FALSE(child.timed_out);
  CHECK(runtime_test::describe_wait_status(child.wait_status) == "exited 0");
}

TEST_CASE("with FIBERSCOPE_FAULTS=stale-syscall-frame the runtime aborts naming the invalid syscall frame "
          "and the fiber",
          "[runtime][faults]") {
  const auto child =
      runtime_test::run_child({kFaultsProgram, "callback"}, {"FIBERSCOPE_FAULTS=stale-syscall-frame"}, 20s);
  INFO("ended: " << runtime_test::describe_wait_status(child.wait_status) << "\nstderr:\n" << child.stderr_text);
  CHECK_FALSE(child.timed_out);
  CHECK(runtime_test::describe_wait_status(child.wait_status) == "killed by SIGABRT");
  const std::string fiber_id = announced_fiber_id(child.stderr_text);
  REQUIRE_FALSE(fiber_id.empty());
  const std::string message = line_with(child.stderr_text, "syscall frame is no longer valid");
  REQUIRE_FALSE(message.empty());
  CHECK(mentions_number(message, fiber_id));
}

TEST_CASE("a fiber that overflows its stack dies by SIGSEGV after the runtime names it", "[runtime][faults]") {
  const auto child = runtime_test::run_child({kFaultsProgram, "overflow"}, {}, 30s);
  INFO("ended: " << runtime_test::describe_wait_status(child.wait_status) << "\nstderr:\n" << child.stderr_text);
  CHECK_FALSE(child.timed_out);
  CHECK(runtime_test::describe_wait_status(child.wait_status) == "killed by SIGSEGV");
  const std::string fiber_id = announced_fiber_id(child.stderr_text);
  REQUIRE_FALSE(fiber_id.empty());
  // The runtime's report: the fiber by name or id (with its stack bounds, which we do not parse).
  std::string report = line_with(child.stderr_text, "deep-recursion");
  if (report.empty() || report.find("runtime_faults:") == 0) {
    report.clear();
    std::istringstream lines(child.stderr_text);
    for (std::string line; std::getline(lines, line);)
      if (line.find("runtime_faults:") != 0 && mentions_number(line, fiber_id)) report = line;
  }
  CHECK_FALSE(report.empty());
}

TEST_CASE("sending on a closed channel aborts, as in Go", "[runtime][faults]") {
  const auto child = runtime_test::run_child({kFaultsProgram, "send-on-closed"}, {}, 20s);
  INFO("stderr:\n" << child.stderr_text);
  CHECK_FALSE(child.timed_out);
  CHECK(runtime_test::describe_wait_status(child.wait_status) == "killed by SIGABRT");
}
