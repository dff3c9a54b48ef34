#include "session/inspection.h"

#include "fibers/capture_plan.h"
#include "target/live_capture.h"
#include "target/proc_files.h"

namespace fiberscope::session {
namespace {

// What the modules depend on: every file mapped, where, from which offset. Fiber stacks and heap come and go
// between snapshots without changing it.
std::vector<std::string> module_key_of(const std::vector<target::Mapping>& mappings) {
  std::vector<std::string> key;
  for (const target::Mapping& mapping : mappings)
    if (!mapping.path.empty() && mapping.path.front() != '[')
      key.push_back(mapping.range.start.to_string() + " " + hex(mapping.file_offset) + " " + mapping.path);
  return key;
}

}  // namespace

Result<Inspection> inspect_live(int pid, const LiveOptions& options) {
  Inspection inspection;
  auto mappings = target::read_maps(pid, &inspection.warnings);
  if (!mappings) {
    if (mappings.error().code == ErrorCode::no_such_process || mappings.error().code == ErrorCode::unspecified)
      if (!target::exe_path(pid))
        return std::unexpected(Error{"no process with pid " + std::to_string(pid), ErrorCode::no_such_process});
    return std::unexpected(mappings.error());
  }
  std::vector<std::string> key = module_key_of(*mappings);
  if (options.cache && options.cache->modules && options.cache->key == key) {
    inspection.modules = options.cache->modules;
  } else {
    inspection.modules = std::make_shared<ModuleMap>(*mappings, target::exe_path(pid).value_or(""));
    if (options.cache) *options.cache = ModuleCache{inspection.modules, std::move(key)};
  }
  auto root = fibers::locate_debug_root(inspection.modules->symbols());
  if (!root) inspection.warnings.insert(inspection.warnings.begin(), root.error().message);

  // The table is read from the stopped target itself (where its seqlocks mean something); what it says decides
  // which stacks get copied.
  auto planner = [&](const target::Memory& live, const std::vector<target::ThreadState>& threads) {
    if (root) {
      auto read = fibers::read_fiber_table(live, *root, {.target_stopped = options.stop});
      if (read) {
        inspection.table = std::move(*read);
      } else {
        inspection.table_error = read.error();
      }
    }
    return fibers::plan_regions(inspection.table ? &*inspection.table : nullptr, threads, *mappings);
  };
  auto snapshot = target::capture_live(pid, {.stop = options.stop}, planner);
  if (!snapshot) return std::unexpected(snapshot.error());
  inspection.snapshot = std::move(*snapshot);
  if (!options.stop && inspection.table && inspection.snapshot.memory)
    fibers::mark_records_changed_during_capture(*inspection.table, *inspection.snapshot.memory);
  return inspection;
}

report::Dump build_dump(Inspection& inspection, const BuildOptions& options) {
  report::Dump dump = build_dump(inspection.snapshot, inspection.table ? &*inspection.table : nullptr,
                                 *inspection.modules, options);
  dump.warnings.insert(dump.warnings.begin(), inspection.warnings.begin(), inspection.warnings.end());
  if (inspection.table_error)
    dump.errors.insert(dump.errors.begin(), report::DumpError{inspection.table_error->message, {}, {}});
  const checks::CheckResult checked = run_checks(inspection);
  for (const checks::Finding& finding : checked.findings)
    if (!options.only_fiber || finding.fiber_id == *options.only_fiber)
      dump.findings.push_back(checks::to_report_finding(finding));
  return dump;
}

checks::CheckResult run_checks(Inspection& inspection) {
  if (!inspection.table) return {};
  return checks::run_checks({.snapshot = inspection.snapshot,
                             .table = *inspection.table,
                             .symbols = inspection.modules->symbols(),
                             .cfi = inspection.modules->cfi()});
}

}  // namespace fiberscope::session
