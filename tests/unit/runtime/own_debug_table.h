// Reads this process's own debug ABI table the way an outside reader must: every byte through process_vm_readv
// (the kernel's copy is invisible to ThreadSanitizer, and a bad address is an error rather than a crash) and every
// fiber record through its seqlock. A test oracle independent of the inspector's reader, plus the plausibility
// rules a consistent record must satisfy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fiberscope/debug_abi.h"

namespace runtime_test {

// The exported root, found with dlsym as a reader of .dynsym would; nullptr if the symbol is not exported.
const fiberscope_debug_root* find_debug_root();

// Copies `size_bytes` at `address` of this process; false if any part is unreadable.
bool read_own_memory(std::uint64_t address, void* out, std::size_t size_bytes);

template <class T>
std::optional<T> read_own(std::uint64_t address) {
  T value;
  if (!read_own_memory(address, &value, sizeof value)) return std::nullopt;
  return value;
}

// One fiber record with its transition chain (innermost first), read under one seqlock window.
struct FiberSnapshot {
  std::uint64_t address = 0;
  fiberscope_fiber record{};
  std::vector<fiberscope_transition> transitions;
  std::vector<std::uint64_t> transition_addresses;
  std::string chain_error;  // why the chain could not be read completely, empty if it was
};

enum class ReadOutcome { consistent, torn, unreadable };

// Reads the record at `address` and its chain; retries up to `attempts` times while the seqlock says torn.
ReadOutcome read_fiber(std::uint64_t address, FiberSnapshot& out, int attempts = 8);

// Addresses of every record ever written in the chunk list starting at `first_chunk` (capped, cycle-safe).
// On a malformed chunk the walk stops and `error` says where.
std::vector<std::uint64_t> record_addresses(std::uint64_t first_chunk, std::uint32_t expected_record_size,
                                            std::string& error);

// All worker records in table order, each through its seqlock; nullopt where a record stayed torn.
std::vector<std::optional<fiberscope_worker>> read_workers(const fiberscope_debug_root& root, std::string& error);

// One record of a whole-table pass.
struct FiberRead {
  ReadOutcome outcome = ReadOutcome::unreadable;
  FiberSnapshot snapshot;
};

// Every record of the fiber table in one pass: each chunk is copied twice in one call each, records whose
// seqlock moved in between are re-read one by one. On a malformed chunk list `error` says where.
std::vector<FiberRead> read_all_fibers(std::uint64_t first_chunk, std::string& error);

// Every fiber record of the table that reads consistently, in one pass.
std::vector<FiberSnapshot> consistent_fibers();

// The record of fiber `id`, if it can be found and read consistently.
std::optional<FiberSnapshot> fiber_snapshot(std::uint64_t id);

// The calling fiber's own record.
std::optional<FiberSnapshot> own_fiber_snapshot();

// Every rule a consistent fiber record must satisfy; one sentence per violation, empty if plausible.
std::vector<std::string> implausibilities(const FiberSnapshot& fiber, const fiberscope_debug_root& root,
                                          std::size_t worker_count);

// Same for a worker record at position `position`.
std::vector<std::string> implausibilities(const fiberscope_worker& worker, std::size_t position,
                                          const fiberscope_debug_root& root);

}  // namespace runtime_test
