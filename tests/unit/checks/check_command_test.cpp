// `fiberscope check` and `dump` on check_scenarios: exit codes, findings printed under their fiber, --watch
// persistence, JSON, argument validation.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "checks/checks.h"
#include "cli/check_command.h"
#include "cli/dump_command.h"
#include "session/check_round.h"
#include "session/inspection.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::checks::Finding;
using fiberscope::checks::SyscallFrameRule;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

// FIBERSCOPE_FAULTS for the children started while it lives.
class Faults {
 public:
  explicit Faults(const char* faults) { ::setenv("FIBERSCOPE_FAULTS", faults, 1); }
  ~Faults() { ::unsetenv("FIBERSCOPE_FAULTS"); }
  Faults(const Faults&) = delete;
  Faults& operator=(const Faults&) = delete;
};

}  // namespace

TEST_CASE("check and dump print a popped syscall frame under its fiber and exit with 1") {
  Faults faults("stale-syscall-frame");
  TestProcess target({bin("check_scenarios"), "stale-frame"});
  REQUIRE(target.wait_for("READY"));
  // The CLI: exit code 1, the finding under its fiber, and in dump's output too.
  cli::CheckOptions options;
  options.pid = target.pid();
  std::string out, err;
  CHECK(cli::run_check(options, out, err) == cli::kExitFindings);
  INFO(out);
  CHECK(out.find("fiber 2 \"callback-then-block\" [foreign]:\n\tfinding [invalid-syscall-frame] rule 2 "
                 "(below-live-frame)") != std::string::npos);
  CHECK(out.find("popped region") != std::string::npos);
  cli::DumpOptions dump_options;
  dump_options.pid = target.pid();
  std::string dump_out, dump_err;
  CHECK(cli::run_dump(dump_options, dump_out, dump_err) == cli::kExitFindings);
  CHECK(dump_out.find("finding [invalid-syscall-frame]") != std::string::npos);
}

TEST_CASE("check --watch reports only findings that persist across two snapshots") {
  Finding a, b;
  a.fiber_id = 1;
  a.rule = SyscallFrameRule::below_live_frame;
  b.fiber_id = 2;
  b.rule = SyscallFrameRule::names_no_frame;
  CHECK(session::persistent_findings({a}, {a, b}).size() == 1);
  CHECK(session::persistent_findings({}, {a, b}).empty());

  Faults faults("stale-syscall-frame");
  TestProcess target({bin("check_scenarios"), "stale-frame"});
  REQUIRE(target.wait_for("READY"));
  cli::CheckOptions options;
  options.pid = target.pid();
  options.watch_seconds = 0.05;
  options.watch_rounds = 3;
  options.format = cli::CheckOptions::Format::json;
  std::string out, err;
  CHECK(cli::run_check(options, out, err) == cli::kExitFindings);
  CHECK(out.find("\"rule_name\": \"below-live-frame\"") != std::string::npos);
  CHECK(out.find("\"round\": 3") != std::string::npos);
}

TEST_CASE("check's arguments are validated") {
  bool help = false;
  CHECK_FALSE(cli::parse_check_arguments({}, help));
  CHECK_FALSE(cli::parse_check_arguments({"12", "--format", "folded"}, help));
  CHECK_FALSE(cli::parse_check_arguments({"12", "--watch", "-1"}, help));
  CHECK_FALSE(cli::parse_check_arguments({"12", "--rounds", "3"}, help));
  auto options = cli::parse_check_arguments({"12", "--watch", "2", "--format", "json"}, help);
  REQUIRE(options);
  CHECK(options->pid == 12);
  CHECK(options->watch_seconds == 2.0);
  REQUIRE(cli::parse_check_arguments({"--help"}, help));
  CHECK(help);
}

TEST_CASE("check on a fiber table whose chunks cannot be read exits 3 with the reason, never 0 as if clean") {
  TestProcess target({bin("check_scenarios"), "healthy"});
  REQUIRE(target.wait_for("READY"));
  session::ModuleCache modules;
  auto inspection = session::inspect_live(target.pid(), {.cache = &modules});
  REQUIRE(inspection);
  REQUIRE(inspection->table);
  // The root's fiber_chunks (debug_abi.h: offset 32) now points at an unmapped page, as a corrupt runtime might.
  std::uint64_t unmapped = 0x10;
  int mem = ::open(("/proc/" + std::to_string(target.pid()) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(mem >= 0);
  auto at = static_cast<off_t>((inspection->table->root_address + 32).value());
  REQUIRE(::pwrite(mem, &unmapped, sizeof unmapped, at) == static_cast<ssize_t>(sizeof unmapped));
  ::close(mem);
  cli::CheckOptions options;
  options.pid = target.pid();
  std::string out, err;
  CHECK(cli::run_check(options, out, err) == cli::kExitPartial);
  INFO(out << err);
  CHECK(err.find("fibers left unchecked") != std::string::npos);
}
