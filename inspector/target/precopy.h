// Precopy: memory copied from a running target before capture_live stops it, of which the pause keeps only what
// it can prove unchanged (see CaptureOptions::precopy in live_capture.h).
//
//   auto precopy = Precopy::copy(pid, parked_stacks, mappings);   // while the target runs
//   ... inside the pause, for each range still valid: precopy.keep(i) ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "target/memory.h"
#include "target/remote_address.h"
#include "target/snapshot.h"

namespace fiberscope::target {

// Memory copied from a running target, before capture_live stops it: e.g. the stacks of parked fibers, copied while
// they are parked so that the pause need not copy them. Nothing in it is trusted by default: inside the pause the
// planner keep()s the ranges it can prove did not change since they were copied (for fibers: the seqlock value is
// the same and the fiber is still parked), and only those become part of the snapshot.
class Precopy {
 public:
  // Copies `ranges` from the running process `pid` with batched process_vm_readv into one arena allocated here.
  // A range is copied only if it lies inside one readable mapping of `mappings` (sorted, as /proc/PID/maps lists
  // them) and overlaps no other range; ranges past `max_total_bytes` in all are left out. Index i of the result
  // is ranges[i]; ranges not copied completely can never be kept.
  static Precopy copy(int pid, std::vector<AddressRange> ranges, std::span<const Mapping> mappings,
                      std::uint64_t max_total_bytes = 1u << 30);

  std::size_t size() const { return ranges_.size(); }
  AddressRange range(std::size_t index) const { return ranges_[index]; }
  // True if range `index` was copied completely (the only ranges keep() accepts).
  bool copied(std::size_t index) const { return index < copied_.size() && copied_[index]; }
  // Marks range `index` as still valid at the stop; ignored for ranges not copied completely.
  void keep(std::size_t index);
  // Withdraws a keep() (capture_live does so for ranges the planner also asks to copy inside the pause).
  void discard(std::size_t index);
  bool kept(std::size_t index) const { return index < kept_.size() && kept_[index]; }
  std::size_t kept_count() const;
  std::uint64_t copied_bytes() const { return copied_bytes_; }

  // Adds the kept ranges to `memory` (sharing the arena); discards, with a warning, any that overlap it.
  void add_kept_to(RegionMemory& memory, std::vector<std::string>& warnings) const;

 private:
  std::vector<AddressRange> ranges_;
  std::vector<std::uint64_t> arena_offsets_;
  std::vector<bool> copied_;
  std::vector<bool> kept_;
  std::shared_ptr<const std::byte[]> arena_;
  std::uint64_t arena_bytes_ = 0;
  std::uint64_t copied_bytes_ = 0;
};

}  // namespace fiberscope::target
