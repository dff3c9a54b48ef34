#include "target/copy_plan.h"

#include <algorithm>

namespace fiberscope::target {

namespace {

// A hostile plan can produce a problem per range; a few examples and a count say enough.
constexpr std::size_t kMaxWarningsPerKind = 8;

class WarningLimiter {
 public:
  WarningLimiter(std::vector<std::string>& warnings, std::string summary)
      : warnings_(warnings), summary_(std::move(summary)) {}
  ~WarningLimiter() {
    if (count_ > kMaxWarningsPerKind)
      warnings_.push_back(std::to_string(count_ - kMaxWarningsPerKind) + " more " + summary_);
  }
  WarningLimiter(const WarningLimiter&) = delete;
  WarningLimiter& operator=(const WarningLimiter&) = delete;

  void add(std::string warning) {
    if (count_++ < kMaxWarningsPerKind) warnings_.push_back(std::move(warning));
  }

 private:
  std::vector<std::string>& warnings_;
  std::string summary_;
  std::size_t count_ = 0;
};

std::string describe(AddressRange range) {
  return "[" + range.start.to_string() + ", " + range.end.to_string() + ")";
}

// Sorts and merges overlapping or touching ranges in place.
void merge_ranges(std::vector<AddressRange>& ranges) {
  std::sort(ranges.begin(), ranges.end(), [](AddressRange a, AddressRange b) { return a.start < b.start; });
  std::size_t out = 0;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (out > 0 && ranges[i].start <= ranges[out - 1].end) {
      ranges[out - 1].end = std::max(ranges[out - 1].end, ranges[i].end);
    } else {
      ranges[out++] = ranges[i];
    }
  }
  ranges.resize(out);
}

}  // namespace

std::vector<AddressRange> plan_copies(std::span<const AddressRange> requested, std::span<const Mapping> mappings,
                                      const CaptureOptions& options, std::vector<std::string>& warnings) {
  std::vector<AddressRange> ranges;
  ranges.reserve(requested.size());
  {
    WarningLimiter limiter(warnings, "requested ranges were invalid or over the per-region cap");
    for (AddressRange range : requested) {
      if (range.end < range.start) {
        limiter.add("requested range " + describe(range) + " ends before it starts, skipped");
        continue;
      }
      if (range.empty()) continue;
      if (range.size_bytes() > options.max_region_bytes) {
        limiter.add("requested range " + describe(range) + " is " + hex(range.size_bytes()) +
                    " bytes, over the per-region cap of " + hex(options.max_region_bytes) + ": only the first " +
                    hex(options.max_region_bytes) + " bytes are copied");
        range.end = range.start + options.max_region_bytes;
      }
      ranges.push_back(range);
    }
  }
  merge_ranges(ranges);

  if (!mappings.empty()) {
    // Split at mapping boundaries (both lists sorted, walked once): parts in unreadable mappings are dropped, parts
    // in readable ones kept, and parts in no mapping kept too, as separate ranges. The maps were read before the
    // target stopped, so a hole may be a mapping made since (a new fiber's stack); if it is not, its read fails on
    // its own without taking a readable neighbour down with it (process_vm_readv stops at the first fault).
    std::vector<AddressRange> split;
    split.reserve(ranges.size());
    bool last_is_hole = true;
    // CaptureOptions::bridged_gap_bytes: each range is an iovec of its own, and the kernel's cost per iovec (pinning
    // the remote pages) is far above copying a few hundred bytes more.
    std::size_t last_mapping = mappings.size();  // of the last piece emitted, when it is readable
    // Overlapping maps (a hostile core's) could put an unreadable mapping inside a readable one's gap.
    auto no_mapping_starts_between = [&](std::size_t k, RemoteAddress from, RemoteAddress to) {
      return k + 1 >= mappings.size() || mappings[k + 1].range.start >= to || mappings[k + 1].range.start < from;
    };
    auto emit = [&](AddressRange piece, bool hole, std::size_t in_mapping) {
      if (!split.empty() && piece.start < split.back().end) piece.start = split.back().end;  // overlapping maps
      if (piece.empty()) return;
      const bool joins = !split.empty() && !hole && !last_is_hole &&
                         (split.back().end == piece.start ||  // back-to-back readable mappings: one copy
                          (in_mapping == last_mapping && piece.start - split.back().end <= options.bridged_gap_bytes &&
                           no_mapping_starts_between(in_mapping, split.back().end, piece.start)));
      if (joins) {
        split.back().end = piece.end;
      } else {
        split.push_back(piece);
      }
      last_is_hole = hole;
      last_mapping = in_mapping;
    };
    WarningLimiter limiter(warnings, "requested ranges were partly in unreadable mappings");
    std::size_t m = 0;
    for (AddressRange range : ranges) {
      while (m < mappings.size() && mappings[m].range.end <= range.start) ++m;
      RemoteAddress cursor = range.start;
      std::uint64_t unreadable = 0;
      for (std::size_t k = m; k < mappings.size() && mappings[k].range.start < range.end; ++k) {
        const Mapping& mapping = mappings[k];
        if (mapping.range.start > cursor)
          emit({cursor, std::min(mapping.range.start, range.end)}, true, mappings.size());
        AddressRange piece{std::max(cursor, mapping.range.start), std::min(range.end, mapping.range.end)};
        if (!piece.empty()) {
          if (mapping.readable) {
            emit(piece, false, k);
          } else {
            unreadable += piece.size_bytes();
            last_mapping = mappings.size();
          }
        }
        cursor = std::max(cursor, std::min(range.end, mapping.range.end));
      }
      if (cursor < range.end) emit({cursor, range.end}, true, mappings.size());
      if (unreadable > 0)
        limiter.add("requested range " + describe(range) + ": " + hex(unreadable) +
                    " bytes lie in unreadable mappings, skipped");
    }
    ranges = std::move(split);
  }

  std::uint64_t total = 0;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].size_bytes() <= options.max_total_bytes - total) {
      total += ranges[i].size_bytes();
      continue;
    }
    std::uint64_t dropped = 0;
    for (std::size_t j = i; j < ranges.size(); ++j) dropped += ranges[j].size_bytes();
    dropped -= options.max_total_bytes - total;
    ranges[i].end = ranges[i].start + (options.max_total_bytes - total);
    ranges.resize(ranges[i].empty() ? i : i + 1);
    warnings.push_back("copy plan exceeds the total cap of " + hex(options.max_total_bytes) + " bytes: " +
                       hex(dropped) + " bytes not copied");
    break;
  }
  return ranges;
}

std::vector<AddressRange> subtract_ranges(std::span<const AddressRange> ranges, std::span<const AddressRange> copied) {
  std::vector<AddressRange> left;
  left.reserve(ranges.size());
  std::size_t c = 0;
  for (AddressRange range : ranges) {
    while (c < copied.size() && copied[c].end <= range.start) ++c;
    RemoteAddress cursor = range.start;
    for (std::size_t k = c; k < copied.size() && copied[k].start < range.end; ++k) {
      if (copied[k].start > cursor) left.push_back({cursor, copied[k].start});
      cursor = std::max(cursor, std::min(copied[k].end, range.end));
    }
    if (cursor < range.end) left.push_back({cursor, range.end});
  }
  return left;
}

bool overlaps_any(AddressRange range, std::span<const AddressRange> sorted) {
  if (range.empty()) return false;
  // The first range ending after range.start is the only one that can overlap without starting inside it.
  auto candidate = std::upper_bound(sorted.begin(), sorted.end(), range.start,
                                    [](RemoteAddress start, AddressRange other) { return start < other.end; });
  return candidate != sorted.end() && candidate->start < range.end;
}

}  // namespace fiberscope::target
