// Checks: the runtime's invariants verified from outside, on one snapshot (live or core) after the target was
// released. Two checks, exactly as DESIGN.md "The checks" defines them:
//
//   invalid-syscall-frame (Go issue 7978): a fiber in a syscall or foreign call whose saved syscall_sp/syscall_pc
//     is outside its stack (rule 1), lies below its deepest live frame (rule 2: the frames were popped), or does
//     not name the real frame the fiber will resume in (rule 3).
//   stale-live-argument (Go issue 17785): a variable whose DWARF location covers the saved pc X but not the real
//     resume pc Y of the frame that made the foreign call (or covers both in different places), and pointer-valued
//     variables that point into a popped part of a stack or into a finished fiber's stack.
//
//   CheckResult result = run_checks({.snapshot = s, .table = t, .symbols = syms, .cfi = cfi});
//   for (const Finding& finding : result.findings) ... // what, where, evidence, the bug class
//   for (const Transient& t : result.transients) ...    // records caught mid-update: not judged
//
// Everything the checks read is hostile: a bad record gives an error beside the other results, never a crash.
// checks/ sits below report/: it knows nothing of the report model, and report/check_reporter.h prints its results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "binary/symbolizer.h"
#include "fibers/fiber_table.h"
#include "target/remote_address.h"
#include "target/snapshot.h"
#include "unwind/module_cfi.h"

namespace fiberscope::checks {

enum class FindingKind : std::uint8_t { invalid_syscall_frame, stale_live_argument };
// "invalid-syscall-frame", "stale-live-argument".
std::string_view finding_kind_name(FindingKind kind);

// The rule of the invalid-syscall-frame check that failed (DESIGN.md numbers them 1 to 3).
enum class SyscallFrameRule : std::uint8_t {
  outside_stack = 1,     // syscall_sp outside [stack.lo, stack.hi)
  below_live_frame = 2,  // syscall_sp below the deepest live frame: popped frames (7978)
  names_no_frame = 3,    // the pc is not in the frame's function, the unwind from it fails or disagrees
};
// "outside-stack", "below-live-frame", "names-no-frame".
std::string_view rule_name(SyscallFrameRule rule);

// A pc with what the symbols say about it.
struct CodePoint {
  std::uint64_t pc = 0;          // as saved (a return address for X and Y)
  std::string function;          // of pc - 1 for return addresses; empty if unknown
  std::string file;
  unsigned line = 0;
};

// The stale-live-argument evidence about one variable of the frame that made the foreign call.
struct VariableEvidence {
  std::string name;
  std::string type_name;
  bool is_parameter = false;
  std::string location_at_x;     // the DWARF location valid at X, as text ("DW_OP_reg3 (rbx)"), "none" if none
  std::string location_at_y;     // the same at Y
  std::string value_at_x;        // what a reader starting from X would see, evaluated in the real frame
  std::string value_status;      // why value_at_x is empty ("unreadable at 0x.."), "" otherwise
  std::optional<std::uint64_t> pointer_target;  // pointer-valued: the address it holds
  std::string pointer_problem;   // "points into the popped region [..)", "points into dead fiber 12's stack"
};

struct Finding {
  FindingKind kind = FindingKind::invalid_syscall_frame;
  std::optional<SyscallFrameRule> rule;  // invalid_syscall_frame only
  std::uint64_t fiber_id = 0;
  std::string fiber_name;
  std::string frame;             // function of the frame concerned ("fiber::foreign_call"), "" if unknown
  std::string summary;           // one line: what failed, with the key addresses

  // Evidence (fields that do not apply stay empty).
  std::uint64_t syscall_pc = 0, syscall_sp = 0;
  target::AddressRange stack;    // the fiber's stack bounds
  std::optional<std::uint64_t> deepest_live_sp;  // the real sp of the deepest live fiber-stack frame
  std::optional<target::AddressRange> popped;    // rule 2: [syscall_sp, deepest_live_sp)
  std::optional<CodePoint> x;    // the saved syscall_pc
  std::optional<CodePoint> y;    // the real resume pc of the same frame
  std::optional<std::uint64_t> cfa_at_x, cfa_at_y;
  std::optional<VariableEvidence> variable;  // stale_live_argument only
  std::vector<std::string> details;          // further evidence lines ("unwind from X stopped: ...")
  std::string explanation;       // one sentence naming the bug class (Go issue 7978 / 17785)

  // What --watch compares across snapshots: fiber, kind, rule, frame (and variable for 17785).
  std::string identity() const;
};

// A record that was not judged because the reader caught it mid-update (seqlock); never a finding.
struct Transient {
  std::uint64_t fiber_id = 0;
  std::string reason;            // "record in transition", "record torn (--no-stop)"
};

struct CheckResult {
  std::vector<Finding> findings;
  std::vector<Transient> transients;
  std::vector<std::string> errors;  // checks that could not run for a fiber, with why ("fiber 12: no DWARF at X")
  std::size_t fibers_checked = 0;
};

struct CheckInput {
  const target::Snapshot& snapshot;
  const fibers::FiberTable& table;
  binary::Symbolizer& symbols;
  const unwind::CfiSource& cfi;
};

struct CheckOptions {
  std::size_t max_unwind_depth = 256;  // frames per unwind (hostile stacks)
};

// Runs every check on every fiber of the snapshot. Never fails as a whole: per-fiber problems go to `errors`.
CheckResult run_checks(const CheckInput& input, const CheckOptions& options = {});

// The evidence as "key: value" lines, in a fixed order, for text reports.
std::vector<std::string> evidence_lines(const Finding& finding);

}  // namespace fiberscope::checks
