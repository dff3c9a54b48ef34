// The checks of checks.h. Work in progress: names and the report adapter first.
#include "checks/checks.h"

namespace fiberscope::checks {

std::string_view finding_kind_name(FindingKind kind) {
  switch (kind) {
    case FindingKind::invalid_syscall_frame: return "invalid-syscall-frame";
    case FindingKind::stale_live_argument: return "stale-live-argument";
  }
  return "?";
}

std::string_view rule_name(SyscallFrameRule rule) {
  switch (rule) {
    case SyscallFrameRule::outside_stack: return "outside-stack";
    case SyscallFrameRule::below_live_frame: return "below-live-frame";
    case SyscallFrameRule::names_no_frame: return "names-no-frame";
  }
  return "?";
}

std::string Finding::identity() const { return {}; }

CheckResult run_checks(const CheckInput&, const CheckOptions&) { return {}; }

report::Finding to_report_finding(const Finding&) { return {}; }

std::vector<std::string> evidence_lines(const Finding&) { return {}; }

}  // namespace fiberscope::checks
