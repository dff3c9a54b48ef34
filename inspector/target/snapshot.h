// Snapshot: everything the inspector knows about a target at one instant, from a live process or a core file.
//
// Taking a snapshot is the only time the target is stopped: threads' registers, the memory map, the fiber
// table and the used part of every stack are copied, the target is released, and every later layer
// (unwinding, symbols, checks, reports) works on this object alone. Live and core snapshots are the same type,
// so live and post-mortem output match.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "target/memory.h"
#include "target/registers.h"
#include "target/remote_address.h"

namespace fiberscope::target {

// One line of /proc/PID/maps, or one NT_FILE entry of a core.
struct Mapping {
  AddressRange range;
  std::uint64_t file_offset = 0;
  bool readable = false;
  bool writable = false;
  bool executable = false;
  std::string path;  // empty for anonymous memory; "[stack]", "[vdso]" etc. as the kernel names them
  bool deleted = false;  // the file was deleted or replaced since it was mapped ("(deleted)" in /proc/PID/maps)
  // Where the mapped file's bytes can still be read when `path` no longer holds them: for a deleted (replaced)
  // file of a live process, /proc/PID/map_files/START-END, the kernel's handle on the inode actually mapped.
  // Empty: read `path`.
  std::string open_path;
};

struct ThreadState {
  int tid = 0;
  std::string name;               // /proc/PID/task/TID/comm; empty from a core (it records no thread's name)
  std::optional<Registers> registers;  // empty if they could not be read (the error says why)
  std::string error;
  int signal = 0;                 // core files: the signal that stopped this thread (crashing thread first)
  std::uint64_t fault_address = 0;
};

struct Snapshot {
  int pid = 0;
  std::string exe_path;           // the main executable on disk
  std::vector<ThreadState> threads;
  std::vector<Mapping> mappings;
  std::unique_ptr<Memory> memory; // RegionMemory (live) or the core's memory
  bool target_was_stopped = true; // false for --no-stop snapshots (records may be torn)
  std::optional<double> pause_ms; // how long the target was stopped (live snapshots only)
  std::uint64_t target_clock_ns = 0;  // CLOCK_MONOTONIC at capture, for "time in state"; 0 if unknown
  std::vector<std::string> warnings;  // non-fatal problems met while capturing
};

}  // namespace fiberscope::target
