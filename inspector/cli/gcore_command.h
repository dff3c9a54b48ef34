// `fiberscope gcore PID [-o FILE] [--fibers-as-threads]`: argument parsing, and the summary of the core that
// session::write_core_dump (session/core_dump.h) wrote within one short stop of the process, which it then leaves
// running. `fiberscope dump --core`, `check --core` and gdb read the result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace fiberscope::cli {

struct GcoreOptions {
  int pid = 0;
  std::string output_path;         // -o FILE; default core.PID in the current directory
  bool fibers_as_threads = false;  // --fibers-as-threads
};

// Parses the arguments after "gcore". `help` is set for --help.
Result<GcoreOptions> parse_gcore_arguments(const std::vector<std::string>& arguments, bool& help);

extern const char* const kGcoreHelp;

// Writes the core, printing its path, size and the pause to `out` and errors and warnings to `err`. Returns the
// exit code (cli/dump_command.h): 0 written, 3 written with unreadable memory or threads, 2 not written.
int run_gcore(const GcoreOptions& options, std::string& out, std::string& err);

}  // namespace fiberscope::cli
