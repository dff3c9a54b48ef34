// CoreDump: `fiberscope gcore` without the printing. Reads everything that needs no stop first (the memory map,
// auxv, the command line and, for fibers as threads, the modules that locate the fiber table), stops the process
// once (target::capture_live), writes its core from the stopped process (target::write_core), and leaves it
// running. With fibers_as_threads every parked fiber is also written as an extra thread (its saved context, tid
// kFiberThreadTidBase and up), so gdb's `thread apply all bt` shows each fiber's stack.
//
//   auto written = session::write_core_dump(4242, {.output_path = "core.4242"});
//   if (written) print(written->summary.file_bytes, written->pause_ms, written->warnings);
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "target/core_writer.h"

namespace fiberscope::session {

struct CoreDumpOptions {
  std::string output_path;
  bool fibers_as_threads = false;
};

struct CoreDump {
  target::CoreWriteSummary summary;
  std::size_t threads = 0;                    // the process's threads written
  std::size_t threads_without_registers = 0;  // of those, threads whose registers could not be read
  std::size_t fiber_threads = 0;              // parked fibers written as extra threads
  std::optional<double> pause_ms;             // how long the process was stopped
  std::vector<std::string> warnings;          // the stop's, then those before it, then the writer's
};

// Writes the core of process `pid`. Fails, leaving no core, when the process does not exist, cannot be stopped
// or the file cannot be written; unreadable memory or registers are in `summary` and the warnings.
Result<CoreDump> write_core_dump(int pid, const CoreDumpOptions& options);

}  // namespace fiberscope::session
