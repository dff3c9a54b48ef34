// Arenas: where a live capture puts the memory it copies out of the target. One anonymous mapping holds many
// copied ranges back to back (no per-region allocation, no zero-filling by us), its pages faulted in before use,
// filled with batched process_vm_readv split over a few threads, then shared with the RegionMemory serving reads.
//
//   Arena reserved = allocate_arena(expected_bytes);                    // before the stop: faulting in is slow
//   copy_ranges(memory, live, ranges, std::move(reserved), warnings);   // inside it: the copy alone
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "target/memory.h"
#include "target/process_memory.h"
#include "target/remote_address.h"

namespace fiberscope::target {

// One anonymous mapping, its pages faulted in up front (MADV_POPULATE_WRITE, as huge pages when big enough):
// faulting 4 KiB pages one by one inside process_vm_readv costs several times the copy itself (measured: 220 ms
// vs 30 ms for 156 MB). Empty (bytes null) when nothing was asked or the mapping failed.
struct Arena {
  std::shared_ptr<const std::byte[]> owner;  // unmaps it when the last user (a RegionMemory) goes
  std::byte* bytes = nullptr;
  std::uint64_t size_bytes = 0;
};

// Maps and faults in an arena of `size_bytes`; an empty Arena if the mapping fails.
Arena allocate_arena(std::uint64_t size_bytes);

// Reads `requests` from `live` with batched reads, split over a few threads when there are thousands.
void read_in_parallel(const ProcessMemory& live, std::span<ProcessMemory::BatchRead> requests);

std::uint64_t total_bytes(std::span<const AddressRange> ranges);

// Copies `ranges` (sorted, disjoint, none already in `memory`) into `memory` with batched reads. The ranges that
// fit in `reserved` go there, in order; the rest get an arena of their own, faulted in now (inside the pause), so
// an under-estimated reservation costs only its shortfall. Unreadable parts become warnings.
void copy_ranges(RegionMemory& memory, const ProcessMemory& live, const std::vector<AddressRange>& ranges,
                 Arena reserved, std::vector<std::string>& warnings);

}  // namespace fiberscope::target
