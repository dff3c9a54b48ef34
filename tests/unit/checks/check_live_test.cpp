// The checks against real programs (tests/programs/checks/check_scenarios) with the runtime's fault switches:
// finding kinds, rules and variable names, not only exit codes.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "checks/checks.h"
#include "cli/check_command.h"
#include "cli/dump_command.h"
#include "session/inspection.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::checks::Finding;
using fiberscope::checks::FindingKind;
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

checks::CheckResult check_once(int pid, bool stop = true) {
  auto inspection = session::inspect_live(pid, {.stop = stop});
  REQUIRE(inspection);
  REQUIRE(inspection->table);
  return session::run_checks(*inspection);
}

std::string describe(const checks::CheckResult& result) {
  std::string text;
  for (const Finding& finding : result.findings) text += finding.identity() + ": " + finding.summary + "\n";
  for (const auto& transient : result.transients) text += "transient " + transient.reason + "\n";
  for (const auto& error : result.errors) text += "error " + error + "\n";
  return text;
}

}  // namespace

TEST_CASE("a syscall frame saved inside a returned callback is reported by rule 2 while the fiber is blocked in C") {
  Faults faults("stale-syscall-frame");
  TestProcess target({bin("check_scenarios"), "stale-frame"});
  REQUIRE(target.wait_for("READY"));
  auto result = check_once(target.pid());
  INFO(describe(result));
  REQUIRE(result.findings.size() == 1);
  const Finding& finding = result.findings[0];
  CHECK(finding.kind == FindingKind::invalid_syscall_frame);
  CHECK(finding.rule == SyscallFrameRule::below_live_frame);
  CHECK(finding.fiber_name == "callback-then-block");
  REQUIRE(finding.popped);
  CHECK(finding.popped->start.value() == finding.syscall_sp);
  CHECK(finding.popped->end.value() == finding.deepest_live_sp);
  CHECK(finding.popped->size_bytes() > 0);
  REQUIRE(finding.x);
  CHECK(finding.x->function.find("callback_run") != std::string::npos);
  REQUIRE(finding.y);
  CHECK(finding.y->function.find("foreign_call") != std::string::npos);

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

TEST_CASE("the same program without the fault gives no finding") {
  TestProcess target({bin("check_scenarios"), "stale-frame"});
  REQUIRE(target.wait_for("READY"));
  auto result = check_once(target.pid());
  INFO(describe(result));
  CHECK(result.findings.empty());
  CHECK(result.fibers_checked == 1);
}

TEST_CASE("fibers blocked in every healthy way give no finding") {
  TestProcess target({bin("check_scenarios"), "healthy"});
  REQUIRE(target.wait_for("READY"));
  auto result = check_once(target.pid());
  INFO(describe(result));
  CHECK(result.findings.empty());
  CHECK(result.errors.empty());
  CHECK(result.fibers_checked == 4);  // a syscall, a foreign call, a syscall in a callback, three-deep nesting
}

TEST_CASE("a fiber record corrupted on purpose is reported by the matching rule") {
  struct Case {
    const char* mode;
    SyscallFrameRule rule;
    const char* says;
  };
  for (const Case& c : {Case{"corrupt=outside", SyscallFrameRule::outside_stack, "outside the fiber's stack"},
                        Case{"corrupt=wrong-function", SyscallFrameRule::names_no_frame, "leave_a_pointer"},
                        Case{"corrupt=no-frame", SyscallFrameRule::names_no_frame, "CFA"}}) {
    INFO(c.mode);
    TestProcess target({bin("check_scenarios"), c.mode});
    REQUIRE(target.wait_for("CORRUPTED"));
    auto result = check_once(target.pid());
    INFO(describe(result));
    REQUIRE(result.findings.size() == 1);
    CHECK(result.findings[0].kind == FindingKind::invalid_syscall_frame);
    CHECK(result.findings[0].rule == c.rule);
    CHECK(result.findings[0].fiber_name == "corrupted");
    CHECK(result.findings[0].summary.find(c.says) != std::string::npos);
  }
}

TEST_CASE("a live pointer argument into a finished fiber's stack is reported") {
  TestProcess target({bin("check_scenarios"), "dangling"});
  REQUIRE(target.wait_for("READY"));
  auto result = check_once(target.pid());
  INFO(describe(result));
  REQUIRE(result.findings.size() == 1);
  const Finding& finding = result.findings[0];
  CHECK(finding.kind == FindingKind::stale_live_argument);
  CHECK(finding.fiber_name == "dangling-caller");
  REQUIRE(finding.variable);
  CHECK(finding.variable->name == "arg");
  CHECK(finding.variable->pointer_problem.find("finished fiber") != std::string::npos);
  CHECK(finding.variable->pointer_problem.find("short-lived") != std::string::npos);
}

TEST_CASE("undead-args: the foreign call's arguments are compared at X and Y (return address - 1)") {
  // At -O2 foreign_call_without_keepalive keeps fn in rbx and arg in rbp up to and including the trampoline call:
  // their location lists end exactly at Y (view 1), so at Y - 1 they still cover both pcs in the same place.
  // The runtime does not yet produce the X/Y difference this convention can see (reported to the lead); this
  // test pins what the check says about the real binary either way: no finding without the fault, and with it
  // only stale-live-argument findings naming foreign_call's own variables.
  for (const char* faults : {"", "undead-args"}) {
    INFO("FIBERSCOPE_FAULTS=" << faults);
    Faults set(faults);
    TestProcess target({bin("check_scenarios"), "blocked-foreign"});
    REQUIRE(target.wait_for("READY"));
    auto result = check_once(target.pid());
    INFO(describe(result));
    CHECK(result.errors.empty());
    for (const Finding& finding : result.findings) {
      CHECK(std::string(faults) == "undead-args");
      CHECK(finding.kind == FindingKind::stale_live_argument);
      REQUIRE(finding.variable);
      CHECK((finding.variable->name == "fn" || finding.variable->name == "arg"));
    }
  }
}

TEST_CASE("a healthy process churning fibers gives zero findings over 200 consecutive snapshots") {
  TestProcess target({bin("check_scenarios"), "churn"});
  REQUIRE(target.wait_for("READY"));
  std::size_t checked = 0, transients = 0;
  for (int round = 0; round < 200; ++round) {
    auto result = check_once(target.pid());
    INFO("round " << round << "\n" << describe(result));
    REQUIRE(result.findings.empty());
    checked += result.fibers_checked;
    transients += result.transients.size();
  }
  CHECK(checked > 0);  // the churn was caught in syscalls and foreign calls
  WARN("fibers checked over 200 snapshots: " << checked << ", transient: " << transients);
}

TEST_CASE("in --no-stop mode torn records are transient, never findings") {
  TestProcess target({bin("check_scenarios"), "churn"});
  REQUIRE(target.wait_for("READY"));
  for (int round = 0; round < 30; ++round) {
    auto result = check_once(target.pid(), false);
    INFO("round " << round << "\n" << describe(result));
    REQUIRE(result.findings.empty());
  }
}

TEST_CASE("--watch reports only findings that persist across two snapshots") {
  Finding a, b;
  a.fiber_id = 1;
  a.rule = SyscallFrameRule::below_live_frame;
  b.fiber_id = 2;
  b.rule = SyscallFrameRule::names_no_frame;
  CHECK(cli::persistent_findings({a}, {a, b}).size() == 1);
  CHECK(cli::persistent_findings({}, {a, b}).empty());

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
