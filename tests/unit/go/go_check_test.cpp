// `fiberscope check` on real Go processes and their cores: go_cgo built against a runtime with Go issue 7978's fix
// reverted (go_cgo_7978) has a goroutine whose syscallsp dangles below its live cgo frame (rule 2 of
// invalid-syscall-frame), live, from gdb's gcore and fiberscope gcore, and from the kernel's core of the runtime's
// own throw; go_cgo built without cgocall's KeepAlive calls (go_cgo_17785) has fn and arg live in cgocall's stack
// map at X but dead at Y (stale-live-argument); go_cgo on Debian's stock runtime gives no finding.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "cli/check_command.h"
#include "cli/dump_command.h"
#include "cli/gcore_command.h"
#include "core/core_test_support.h"
#include "session/check_round.h"
#include "go/go_roles.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::checks::Finding;
using fiberscope::checks::FindingKind;
using fiberscope::checks::SyscallFrameRule;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

// The "role goid" lines a Go test program prints before READY.
std::map<std::string, std::uint64_t> roles_of(const std::vector<std::string>& lines) {
  return testing::go_roles(lines);
}

session::CheckTarget live_target(int pid) {
  session::CheckTarget target;
  target.pid = pid;
  return target;
}

session::CheckRound check_once(const session::CheckTarget& target) {
  session::ModuleCache cache;
  auto round = session::check_round(target, cache);
  REQUIRE(round.has_value());
  INFO("table problem: " << round->table_problem);
  CHECK(round->table_problem.empty());
  return std::move(*round);
}

// The one rule-2 finding go_cgo_7978 must give: on after_callback's goroutine, with a non-empty popped region
// between the dangling syscallsp and the real cgocall frame above it.
void require_popped_syscall_frame(const session::CheckRound& round, std::uint64_t after_callback) {
  const std::vector<Finding>& findings = round.report.result.findings;
  INFO(report::render_check_text(round.report, findings, false));
  REQUIRE(findings.size() == 1);
  const Finding& finding = findings.front();
  CHECK(finding.kind == FindingKind::invalid_syscall_frame);
  CHECK(finding.rule == SyscallFrameRule::below_live_frame);
  CHECK(finding.fiber_id == after_callback);
  REQUIRE(finding.popped.has_value());
  CHECK(finding.popped->start.value() < finding.popped->end.value());
  CHECK(finding.popped->start.value() == finding.syscall_sp);
  CHECK(finding.stack.start.value() <= finding.popped->start.value());
  CHECK(finding.popped->end.value() <= finding.stack.end.value());
  // Text names goroutines as the dump does, without the names Go's goroutines do not have.
  const std::string text = report::render_check_text(round.report, findings, false);
  CHECK(text.find("\ngoroutine " + std::to_string(after_callback) + " [") != std::string::npos);
  CHECK(text.find("goroutines in syscalls or foreign calls checked") != std::string::npos);
  CHECK_FALSE(std::regex_search(text, std::regex(R"(fiber \d)")));
}

}  // namespace

TEST_CASE("check reports go_cgo_7978's after_callback goroutine with a popped syscall frame, live and from cores") {
  TestProcess target({bin("go_cgo_7978")});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target.lines());
  REQUIRE(roles.contains("after_callback"));
  const std::uint64_t after_callback = roles.at("after_callback");

  SECTION("live, through the CLI: exit code 1 and the finding under its goroutine") {
    cli::CheckOptions options;
    options.pid = target.pid();
    std::string out, err;
    CHECK(cli::run_check(options, out, err) == cli::kExitFindings);
    INFO(out << err);
    CHECK(out.find("goroutine " + std::to_string(after_callback) + " [") != std::string::npos);
    CHECK(out.find("finding [invalid-syscall-frame] rule 2 (below-live-frame)") != std::string::npos);
  }
  SECTION("live, the session's findings") {
    require_popped_syscall_frame(check_once(live_target(target.pid())), after_callback);
  }
  SECTION("from fiberscope gcore's core and gdb's gcore") {
    test::TempDir directory;
    const std::string ours = directory.path() + "/ours.core";
    std::string gcore_out, gcore_err;
    REQUIRE(cli::run_gcore({.pid = target.pid(), .output_path = ours}, gcore_out, gcore_err) == cli::kExitClean);
    session::CheckTarget from_ours;
    from_ours.core_path = ours;
    require_popped_syscall_frame(check_once(from_ours), after_callback);

    const std::string gdbs = directory.path() + "/gdb.core";
    const std::string command = "gdb -batch -nx -p " + std::to_string(target.pid()) + " -ex 'gcore " + gdbs +
                                "' >/dev/null 2>&1";
    if (std::system(command.c_str()) != 0 || !std::filesystem::exists(gdbs)) {
      WARN("gdb could not write a core of the Go program: that part is skipped");
      return;
    }
    session::CheckTarget from_gdb;
    from_gdb.core_path = gdbs;
    require_popped_syscall_frame(check_once(from_gdb), after_callback);
  }
}

TEST_CASE("check reports fn and arg of cgocall as stale live arguments on go_cgo_17785, by Go's stack maps") {
  TestProcess target({bin("go_cgo_17785")});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target.lines());
  REQUIRE(roles.contains("in_c"));
  REQUIRE(roles.contains("after_callback"));
  const auto check = [&](const session::CheckRound& round) {
    const std::vector<Finding>& findings = round.report.result.findings;
    INFO(report::render_check_text(round.report, findings, false));
    CHECK(round.report.result.errors.empty());
    // Without KeepAlive, cgocall's stack map at the call to entersyscall (X) holds fn and arg live; at the call to
    // asmcgocall (Y), where the goroutine really is, both are dead.
    for (const char* role : {"in_c", "after_callback"}) {
      std::set<std::string> names;
      for (const Finding& finding : findings) {
        if (finding.fiber_id != roles.at(role)) continue;
        CHECK(finding.kind == FindingKind::stale_live_argument);
        CHECK(finding.frame == "runtime.cgocall");
        REQUIRE(finding.variable.has_value());
        CHECK(finding.variable->location_at_y == "stack map: dead");
        CHECK_FALSE(finding.variable->value_at_x.empty());
        names.insert(finding.variable->name);
      }
      INFO(role);
      CHECK(names == std::set<std::string>{"fn", "arg"});
    }
    CHECK(findings.size() == 4);
  };
  check(check_once(live_target(target.pid())));
  test::TempDir directory;
  const std::string ours = directory.path() + "/ours.core";
  std::string gcore_out, gcore_err;
  REQUIRE(cli::run_gcore({.pid = target.pid(), .output_path = ours}, gcore_out, gcore_err) == cli::kExitClean);
  session::CheckTarget from_core;
  from_core.core_path = ours;
  check(check_once(from_core));
}

TEST_CASE("check finds nothing on go_cgo built with Debian's stock runtime, live and from its core") {
  TestProcess target({bin("go_cgo")});
  REQUIRE(target.wait_for("READY"));
  cli::CheckOptions options;
  options.pid = target.pid();
  std::string out, err;
  CHECK(cli::run_check(options, out, err) == cli::kExitClean);
  INFO(out << err);
  CHECK(out.find("0 findings") != std::string::npos);
  const auto live = check_once(live_target(target.pid()));
  CHECK(live.report.result.findings.empty());
  CHECK(live.report.result.errors.empty());
  // in_c and after_callback are blocked in C (callback_parked and nested run Go inside their callbacks).
  CHECK(live.report.result.fibers_checked >= 2);

  test::TempDir directory;
  const std::string ours = directory.path() + "/ours.core";
  std::string gcore_out, gcore_err;
  REQUIRE(cli::run_gcore({.pid = target.pid(), .output_path = ours}, gcore_out, gcore_err) == cli::kExitClean);
  session::CheckTarget from_core;
  from_core.core_path = ours;
  CHECK(check_once(from_core).report.result.findings.empty());
}

TEST_CASE("the kernel's core of go_cgo_7978's 'syscall frame is no longer valid' throw shows the popped frame") {
  if (auto why = test::kernel_core_unavailable()) {
    WARN("no kernel core can be collected here: " << *why);
    return;
  }
  test::TempDir directory;
  // stdin on a pipe: one byte makes after_callback's C call return into cgocall, where the runtime throws.
  int in[2];
  REQUIRE(::pipe(in) == 0);
  ::setenv("GOTRACEBACK", "crash", 1);
  int out = -1;
  const int saved_stdin = ::dup(STDIN_FILENO);
  ::dup2(in[0], STDIN_FILENO);
  const pid_t pid = test::spawn(bin("go_cgo_7978"), {"-wait-stdin"}, directory.path(), out);
  ::dup2(saved_stdin, STDIN_FILENO);
  ::close(saved_stdin);
  ::close(in[0]);
  ::unsetenv("GOTRACEBACK");
  REQUIRE(pid > 0);
  std::vector<std::string> lines;
  while (auto line = test::read_line(out)) {
    if (*line == "READY") break;
    lines.push_back(*line);
  }
  const auto roles = roles_of(lines);
  REQUIRE(::write(in[1], "x", 1) == 1);
  ::close(in[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out);
  REQUIRE(roles.contains("after_callback"));
  CHECK(WIFSIGNALED(status));
  auto core = test::find_core(directory.path());
  if (!core) {
    WARN("the throw left no core in " << directory.path() << " (is RLIMIT_CORE capped by the hard limit?)");
    return;
  }
  session::CheckTarget from_core;
  from_core.core_path = *core;
  const auto round = check_once(from_core);
  INFO(report::render_check_text(round.report, round.report.result.findings, false));
  // The throw runs on the goroutine that returned from C: it is still in _Gsyscall with the dangling syscallsp.
  bool popped_on_after_callback = false;
  for (const Finding& finding : round.report.result.findings)
    if (finding.fiber_id == roles.at("after_callback") && finding.rule == SyscallFrameRule::below_live_frame &&
        finding.popped && finding.popped->start.value() < finding.popped->end.value())
      popped_on_after_callback = true;
  CHECK(popped_on_after_callback);
}
