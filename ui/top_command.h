// `fiberscope top`: argument parsing and the run loop — snapshots from a SnapshotPump, keys and drawing
// through a Terminal, the TopScreen in between. The CLI's main() dispatches "top" here.
//
//   bool help = false;
//   auto options = ui::parse_top_arguments(arguments_after_top, help);
//   if (auto done = ui::run_top(*options); !done) report(done.error().message);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace fiberscope::ui {

struct TopOptions {
  int pid = 0;
  std::optional<std::string> core_path;  // --core FILE: one static snapshot of a core file
  std::string exe_path;                  // --exe PATH, with --core: the executable, if not the one the core names
  std::string sysroot;                   // --sysroot DIR, with --core: prefix for every file the core names
  double interval_seconds = 1.0;         // -d SECONDS
  bool stop = true;                      // --no-stop: never ptrace-stop the target
};

// Parses the arguments after "top". `help` is set for --help.
Result<TopOptions> parse_top_arguments(const std::vector<std::string>& arguments, bool& help);

extern const char* const kTopHelp;

// Runs the ui until the user quits. Fails before taking over the terminal when the first snapshot cannot be
// taken (no such process, no permission) or there is no terminal; the terminal is restored on every path.
Result<void> run_top(const TopOptions& options);

}  // namespace fiberscope::ui
