// `fiberscope check`: argument parsing, then one round (session/check_round.h) or one per --watch interval, each
// printed by report/check_reporter.h: findings under the fiber they concern (text) or as findings[] (JSON,
// docs/json-schema.md).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace fiberscope::cli {

struct CheckOptions {
  int pid = 0;
  enum class Format : std::uint8_t { text, json } format = Format::text;
  bool stop = true;                            // --no-stop: read the running target (torn records are transient)
  std::optional<double> watch_seconds;         // --watch SECONDS: repeat, report what persists
  std::optional<unsigned> watch_rounds;        // --rounds N: stop --watch after N snapshots (tests, scripts)
  std::optional<std::string> core_path;        // --core FILE: check a core file instead of a process
  std::string exe_path;                        // --exe PATH (with --core)
  std::string sysroot;                         // --sysroot DIR (with --core)
};

// Parses the arguments after "check". `help` is set for --help.
Result<CheckOptions> parse_check_arguments(const std::vector<std::string>& arguments, bool& help);

extern const char* const kCheckHelp;

// Runs the checks, writing the report to `out` and errors to `err`; returns the exit code (cli/dump_command.h).
// With --watch, `flush` (if given) is called after each round to write out and empty both strings.
int run_check(const CheckOptions& options, std::string& out, std::string& err,
              const std::function<void(std::string&, std::string&)>& flush = {});

}  // namespace fiberscope::cli
