// Core files as a Snapshot: the post-mortem backend of the target layer.
//
//   auto core = open_core_file("core.4242", {.exe_path = "", .sysroot = ""});
//   if (!core) die(core.error().message);                   // not a core, wrong machine, unreadable headers
//   for (auto& warning : core->snapshot.warnings) note(warning);  // truncated core, build-id mismatch, bad notes...
//   if (auto* file = core->file("/usr/lib/libc.so.6"); file && file->refusal) ...  // refused: why, as data
//
// The core is memory-mapped, never read whole, and its pages are let go every few thousand reads (so a dump of a
// 100k-fiber core stays at the size of a live one's). Threads come from NT_PRSTATUS (the crashed thread first, with
// the signal and fault address of NT_SIGINFO), mappings from PT_LOAD and NT_FILE, and Snapshot::memory serves reads
// from the PT_LOAD segments, falling back to the ELF files on disk that NT_FILE names for memory the core omits
// (read-only text). A file whose build-id differs from the one the core holds (or, for an executable whose core
// recorded none, whose entry point differs) is refused with a warning, and the refusal is kept as data.
// Everything in the core is hostile: every count is capped (below), every offset checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// Why the core reader will not read a file NT_FILE names for the memory the core omits (its code).
enum class FileRefusalKind : std::uint8_t {
  missing,               // no file at its path on disk (after --sysroot / --exe)
  unreadable,            // not a readable ELF file
  build_id_mismatch,     // its build-id differs from the one the core recorded in the file's first page
  entry_point_mismatch,  // the executable, whose core recorded no build-id: its entry point is not the core's
};

struct FileRefusal {
  FileRefusalKind kind;
  std::string reason;  // what a read error appends after the file's path: "has build-id 1a2b but the core's has 3c4d"

  // True when the file on disk is not the one the process ran (its symbols and CFI would describe other code);
  // false when it merely could not be read.
  bool other_file() const {
    return kind == FileRefusalKind::build_id_mismatch || kind == FileRefusalKind::entry_point_mismatch;
  }
};

// A file NT_FILE names, where it is read from and whether the core reader refused it.
struct CoreBackingFile {
  std::string recorded_path;          // as NT_FILE names it
  std::string disk_path;              // after --exe and --sysroot
  std::optional<FileRefusal> refusal;  // checked only for files whose memory the core omits in part
};

// A core opened: its Snapshot and what the core says about the files it names.
struct CoreFile {
  Snapshot snapshot;              // mappings name files as the core recorded them; exe_path is on disk
  std::string recorded_exe_path;  // the executable as the core names it (NT_FILE at AT_ENTRY, else AT_EXECFN)
  CoreOptions options;            // as given to open_core_file
  std::vector<CoreBackingFile> files;  // sorted by recorded_path; the first kMaxCoreBackingFiles only

  // The entry of `files` for `recorded_path`, or null.
  const CoreBackingFile* file(const std::string& recorded_path) const;
  // Where the file the core names `recorded_path` is read on disk: --exe for the recorded executable, else the
  // path under --sysroot (absolute paths only).
  std::string disk_path(const std::string& recorded_path) const;
};

// Opens `core_path` (an x86-64 ELF core). Fails only when nothing useful can be read; problems short of that
// (truncation, bad notes, missing or mismatched files) become Snapshot::warnings, refusals also CoreFile::files.
Result<CoreFile> open_core_file(const std::string& core_path, const CoreOptions& options);

// open_core_file's Snapshot alone, for callers that need nothing else.
Result<Snapshot> open_core(const std::string& core_path, const CoreOptions& options);

}  // namespace fiberscope::target
