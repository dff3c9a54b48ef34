#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <memory>

#include "target/memory.h"

using namespace fiberscope;
using namespace fiberscope::target;

namespace {

std::vector<std::byte> bytes_from(std::uint8_t first, std::size_t count) {
  std::vector<std::byte> bytes(count);
  for (std::size_t i = 0; i < count; ++i) bytes[i] = std::byte(static_cast<std::uint8_t>(first + i));
  return bytes;
}

}  // namespace

TEST_CASE("RegionMemory reads back bytes inside a region, up to its last byte") {
  RegionMemory memory;
  REQUIRE(memory.add(RemoteAddress(0x1000), bytes_from(0, 16)));
  std::byte out[4];
  REQUIRE(memory.read(RemoteAddress(0x100c), out));
  CHECK(out[0] == std::byte(12));
  CHECK(out[3] == std::byte(15));
  CHECK(memory.total_bytes() == 16);
  CHECK(memory.region_containing(RemoteAddress(0x100f))->start == RemoteAddress(0x1000));
  CHECK_FALSE(memory.region_containing(RemoteAddress(0x1010)));

  auto past_end = memory.read(RemoteAddress(0x100d), out);
  REQUIRE_FALSE(past_end);
  CHECK_THAT(past_end.error().message, Catch::Contains("0x1010"));
}

TEST_CASE("RegionMemory rejects regions that overlap, contain or are contained by another") {
  RegionMemory memory;
  REQUIRE(memory.add(RemoteAddress(0x2000), bytes_from(0, 0x100)));
  CHECK_FALSE(memory.add(RemoteAddress(0x1f80), bytes_from(0, 0x81)));   // overlaps the start
  CHECK_FALSE(memory.add(RemoteAddress(0x20ff), bytes_from(0, 0x10)));   // overlaps the end
  CHECK_FALSE(memory.add(RemoteAddress(0x2010), bytes_from(0, 0x10)));   // inside
  CHECK_FALSE(memory.add(RemoteAddress(0x1000), bytes_from(0, 0x2000))); // around
  CHECK(memory.add(RemoteAddress(0x2100), bytes_from(0, 0x10)));         // touching is fine
  CHECK(memory.add(RemoteAddress(0x1f00), bytes_from(0, 0x100)));
  CHECK(memory.region_count() == 3);
}

TEST_CASE("RegionMemory rejects a region that wraps past the top of the address space") {
  RegionMemory memory;
  auto top = std::numeric_limits<std::uint64_t>::max();
  CHECK_FALSE(memory.add(RemoteAddress(top - 3), bytes_from(0, 8)));
  CHECK(memory.region_count() == 0);
}

TEST_CASE("a read spanning two adjacent regions fails cleanly and names the first uncopied byte") {
  RegionMemory memory;
  REQUIRE(memory.add(RemoteAddress(0x1000), bytes_from(0, 0x10)));
  REQUIRE(memory.add(RemoteAddress(0x1010), bytes_from(0x10, 0x10)));
  std::byte out[8];
  auto spanning = memory.read(RemoteAddress(0x100c), out);
  REQUIRE_FALSE(spanning);
  CHECK_THAT(spanning.error().message, Catch::Contains("0x1010"));
  REQUIRE(memory.read(RemoteAddress(0x1010), out));
  CHECK(out[0] == std::byte(0x10));
}

TEST_CASE("reads before, between and after regions, and reads that wrap, fail without touching the output") {
  RegionMemory memory;
  REQUIRE(memory.add(RemoteAddress(0x1000), bytes_from(0, 0x10)));
  REQUIRE(memory.add(RemoteAddress(0x3000), bytes_from(0, 0x10)));
  std::byte out[2] = {std::byte(0xaa), std::byte(0xaa)};
  CHECK_FALSE(memory.read(RemoteAddress(0xfff), out));
  CHECK_FALSE(memory.read(RemoteAddress(0x2000), out));
  CHECK_FALSE(memory.read(RemoteAddress(0x3010), out));
  auto wrapping = memory.read(RemoteAddress(std::numeric_limits<std::uint64_t>::max()), out);
  REQUIRE_FALSE(wrapping);
  CHECK(out[0] == std::byte(0xaa));
  std::span<std::byte> nothing;
  CHECK(memory.read(RemoteAddress(0x5), nothing));  // an empty read never fails
}

TEST_CASE("a region ending at the top of the address space can be read to its last byte") {
  RegionMemory memory;
  auto top = std::numeric_limits<std::uint64_t>::max();
  REQUIRE(memory.add(RemoteAddress(top - 16), bytes_from(0, 16)));  // ends at 2^64 - 1
  std::byte out[4];
  REQUIRE(memory.read(RemoteAddress(top - 4), out));
  CHECK(out[3] == std::byte(15));
  CHECK_FALSE(memory.read(RemoteAddress(top - 2), out));
  CHECK(memory.read_u64(RemoteAddress(top - 16)).has_value());
}

TEST_CASE("add_arena adds slices of one buffer and refuses slices outside it or overlapping") {
  auto buffer = std::shared_ptr<std::byte[]>(new std::byte[64]);
  for (int i = 0; i < 64; ++i) buffer[static_cast<std::size_t>(i)] = std::byte(i);
  RegionMemory memory;
  RegionMemory::ArenaSlice good[] = {{{RemoteAddress(0x9000), RemoteAddress(0x9010)}, 32},
                                     {{RemoteAddress(0x1000), RemoteAddress(0x1020)}, 0}};
  REQUIRE(memory.add_arena(buffer, 64, good));
  CHECK(memory.region_count() == 2);
  CHECK(memory.read_object<std::uint8_t>(RemoteAddress(0x9001)).value() == 33);
  CHECK(memory.read_object<std::uint8_t>(RemoteAddress(0x101f)).value() == 31);

  RegionMemory::ArenaSlice outside[] = {{{RemoteAddress(0x5000), RemoteAddress(0x5010)}, 60}};
  CHECK_FALSE(memory.add_arena(buffer, 64, outside));
  RegionMemory::ArenaSlice huge_offset[] = {{{RemoteAddress(0x5000), RemoteAddress(0x5010)}, ~0ull}};
  CHECK_FALSE(memory.add_arena(buffer, 64, huge_offset));
  RegionMemory::ArenaSlice overlapping_existing[] = {{{RemoteAddress(0x100f), RemoteAddress(0x1011)}, 0}};
  CHECK_FALSE(memory.add_arena(buffer, 64, overlapping_existing));
  RegionMemory::ArenaSlice overlapping_each_other[] = {{{RemoteAddress(0x6000), RemoteAddress(0x6010)}, 0},
                                                       {{RemoteAddress(0x600f), RemoteAddress(0x6011)}, 0}};
  CHECK_FALSE(memory.add_arena(buffer, 64, overlapping_each_other));
  RegionMemory::ArenaSlice reversed[] = {{{RemoteAddress(0x7010), RemoteAddress(0x7000)}, 0}};
  CHECK_FALSE(memory.add_arena(buffer, 64, reversed));
  CHECK(memory.region_count() == 2);  // a refused batch adds nothing
}
