// The checks against real programs (tests/programs/checks/check_scenarios) with the runtime's fault switches:
// finding kinds, rules and variable names, not only exit codes. The CLI on top: check_command_test.cpp.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>
#include <string>

#include "checks/checks.h"
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

TEST_CASE("undead-args: the foreign call's arguments live at X and dead at Y are reported by name") {
  // At -O2 foreign_call_without_keepalive keeps fn in rbx and arg in rbp from X up to the trampoline call; after
  // that call (at the return address Y) only their entry values remain. The keep-alive variant holds both in the
  // same registers at X and at Y.
  for (const char* faults : {"", "undead-args"}) {
    INFO("FIBERSCOPE_FAULTS=" << faults);
    Faults set(faults);
    TestProcess target({bin("check_scenarios"), "blocked-foreign"});
    REQUIRE(target.wait_for("READY"));
    auto result = check_once(target.pid());
    INFO(describe(result));
    CHECK(result.errors.empty());
    std::set<std::string> names;
    for (const Finding& finding : result.findings) {
      CHECK(finding.kind == FindingKind::stale_live_argument);
      REQUIRE(finding.variable);
      CHECK(finding.variable->location_at_x != finding.variable->location_at_y);
      CHECK(finding.x->function == finding.y->function);
      names.insert(finding.variable->name);
    }
    if (std::string(faults) == "undead-args") {
      CHECK(names == std::set<std::string>{"fn", "arg"});
    } else {
      CHECK(names.empty());
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
