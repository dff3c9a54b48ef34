#include "target/arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <thread>
#include <utility>

#include "base/hex.h"

namespace fiberscope::target {

namespace {

constexpr std::uint64_t kHugePageBytes = 2u << 20;

// Faults in the pages of [bytes, bytes + size_bytes) (Linux 5.14+; older kernels fault during the copy instead).
// Zeroing fresh pages costs about as much as the copy (measured: ~100 ms for 95 MB on a loaded 2-CPU machine),
// and when no reservation was made it happens inside the pause: big arenas are populated by two threads.
void populate(std::byte* bytes, std::uint64_t size_bytes) {
#ifdef MADV_POPULATE_WRITE
  constexpr std::uint64_t kParallelFromBytes = 16u << 20;
  const std::uint64_t half = (size_bytes / 2) & ~(kHugePageBytes - 1);  // page-aligned, whole huge pages
  if (size_bytes < kParallelFromBytes || std::thread::hardware_concurrency() < 2) {
    ::madvise(bytes, size_bytes, MADV_POPULATE_WRITE);
    return;
  }
  std::thread helper;
  try {
    helper = std::thread([=] { ::madvise(bytes + half, size_bytes - half, MADV_POPULATE_WRITE); });
  } catch (const std::system_error&) {
    ::madvise(bytes + half, size_bytes - half, MADV_POPULATE_WRITE);  // no thread to spare: do it here
  }
  ::madvise(bytes, half, MADV_POPULATE_WRITE);
  if (helper.joinable()) helper.join();
#else
  (void)bytes;
  (void)size_bytes;
#endif
}

// The arenas a copy of `ranges` goes to: `reserved` for the ranges that fit in it, in order, and one arena of its
// own for the rest.
struct ArenaPart {
  Arena arena;
  std::size_t first = 0, end = 0;  // ranges[first, end) live in this arena, back to back
  std::uint64_t used_bytes = 0;
};

std::vector<ArenaPart> place_in_arenas(const std::vector<AddressRange>& ranges, Arena reserved,
                                       std::vector<std::string>& warnings) {
  const std::uint64_t total = total_bytes(ranges);
  std::vector<ArenaPart> parts;
  std::size_t fitting = 0;
  std::uint64_t prefix_bytes = 0;
  while (fitting < ranges.size() && ranges[fitting].size_bytes() <= reserved.size_bytes - prefix_bytes)
    prefix_bytes += ranges[fitting++].size_bytes();
  if (fitting > 0) parts.push_back({std::move(reserved), 0, fitting, prefix_bytes});
  if (fitting < ranges.size()) {
    Arena rest = allocate_arena(total - prefix_bytes);
    if (!rest.bytes) {
      warnings.push_back("cannot allocate " + hex(total - prefix_bytes) + " bytes to copy target memory: " +
                         std::to_string(ranges.size() - fitting) + " ranges not copied");
    } else {
      parts.push_back({std::move(rest), fitting, ranges.size(), total - prefix_bytes});
    }
  }
  return parts;
}

// One read per range, into its place in its arena.
std::vector<ProcessMemory::BatchRead> read_requests(const std::vector<ArenaPart>& parts,
                                                    const std::vector<AddressRange>& ranges) {
  std::vector<ProcessMemory::BatchRead> requests;
  requests.reserve(ranges.size());
  for (const ArenaPart& part : parts) {
    std::uint64_t offset = 0;
    for (std::size_t i = part.first; i < part.end; ++i) {
      requests.push_back({ranges[i].start, std::span<std::byte>(part.arena.bytes + offset, ranges[i].size_bytes())});
      offset += ranges[i].size_bytes();
    }
  }
  return requests;
}

// How many ranges could not be copied fully; the first few are described one by one.
struct CopyFailures {
  static constexpr std::size_t kDescribed = 8;
  std::size_t count = 0;
};

// Gives `memory` what was read into `part` (`requests` are its ranges' reads, in order).
void hand_over(RegionMemory& memory, ArenaPart& part, const std::vector<AddressRange>& ranges,
               std::span<const ProcessMemory::BatchRead> requests, CopyFailures& failures,
               std::vector<std::string>& warnings) {
  std::vector<RegionMemory::ArenaSlice> slices;
  slices.reserve(part.end - part.first);
  std::uint64_t offset = 0;
  for (std::size_t i = part.first; i < part.end; ++i) {
    const auto& request = requests[i - part.first];
    AddressRange copied{ranges[i].start, ranges[i].start + request.bytes_read};
    // Ranges split at a mapping boundary that were both read lie back to back in the arena too: one region, so
    // reads may span them.
    if (!slices.empty() && slices.back().range.end == copied.start &&
        slices.back().arena_offset + slices.back().range.size_bytes() == offset) {
      slices.back().range.end = copied.end;
    } else if (!copied.empty()) {
      slices.push_back({copied, offset});
    }
    if (request.bytes_read < request.out.size() && failures.count++ < CopyFailures::kDescribed)
      warnings.push_back("could not copy " + hex(request.out.size() - request.bytes_read) + " bytes at " +
                         (ranges[i].start + request.bytes_read).to_string() + " (unreadable)");
    offset += ranges[i].size_bytes();
  }
  // An over-estimated reservation gives its unused whole pages back (the mapping itself stays until the snapshot
  // goes, so nothing else can be mapped there before the final munmap).
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t used_pages_end = (part.used_bytes + page - 1) / page * page;
  if (part.arena.size_bytes > used_pages_end)
    ::madvise(part.arena.bytes + used_pages_end, part.arena.size_bytes - used_pages_end, MADV_DONTNEED);
  if (auto added = memory.add_arena(std::move(part.arena.owner), part.arena.size_bytes, slices); !added)
    warnings.push_back("copied memory dropped: " + added.error().message);  // our own invariant; never expected
}

}  // namespace

Arena allocate_arena(std::uint64_t size_bytes) {
  if (size_bytes == 0) return {};
  void* memory = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return {};
  if (size_bytes >= kHugePageBytes) ::madvise(memory, size_bytes, MADV_HUGEPAGE);
  auto* bytes = static_cast<std::byte*>(memory);
  populate(bytes, size_bytes);
  return {std::shared_ptr<const std::byte[]>(
              bytes, [size_bytes](const std::byte* p) { ::munmap(const_cast<std::byte*>(p), size_bytes); }),
          bytes, size_bytes};
}

// Splits a large batch over a few threads. With thousands of small ranges the cost is per range (the kernel pins
// each remote range's pages under the target's mmap lock, which it takes shared), so threads scale it.
void read_in_parallel(const ProcessMemory& live, std::span<ProcessMemory::BatchRead> requests) {
  constexpr std::size_t kMinRequestsPerThread = 2048;
  std::size_t threads = std::min<std::size_t>({std::max(1u, std::thread::hardware_concurrency()), 4,
                                               requests.size() / kMinRequestsPerThread});
  if (threads <= 1) {
    live.read_batch(requests);
    return;
  }
  std::vector<std::thread> helpers;
  std::size_t per_thread = (requests.size() + threads - 1) / threads;
  for (std::size_t first = per_thread; first < requests.size(); first += per_thread) {
    auto part = requests.subspan(first, std::min(per_thread, requests.size() - first));
    try {
      helpers.emplace_back([&live, part] { live.read_batch(part); });
    } catch (const std::system_error&) {
      live.read_batch(part);  // no thread to spare (RLIMIT_NPROC): read it here
    }
  }
  live.read_batch(requests.first(per_thread));
  for (std::thread& helper : helpers) helper.join();
}

std::uint64_t total_bytes(std::span<const AddressRange> ranges) {
  std::uint64_t total = 0;
  for (AddressRange range : ranges) total += range.size_bytes();
  return total;
}

void copy_ranges(RegionMemory& memory, const ProcessMemory& live, const std::vector<AddressRange>& ranges,
                 Arena reserved, std::vector<std::string>& warnings) {
  if (total_bytes(ranges) == 0) return;
  std::vector<ArenaPart> parts = place_in_arenas(ranges, std::move(reserved), warnings);
  std::vector<ProcessMemory::BatchRead> requests = read_requests(parts, ranges);
  read_in_parallel(live, requests);
  CopyFailures failures;
  std::span<const ProcessMemory::BatchRead> unclaimed = requests;
  for (ArenaPart& part : parts) {
    hand_over(memory, part, ranges, unclaimed.first(part.end - part.first), failures, warnings);
    unclaimed = unclaimed.subspan(part.end - part.first);
  }
  if (failures.count > CopyFailures::kDescribed)
    warnings.push_back(std::to_string(failures.count - CopyFailures::kDescribed) +
                       " more ranges could not be copied fully");
}

}  // namespace fiberscope::target
