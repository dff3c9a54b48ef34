// `fiberscope dump`: argument parsing and the pipeline target -> fibers -> unwind -> binary -> report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "base/arguments.h"
#include "base/result.h"
#include "report/text_reporter.h"

namespace fiberscope::cli {

// Exit codes of every subcommand (documented in --help).
enum ExitCode : int {
  kExitClean = 0,     // dumped everything, no findings
  kExitFindings = 1,  // a check reported something
  kExitError = 2,     // nothing useful could be done (bad usage, no such pid, no permission, ABI mismatch)
  kExitPartial = 3,   // dumped, but some records or stacks could not be read (listed under errors)
};

struct DumpOptions {
  int pid = 0;
  enum class Format : std::uint8_t { text, json, folded } format = Format::text;
  report::TextOptions::Grouping grouping = report::TextOptions::Grouping::automatic;
  bool stop = true;
  bool exact_stacks = false;             // --exact-stacks: copy every stack inside the pause
  std::optional<std::uint64_t> only_fiber;
  std::size_t max_depth = 1024;
  std::optional<std::string> core_path;  // --core FILE: dump a core file instead of a process
  std::string exe_path;                  // --exe PATH (with --core)
  std::string sysroot;                   // --sysroot DIR (with --core)
};

// Parses the arguments after "dump". `help` is set for --help.
Result<DumpOptions> parse_dump_arguments(const std::vector<std::string>& arguments, bool& help);

extern const char* const kDumpHelp;

// Runs a dump, writing the report to `out` as it is made (fiber by fiber: with 100k fibers the report is never
// held whole) and one-line errors and warnings to `err`, which go after the report. Returns the exit code.
int run_dump(const DumpOptions& options, std::ostream& out, std::string& err);
// The same, with the report in a string.
int run_dump(const DumpOptions& options, std::string& out, std::string& err);

}  // namespace fiberscope::cli
