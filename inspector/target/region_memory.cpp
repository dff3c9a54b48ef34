#include <algorithm>

#include "target/memory.h"

namespace fiberscope::target {

namespace {

// Describes a region for error messages: "[0x1000, 0x2000)".
std::string describe(AddressRange range) {
  return "[" + range.start.to_string() + ", " + range.end.to_string() + ")";
}

}  // namespace

std::size_t RegionMemory::find(RemoteAddress address) const {
  // The last region starting at or before `address` is the only candidate, since regions are disjoint.
  auto after = std::upper_bound(regions_.begin(), regions_.end(), address,
                                [](RemoteAddress a, const Region& region) { return a < region.range.start; });
  if (after == regions_.begin()) return regions_.size();
  auto candidate = after - 1;
  if (!candidate->range.contains(address)) return regions_.size();
  return static_cast<std::size_t>(candidate - regions_.begin());
}

Result<void> RegionMemory::add(RemoteAddress start, std::vector<std::byte> bytes) {
  if (bytes.empty()) return {};  // nothing to read back; an empty region would only confuse lookups
  auto end = start.checked_add(bytes.size());
  if (!end) return fail("region at ", start.to_string(), " of ", hex(bytes.size()), " bytes wraps past 2^64");
  AddressRange range{start, *end};
  auto after = std::upper_bound(regions_.begin(), regions_.end(), start,
                                [](RemoteAddress a, const Region& region) { return a < region.range.start; });
  if (after != regions_.end() && after->range.start < range.end)
    return fail("region ", describe(range), " overlaps copied region ", describe(after->range));
  if (after != regions_.begin() && (after - 1)->range.end > range.start)
    return fail("region ", describe(range), " overlaps copied region ", describe((after - 1)->range));
  owned_.push_back(std::move(bytes));  // moving a vector keeps its buffer, so the pointer below stays valid
  regions_.insert(after, Region{range, owned_.back().data()});
  return {};
}

Result<void> RegionMemory::add_arena(std::shared_ptr<const std::byte[]> arena, std::uint64_t arena_bytes,
                                     std::span<const ArenaSlice> slices) {
  if (slices.empty()) return {};
  if (!arena) return fail("arena of ", hex(arena_bytes), " bytes is null");
  std::vector<Region> added;
  added.reserve(slices.size());
  for (const ArenaSlice& slice : slices) {
    if (slice.range.end <= slice.range.start)
      return fail("arena region ", describe(slice.range), " is empty or wraps");
    std::uint64_t size = slice.range.size_bytes();
    if (slice.arena_offset > arena_bytes || size > arena_bytes - slice.arena_offset)
      return fail("arena region ", describe(slice.range), " at offset ", hex(slice.arena_offset),
                  " lies outside the arena of ", hex(arena_bytes), " bytes");
    added.push_back(Region{slice.range, arena.get() + slice.arena_offset});
  }
  std::sort(added.begin(), added.end(),
            [](const Region& a, const Region& b) { return a.range.start < b.range.start; });
  for (std::size_t i = 1; i < added.size(); ++i)
    if (added[i - 1].range.end > added[i].range.start)
      return fail("arena region ", describe(added[i].range), " overlaps ", describe(added[i - 1].range));

  // Merge the two sorted lists, checking overlaps where they meet; the common case (an empty memory) is a move.
  std::vector<Region> merged;
  if (regions_.empty()) {
    merged = std::move(added);
  } else {
    merged.reserve(regions_.size() + added.size());
    std::merge(regions_.begin(), regions_.end(), added.begin(), added.end(), std::back_inserter(merged),
               [](const Region& a, const Region& b) { return a.range.start < b.range.start; });
    for (std::size_t i = 1; i < merged.size(); ++i)
      if (merged[i - 1].range.end > merged[i].range.start)
        return fail("arena region ", describe(merged[i].range), " overlaps copied region ",
                    describe(merged[i - 1].range));
  }
  regions_ = std::move(merged);
  arenas_.push_back(std::move(arena));
  return {};
}

Result<void> RegionMemory::read(RemoteAddress address, std::span<std::byte> out) const {
  if (out.empty()) return {};
  std::size_t index = find(address);
  if (index == regions_.size()) return fail("memory at ", address.to_string(), " was not copied");
  const Region& region = regions_[index];
  if (!region.range.contains(address, out.size())) {
    // Name the first byte the read needs that this region does not hold; if it wraps, say so instead.
    if (!address.checked_add(out.size()))
      return fail("read of ", hex(out.size()), " bytes at ", address.to_string(), " wraps past 2^64");
    return fail("memory at ", region.range.end.to_string(), " was not copied (reading ", hex(out.size()),
                " bytes at ", address.to_string(), ")");
  }
  std::memcpy(out.data(), region.bytes + (address - region.range.start), out.size());
  return {};
}

std::uint64_t RegionMemory::total_bytes() const {
  std::uint64_t total = 0;
  for (const Region& region : regions_) total += region.range.size_bytes();
  return total;
}

std::optional<AddressRange> RegionMemory::region_containing(RemoteAddress address) const {
  std::size_t index = find(address);
  if (index == regions_.size()) return std::nullopt;
  return regions_[index].range;
}

std::vector<AddressRange> RegionMemory::ranges() const {
  std::vector<AddressRange> result;
  result.reserve(regions_.size());
  for (const Region& region : regions_) result.push_back(region.range);
  return result;
}

}  // namespace fiberscope::target
