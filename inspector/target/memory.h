// Memory: read-only access to a target's address space, whatever the backend.
//
// The live process (process_vm_readv), a snapshot's copied regions, a core file and the unit tests' in-memory fake
// all implement this one interface; everything above target/ reads through it and nothing else. A read either
// fills the whole buffer or fails with an error naming the address — never a partial result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <optional>
#include <vector>

#include "base/result.h"
#include "target/remote_address.h"

namespace fiberscope::target {

class Memory {
 public:
  virtual ~Memory() = default;

  // Copies out.size() bytes starting at `address` into `out`.
  virtual Result<void> read(RemoteAddress address, std::span<std::byte> out) const = 0;

  // Reads a trivially copyable object (a debug-ABI record, an integer) at `address`.
  template <class T>
  Result<T> read_object(RemoteAddress address) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    auto bytes = std::as_writable_bytes(std::span<T, 1>(&value, 1));
    FS_TRY_DISCARD(read(address, bytes));
    return value;
  }

  Result<std::uint64_t> read_u64(RemoteAddress address) const { return read_object<std::uint64_t>(address); }
};

// Memory made of copied regions: the snapshot of a stopped process and the unit tests' fake.
// Regions must not overlap; add() keeps them sorted. A read must lie inside one region: a read spanning two
// adjacent regions fails like any read touching an uncopied byte (capture_live merges adjacent ranges first).
class RegionMemory final : public Memory {
 public:
  // Adds a copy of `bytes` at `start`. Fails if the region overlaps one already present or wraps.
  Result<void> add(RemoteAddress start, std::vector<std::byte> bytes);
  Result<void> read(RemoteAddress address, std::span<std::byte> out) const override;

  // One region of an arena: `range` whose bytes start `arena_offset` bytes into the arena.
  struct ArenaSlice {
    AddressRange range;
    std::uint64_t arena_offset = 0;
  };
  // Adds many regions whose bytes live in one shared buffer of `arena_bytes` bytes (the live capture copies
  // everything into one allocation instead of one per region). Fails, adding nothing, if a slice lies outside
  // the arena, is empty, wraps, or overlaps another region.
  Result<void> add_arena(std::shared_ptr<const std::byte[]> arena, std::uint64_t arena_bytes,
                         std::span<const ArenaSlice> slices);

  std::size_t region_count() const { return regions_.size(); }
  std::uint64_t total_bytes() const;
  // The copied region containing `address`, if any.
  std::optional<AddressRange> region_containing(RemoteAddress address) const;
  // Every copied region, sorted by address.
  std::vector<AddressRange> ranges() const;

 private:
  struct Region {
    AddressRange range;
    const std::byte* bytes = nullptr;  // range.size_bytes() bytes, owned by owned_ or arenas_
  };
  // The region index whose range contains `address`, or regions_.size().
  std::size_t find(RemoteAddress address) const;

  std::vector<Region> regions_;  // sorted by range.start, disjoint
  std::vector<std::vector<std::byte>> owned_;
  std::vector<std::shared_ptr<const std::byte[]>> arenas_;
};

}  // namespace fiberscope::target
