// Core files as a Snapshot: the post-mortem backend of the target layer.
//
//   auto snapshot = open_core("core.4242", {.exe_path = "", .sysroot = ""});
//   if (!snapshot) die(snapshot.error().message);       // not a core, wrong machine, unreadable headers
//   for (auto& warning : snapshot->warnings) note(warning);  // truncated core, build-id mismatch, bad notes...
//
// The core is memory-mapped, never read whole, and its pages are let go every few thousand reads (so a dump of a
// 100k-fiber core stays at the size of a live one's). Threads come from NT_PRSTATUS (the crashed thread first, with
// the signal and fault address of NT_SIGINFO), mappings from PT_LOAD and NT_FILE, and Snapshot::memory serves reads
// from the PT_LOAD segments, falling back to the ELF files on disk that NT_FILE names for memory the core omits
// (read-only text). A file whose build-id differs from the one the core holds is refused with a warning.
// Everything in the core is hostile: every count is capped (below), every offset checked.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "target/snapshot.h"

namespace fiberscope::target {

struct CoreOptions {
  std::string exe_path;  // --exe: the executable to use instead of the one the core names (empty: from the core)
  std::string sysroot;   // --sysroot: prefix for every path NT_FILE names (empty: paths as recorded)
};

// Caps on counts read from a core. Past them open_core fails (program headers) or keeps the first ones and warns.
inline constexpr std::uint64_t kMaxCoreProgramHeaders = 1u << 20;  // 100k fibers = 200k mappings; 56 MiB of headers
inline constexpr std::uint64_t kMaxCoreNotes = 1u << 18;           // all notes of all PT_NOTE segments
inline constexpr std::uint64_t kMaxCoreThreads = 1u << 16;         // NT_PRSTATUS notes kept
inline constexpr std::uint64_t kMaxCoreFileEntries = 1u << 17;     // NT_FILE entries kept
inline constexpr std::uint64_t kMaxCoreBackingFiles = 4096;        // distinct files read for omitted memory

// Opens `core_path` (an x86-64 ELF core) as a Snapshot. Fails only when nothing useful can be read; problems
// short of that (truncation, bad notes, missing or mismatched files) become Snapshot::warnings.
Result<Snapshot> open_core(const std::string& core_path, const CoreOptions& options);

}  // namespace fiberscope::target
