#include "target/precopy.h"

#include <algorithm>
#include <utility>

#include "target/arena.h"
#include "target/process_memory.h"

namespace fiberscope::target {

namespace {

// Which of `ranges` may be copied before the stop: inside one readable mapping of `mappings` (a guard page or a
// hole would make a partial copy) and disjoint from every other range (a snapshot's regions are disjoint;
// overlapping requests come from a hostile table and are simply left to the pause).
std::vector<bool> copyable_ranges(const std::vector<AddressRange>& ranges, std::span<const Mapping> mappings) {
  std::vector<std::size_t> order;
  order.reserve(ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const AddressRange range = ranges[i];
    if (range.empty()) continue;
    auto mapping = std::upper_bound(mappings.begin(), mappings.end(), range.start,
                                    [](RemoteAddress start, const Mapping& m) { return start < m.range.end; });
    if (mapping == mappings.end() || !mapping->readable || !mapping->range.contains(range.start) ||
        range.end > mapping->range.end)
      continue;
    order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return ranges[a].start < ranges[b].start; });
  std::vector<bool> copyable(ranges.size(), false);
  for (std::size_t k = 0; k < order.size(); ++k) {
    const AddressRange range = ranges[order[k]];
    const bool overlaps_previous = k > 0 && ranges[order[k - 1]].end > range.start;
    const bool overlaps_next = k + 1 < order.size() && ranges[order[k + 1]].start < range.end;
    copyable[order[k]] = !overlaps_previous && !overlaps_next;
  }
  return copyable;
}

}  // namespace

Precopy Precopy::copy(int pid, std::vector<AddressRange> ranges, std::span<const Mapping> mappings,
                      std::uint64_t max_total_bytes) {
  Precopy precopy;
  const std::size_t count = ranges.size();
  precopy.ranges_ = std::move(ranges);
  precopy.arena_offsets_.assign(count, 0);
  precopy.copied_.assign(count, false);
  precopy.kept_.assign(count, false);

  std::vector<bool> usable = copyable_ranges(precopy.ranges_, mappings);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!usable[i]) continue;
    const std::uint64_t size = precopy.ranges_[i].size_bytes();
    if (size > max_total_bytes - total) {
      usable[i] = false;
      continue;
    }
    precopy.arena_offsets_[i] = total;
    total += size;
  }
  if (total == 0) return precopy;
  Arena arena = allocate_arena(total);
  if (!arena.bytes) return precopy;

  std::vector<ProcessMemory::BatchRead> requests;
  std::vector<std::size_t> request_index;
  requests.reserve(count);
  request_index.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (!usable[i]) continue;
    requests.push_back({precopy.ranges_[i].start, std::span<std::byte>(arena.bytes + precopy.arena_offsets_[i],
                                                                        precopy.ranges_[i].size_bytes())});
    request_index.push_back(i);
  }
  ProcessMemory live(pid);
  read_in_parallel(live, requests);
  for (std::size_t r = 0; r < requests.size(); ++r) {
    if (requests[r].bytes_read != requests[r].out.size()) continue;
    precopy.copied_[request_index[r]] = true;
    precopy.copied_bytes_ += requests[r].bytes_read;
  }
  precopy.arena_ = std::move(arena.owner);
  precopy.arena_bytes_ = total;
  return precopy;
}

void Precopy::keep(std::size_t index) {
  if (copied(index)) kept_[index] = true;
}

void Precopy::discard(std::size_t index) {
  if (index < kept_.size()) kept_[index] = false;
}

std::size_t Precopy::kept_count() const {
  return static_cast<std::size_t>(std::count(kept_.begin(), kept_.end(), true));
}

void Precopy::add_kept_to(RegionMemory& memory, std::vector<std::string>& warnings) const {
  std::vector<RegionMemory::ArenaSlice> slices;
  slices.reserve(kept_count());
  for (std::size_t i = 0; i < ranges_.size(); ++i)
    if (kept(i)) slices.push_back({ranges_[i], arena_offsets_[i]});
  if (auto added = memory.add_arena(arena_, arena_bytes_, slices); !added)
    warnings.push_back("stacks copied before the stop dropped: " + added.error().message);  // never expected
}

}  // namespace fiberscope::target
