// The check reporters: one round of `fiberscope check` — the findings of checks/ printed under the fiber they
// concern with their evidence (text), or as findings[] for scripts (JSON, docs/json-schema.md "check" section).
//
//   CheckReport round = ...;  // filled by session::check_round
//   out += render_check_text(round, round.result.findings, /*persisting=*/false);
//   out += render_check_json(round, round.result.findings, /*round_number=*/1);
//
// The findings printed are passed apart from the round's own: with --watch they are those that persisted.
// report/ sits above checks/: it prints the checks' results, and checks/ knows nothing of the report model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "checks/checks.h"
#include "report/dump.h"

namespace fiberscope::report {

// One snapshot and what the checks found on it. Plain data: no decoding.
struct CheckReport {
  int pid = 0;
  std::string exe;
  bool from_core = false;
  bool target_stopped = true;
  std::optional<double> pause_ms;
  checks::CheckResult result;
  std::map<std::uint64_t, std::string> fiber_states;  // the state of each fiber with a finding, when the table has it
  std::string fiber_noun = "fiber";  // what the runtime calls its fibers ("goroutine" for Go), as in the dump
  bool fibers_named = true;          // false: no names to print (Go), headers say `goroutine 18 [...]`
  std::vector<std::string> warnings;                  // what the checks could not see (a core's truncation, ...)
};

// The report as text: a summary line, then each finding under its fiber, then transients and errors.
// `persisting` says the findings are those that persisted across two snapshots (--watch).
std::string render_check_text(const CheckReport& report, const std::vector<checks::Finding>& findings,
                              bool persisting);

// The report as one JSON object (schema_version 1, "command": "check") followed by a newline.
std::string render_check_json(const CheckReport& report, const std::vector<checks::Finding>& findings,
                              unsigned round_number);

// The dump's view of a finding (`dump` output and JSON): kind, fiber, frame, and one message with the rule, the
// evidence and the bug class.
Finding dump_finding(const checks::Finding& finding);

}  // namespace fiberscope::report
