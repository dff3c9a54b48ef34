// GoStackMap: Go's pointer maps parsed from bytes (well-formed and hostile) and read from a real Go binary, where
// every function with a frame has the maps the garbage collector uses.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "binary/elf_image.h"
#include "binary/go_pclntab.h"
#include "binary/go_stackmap.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::binary::GoStackMap;
using fiberscope::testing::bin;

namespace {

std::vector<std::byte> stackmap_bytes(std::int32_t count, std::int32_t bits, const std::vector<unsigned>& data) {
  std::vector<std::byte> bytes(8);
  std::memcpy(bytes.data(), &count, 4);
  std::memcpy(bytes.data() + 4, &bits, 4);
  for (unsigned byte : data) bytes.push_back(static_cast<std::byte>(byte));
  return bytes;
}

}  // namespace

TEST_CASE("a Go stack map's bitmaps are read bit by bit, each rounded up to whole bytes") {
  // Two bitmaps of 10 bits: 2 bytes each.
  const auto bytes = stackmap_bytes(2, 10, {0b0000'0101, 0b10, 0b1000'0000, 0b01, 0xff});
  auto map = GoStackMap::parse(bytes);
  REQUIRE(map.has_value());
  CHECK(map->count() == 2);
  CHECK(map->bits_per_map() == 10);
  auto first = map->bitmap(0);
  REQUIRE(first.has_value());
  CHECK(*first == std::vector<bool>{true, false, true, false, false, false, false, false, false, true});
  auto second = map->bitmap(1);
  REQUIRE(second.has_value());
  CHECK(*second == std::vector<bool>{false, false, false, false, false, false, false, true, true, false});
}

TEST_CASE("hostile Go stack maps give errors, never reads past their bytes") {
  CHECK_FALSE(GoStackMap::parse({}).has_value());
  const auto header_only = stackmap_bytes(1, 8, {});
  CHECK_FALSE(GoStackMap::parse(std::span(header_only).first(6)).has_value());  // truncated header
  CHECK_FALSE(GoStackMap::parse(header_only).has_value());                     // bitmap missing
  auto negative_count = GoStackMap::parse(stackmap_bytes(-1, 8, {0}));
  REQUIRE_FALSE(negative_count.has_value());
  CHECK(negative_count.error().message.find("-1 bitmaps") != std::string::npos);
  CHECK_FALSE(GoStackMap::parse(stackmap_bytes(1, -8, {0})).has_value());
  auto huge = GoStackMap::parse(stackmap_bytes(0x7fffffff, 0x7fffffff, {0}));
  REQUIRE_FALSE(huge.has_value());
  CHECK(huge.error().message.find("at most") != std::string::npos);
  auto short_data = GoStackMap::parse(stackmap_bytes(3, 16, {1, 2, 3, 4, 5}));  // 6 bytes needed
  REQUIRE_FALSE(short_data.has_value());
  CHECK(short_data.error().message.find("need 6 bytes, 5 remain") != std::string::npos);
  auto map = GoStackMap::parse(stackmap_bytes(1, 3, {7}));
  REQUIRE(map.has_value());
  CHECK_FALSE(map->bitmap(1).has_value());
  CHECK_FALSE(map->bitmap(-1).has_value());
  auto empty = GoStackMap::parse(stackmap_bytes(0, 0, {}));
  REQUIRE(empty.has_value());
  CHECK_FALSE(empty->bitmap(0).has_value());
}

TEST_CASE("runtime.cgocall of a real Go binary has stack maps for its arguments fn and arg") {
  auto image = binary::ElfImage::open(bin("go_cgo"));
  REQUIRE(image.has_value());
  auto table = binary::GoPclntab::from_image(**image);
  REQUIRE(table.has_value());
  const binary::GoPclntab& pclntab = **table;
  std::optional<binary::GoFunction> cgocall;
  for (std::size_t index = 0; index < pclntab.function_count() && !cgocall; ++index) {
    auto function = pclntab.function(index);
    REQUIRE(function.has_value());
    if (function->name == "runtime.cgocall") cgocall = *function;
  }
  REQUIRE(cgocall.has_value());
  // cgocall(fn, arg unsafe.Pointer) int32: the same argument words at every pc; fn and arg live at its entry.
  auto at_entry = binary::go_live_pointer_slots(pclntab, *cgocall, cgocall->entry);
  REQUIRE(at_entry.has_value());
  REQUIRE(at_entry->args.size() >= 2);
  CHECK(at_entry->args[0]);
  CHECK(at_entry->args[1]);
  // Every pc of its code (the padding after its last instruction has no pc-value entries).
  for (std::uint64_t pc = cgocall->entry; pc < cgocall->end && pclntab.line_at(*cgocall, pc); pc += 8) {
    auto slots = binary::go_live_pointer_slots(pclntab, *cgocall, pc);
    INFO((slots ? "" : slots.error().message));
    REQUIRE(slots.has_value());
    CHECK(slots->args.size() == at_entry->args.size());
  }
}
