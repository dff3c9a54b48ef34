#include "session/check_round.h"

#include <set>

namespace fiberscope::session {

Result<CheckRound> check_round(const CheckTarget& target, ModuleCache& cache) {
  FS_TRY(inspection, target.core_path ? inspect_core(*target.core_path, target.core)
                                      : inspect_live(target.pid, {.stop = target.stop, .cache = &cache}));
  CheckRound round;
  report::CheckReport& report = round.report;
  report.pid = target.core_path ? inspection->snapshot.pid : target.pid;
  report.from_core = target.core_path.has_value();
  report.exe = inspection->snapshot.exe_path;
  report.target_stopped = inspection->snapshot.target_was_stopped;
  report.pause_ms = inspection->snapshot.pause_ms;
  report.warnings = inspection->warnings;
  // A core's own warnings (truncation, missing or mismatched files) say what the checks could not see.
  if (report.from_core)
    report.warnings.insert(report.warnings.end(), inspection->snapshot.warnings.begin(),
                           inspection->snapshot.warnings.end());
  if (inspection->table_error) round.table_problem = inspection->table_error->message;
  else if (!inspection->table) round.table_problem = "no fiber table found: nothing to check";
  if (inspection->table)
    for (const fibers::TableError& error : inspection->table->errors) {
      using Where = fibers::TableError::Where;
      if (error.where == Where::fiber_chunk || error.where == Where::worker_chunk)
        round.unread_chunks.push_back(error.message);
    }
  report.result = run_checks(*inspection);
  // The fibers' noun and states for the headers the findings are printed under.
  if (inspection->table) {
    report.fiber_noun = inspection->table->fiber_noun;
    report.fibers_named = inspection->table->fibers_named;
  }
  if (inspection->table)
    for (const checks::Finding& finding : report.result.findings)
      if (const fibers::FiberRecord* fiber = inspection->table->fiber_by_id(finding.fiber_id))
        report.fiber_states[finding.fiber_id] = std::string(fibers::state_name(fiber->state));
  return round;
}

std::vector<checks::Finding> persistent_findings(const std::vector<checks::Finding>& previous,
                                                 const std::vector<checks::Finding>& current) {
  std::set<std::string> seen;
  for (const checks::Finding& finding : previous) seen.insert(finding.identity());
  std::vector<checks::Finding> persisting;
  for (const checks::Finding& finding : current)
    if (seen.contains(finding.identity())) persisting.push_back(finding);
  return persisting;
}

}  // namespace fiberscope::session
