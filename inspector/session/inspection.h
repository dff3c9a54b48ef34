// Inspection: one look at one target — its snapshot, its decoded fiber table and its modules — shared by every
// command (`dump`, `check`, `top`) so that they all see the same data the same way.
//
//   auto inspection = session::inspect_live(pid, {.stop = true});
//   if (!inspection) fail(inspection.error());
//   report::Dump dump = session::build_dump(*inspection, {});      // findings included
//   checks::CheckResult checked = session::run_checks(*inspection); // the checks alone (`check`, `top`)
//   auto post_mortem = session::inspect_core("core.4242", {});       // the same from a core file
//
// Modules and the fiber table's root are resolved before the target is stopped (the pause covers only the copy);
// everything else works on the snapshot after the target was released.
//
// By default the stacks of parked fibers are copied while the target still runs, and the pause re-copies only the
// fibers that moved meanwhile (see fibers/capture_plan.h for the rule). Their frames are exact; locals that other
// fibers write into a parked fiber's stack (a wait node, a value handed over) may be older than the stop.
// LiveOptions::exact_stacks copies every stack inside the pause instead. A core file gives the same Inspection
// (inspect_core): only the snapshot's source differs, the table, modules and dump are built by the same code.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "checks/checks.h"
#include "fibers/fiber_table.h"
#include "report/dump.h"
#include "session/dump_builder.h"
#include "session/module_map.h"
#include "target/snapshot.h"

namespace fiberscope::session {

// Modules kept between inspections of one process (`top`, `check --watch`): the opened ELF/DWARF files and the
// per-pc symbol and CFI caches are reused while the process maps the same files at the same places.
struct ModuleCache {
  std::shared_ptr<ModuleMap> modules;
  std::vector<std::string> key;  // the file-backed mappings `modules` was built from
};

struct LiveOptions {
  bool stop = true;              // false: --no-stop, never ptrace-stop the target
  ModuleCache* cache = nullptr;  // read and refreshed by inspect_live when given
  bool exact_stacks = false;     // true: copy every stack inside the pause (no copy of parked stacks before it)
};

// What copying parked fibers' stacks before the stop achieved (inspect_live with a stop and without exact_stacks).
struct PrecopyStats {
  std::size_t stacks_planned = 0;  // parked fibers whose stacks were copied before the stop
  std::size_t stacks_kept = 0;     // of those, still valid at the stop (the rest were copied again inside it)
  std::uint64_t bytes_copied = 0;  // copied before the stop
  double scan_ms = 0;              // reading the running table
  double copy_ms = 0;              // copying the stacks
};

struct Inspection {
  target::Snapshot snapshot;
  std::optional<fibers::FiberTable> table;  // empty: no runtime in the target, or its table was unusable
  std::optional<Error> table_error;         // why the table was unusable (ABI mismatch, bad magic, ...)
  std::shared_ptr<ModuleMap> modules;
  std::vector<std::string> warnings;        // e.g. "no fiber table found", /proc/PID/maps oddities
  std::string core_path;                    // the core file it was read from, empty for a live process
  std::optional<PrecopyStats> precopy;      // set when parked stacks were copied before the stop
};

// Captures a live process. Fails only when nothing useful can be shown (no such pid, no permission).
Result<Inspection> inspect_live(int pid, const LiveOptions& options);

// The memory map of live process `pid`, the first thing every command that reads one does: fails with
// "no process with pid N" (ErrorCode::no_such_process) when there is none. Oddities in the map go to `warnings`.
Result<std::vector<target::Mapping>> read_process_maps(int pid, std::vector<std::string>& warnings);

// `fiberscope gcore --fibers-as-threads` writes each parked fiber as an extra thread with a tid from here up:
// above PID_MAX_LIMIT (4194304), so they never collide with a real thread. inspect_core leaves them out (their
// fibers are read from the table like any other).
inline constexpr int kFiberThreadTidBase = 1 << 30;

struct CoreInspectOptions {
  std::string exe;      // --exe: the executable, when the core's own record of it is wrong or missing
  std::string sysroot;  // --sysroot: prefix for every file the core names
};

// Opens a core file. Fails only when nothing useful can be read (not a core, unreadable headers); a truncated
// core, missing or mismatched files and a bad table become warnings and errors beside what could be read.
Result<Inspection> inspect_core(const std::string& core_path, const CoreInspectOptions& options);

// "SIGSEGV", "SIGABRT", or "signal 77".
std::string signal_label(int signal);

// The report model of an inspection, with its warnings, table errors and the checks' findings in place.
report::Dump build_dump(Inspection& inspection, const BuildOptions& options);

// Runs every check (checks/) on the inspection's snapshot; no findings without a fiber table. The target was
// released before this: checks add nothing to its pause.
checks::CheckResult run_checks(Inspection& inspection);

}  // namespace fiberscope::session
