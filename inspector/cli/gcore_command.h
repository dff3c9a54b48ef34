// `fiberscope gcore PID [-o FILE] [--fibers-as-threads]`: writes an ELF core of a live process within the same
// short stop as a dump (target::capture_live), then detaches and leaves it running. `fiberscope dump --core`,
// `check --core` and gdb read the result. With --fibers-as-threads every parked fiber is also written as an extra
// thread (its saved context in an NT_PRSTATUS note, with a synthetic tid), so gdb's `thread apply all bt` shows
// each fiber's stack.
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
