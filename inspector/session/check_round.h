// CheckRound: one round of `fiberscope check` — one inspection of a live process or a core, the checks of checks/
// run on it after the target was released, and the report model report/check_reporter.h prints. `check --watch`
// takes one round per snapshot with one ModuleCache and prints only the findings that persist.
//
//   session::ModuleCache modules;
//   auto round = session::check_round({.pid = 4242}, modules);
//   if (round && round->table_problem.empty()) out += report::render_check_text(round->report, ...);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "checks/checks.h"
#include "report/check_reporter.h"
#include "session/inspection.h"

namespace fiberscope::session {

// What to check: a live process (pid), or a core file when core_path is set.
struct CheckTarget {
  int pid = 0;
  bool stop = true;  // false: --no-stop, read the running process (torn records become transients)
  std::optional<std::string> core_path;
  CoreInspectOptions core;
};

struct CheckRound {
  report::CheckReport report;
  std::string table_problem;  // why nothing was checked (no fiber table, or an unusable one); empty otherwise
  // Chunks of the table that could not be read (unmapped, a capacity past the caps, cut off by a truncated core):
  // the fibers in them went unchecked, so a clean result would be a lie.
  std::vector<std::string> unread_chunks;
};

// Takes one snapshot of `target` and runs every check on it. Fails only when the target cannot be inspected at all
// (no such process, no permission, not a core); a missing fiber table is `table_problem`.
Result<CheckRound> check_round(const CheckTarget& target, ModuleCache& cache);

// Findings that persist: those of `current` whose identity (fiber, kind, rule, frame) is also in `previous`.
std::vector<checks::Finding> persistent_findings(const std::vector<checks::Finding>& previous,
                                                 const std::vector<checks::Finding>& current);

}  // namespace fiberscope::session
