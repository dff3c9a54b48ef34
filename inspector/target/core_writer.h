// Writing an ELF core of a stopped process: what `fiberscope gcore PID` produces, and what gdb and open_core read.
//
//   // while the target is stopped (inside the capture):
//   auto written = write_core(snapshot, live_memory, {.auxv = auxv_bytes}, "core.4242");
//
// The core holds a PT_NOTE (NT_PRSTATUS per thread, NT_PRPSINFO, NT_AUXV, NT_FILE) and one PT_LOAD per mapping.
// Contents policy, close to gdb's gcore: anonymous and writable memory, the vdso and stacks are written whole, and
// so is the read-only data of loaded modules (it includes RELRO, which the dynamic loader wrote); the code of
// file-backed modules is left to the files on disk, except a first page holding the ELF header (so readers can
// check the build-id), and so are read-only mappings of plain data files (locale archives...). With
// `write_read_only_files` everything readable is written. Memory is streamed in chunks and all-zero pages are
// left as holes, so neither the process nor the file is ever held in RAM. The file appears atomically (temp file
// + rename) with mode 0600, as it holds the process's secrets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "target/memory.h"
#include "target/registers.h"
#include "target/snapshot.h"

namespace fiberscope::target {

// A thread that exists only in the core: `--fibers-as-threads` describes each parked fiber as one.
struct ExtraThread {
  int tid = 0;  // synthetic; must not collide with the process's real thread ids
  Registers registers;
};

struct CoreWriteOptions {
  std::vector<std::byte> auxv;              // /proc/PID/auxv, written as NT_AUXV when not empty
  std::vector<ExtraThread> extra_threads;   // extra NT_PRSTATUS notes, after the real threads
  std::string command_line;                 // NT_PRPSINFO's pr_psargs (cut to 79 bytes); default: the name
  bool write_read_only_files = false;       // true: also write read-only file-backed memory in full
  std::uint64_t chunk_bytes = 1u << 20;     // memory is read and written this much at a time
  // Cap on memory contents written; mappings past it keep their PT_LOAD without contents, with a warning. Guards
  // against terabyte reservations (sanitizer shadow memory) that are readable but never touched.
  std::uint64_t max_memory_bytes = std::uint64_t{64} << 30;
};

struct CoreWriteSummary {
  std::uint64_t file_bytes = 0;        // size of the core file (holes included)
  std::uint64_t memory_bytes = 0;      // memory contents the core holds
  std::uint64_t written_bytes = 0;     // of those, bytes written to the file: pages of zeros are left as holes
  std::uint64_t unreadable_bytes = 0;  // of those, pages the Memory could not read, written as zeros
  std::vector<std::string> warnings;   // threads without registers, unreadable pages...
};

// Writes `snapshot`'s threads and mappings, with memory read from `full_memory` (the stopped live process), as
// an ELF core at `path`. Fails, leaving no file behind, if the core cannot be written.
Result<CoreWriteSummary> write_core(const Snapshot& snapshot, const Memory& full_memory,
                                    const CoreWriteOptions& options, const std::string& path);

}  // namespace fiberscope::target
