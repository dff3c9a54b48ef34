// Memory copied before the stop (Precopy) and ranges copied first inside it (CaptureOptions::copy_first), on a real
// process: only what the planner keeps is visible in the snapshot, and nothing is copied twice.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <sstream>

#include "target/copy_plan.h"
#include "target/live_capture.h"
#include "target/proc_files.h"
#include "test_process.h"

using namespace fiberscope;
using namespace fiberscope::target;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

// threads_blocked's pattern buffer: 8192 bytes, byte i is i * 7 + 3, never written after READY.
struct PatternBuffer {
  RemoteAddress start;
  std::uint64_t size_bytes = 0;
  AddressRange part(std::uint64_t from, std::uint64_t to) const { return {start + from, start + to}; }
};

PatternBuffer start_pattern_program(TestProcess& target) {
  auto ready = target.wait_for("READY");
  REQUIRE(ready);
  REQUIRE(ready->size() >= 4);
  return {RemoteAddress(std::strtoull((*ready)[2].c_str(), nullptr, 16)), std::stoull((*ready)[3])};
}

const RegionMemory& copied(const Snapshot& snapshot) {
  const auto* memory = dynamic_cast<const RegionMemory*>(snapshot.memory.get());
  REQUIRE(memory);
  return *memory;
}

bool holds_pattern(const Memory& memory, const PatternBuffer& buffer, std::uint64_t from, std::uint64_t to) {
  std::vector<std::byte> bytes(to - from);
  if (!memory.read(buffer.start + from, bytes)) return false;
  for (std::uint64_t i = from; i < to; ++i)
    if (bytes[i - from] != static_cast<std::byte>(i * 7 + 3)) return false;
  return true;
}

}  // namespace

TEST_CASE("ranges copied before the stop are in the snapshot only if the planner keeps them") {
  TestProcess target({bin("threads_blocked"), "1"});
  const PatternBuffer buffer = start_pattern_program(target);
  REQUIRE(buffer.size_bytes == 8192);
  auto mappings = read_maps(target.pid());
  REQUIRE(mappings);
  // Eight ranges of 1 KiB; one may straddle the boundary of two mappings (the buffer spans .data and .bss pages),
  // and such a range is never copied before the stop (a partial copy could not be kept).
  auto in_one_mapping = [&](AddressRange range) {
    for (const Mapping& mapping : *mappings)
      if (mapping.range.contains(range.start) && range.end <= mapping.range.end) return true;
    return false;
  };
  std::vector<AddressRange> ranges;
  for (std::uint64_t k = 0; k < 8; ++k) ranges.push_back(buffer.part(k * 1024, (k + 1) * 1024));
  ranges.push_back(AddressRange{RemoteAddress(0x1000), RemoteAddress(0x2000)});  // unmapped
  ranges.push_back(buffer.part(512, 1536));                                       // overlaps two others
  Precopy precopy = Precopy::copy(target.pid(), ranges, *mappings);
  REQUIRE(precopy.size() == ranges.size());
  std::uint64_t expected_bytes = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    INFO("range " << i);
    const bool overlapped = i <= 1;  // the tenth range overlaps the first two: none of the three is copied
    CHECK(precopy.copied(i) == (in_one_mapping(ranges[i]) && !overlapped));
    if (precopy.copied(i)) expected_bytes += 1024;
  }
  CHECK_FALSE(precopy.copied(8));
  CHECK_FALSE(precopy.copied(9));
  CHECK(precopy.copied_bytes() == expected_bytes);

  CaptureOptions options;
  options.mappings = &*mappings;
  options.precopy = &precopy;
  auto snapshot = capture_live(target.pid(), options, [&](const Memory&, const std::vector<ThreadState>&) {
    for (std::size_t i = 0; i < ranges.size(); i += 2) precopy.keep(i);  // 0, 2, 4, 6 and the unmapped one
    return std::vector<AddressRange>{};
  });
  REQUIRE(snapshot);
  std::size_t visible = 0, invisible = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    INFO("range " << i);
    const bool should_show = precopy.copied(i) && i % 2 == 0;
    CHECK(precopy.kept(i) == should_show);
    CHECK(holds_pattern(*snapshot->memory, buffer, i * 1024, (i + 1) * 1024) == should_show);
    // The bytes of a range nobody kept were copied, but are not part of the snapshot.
    CHECK(copied(*snapshot).region_containing(ranges[i].start).has_value() == should_show);
    (should_show ? visible : invisible) += 1;
  }
  CHECK(visible >= 2);
  CHECK(invisible >= 4);
  CHECK_FALSE(copied(*snapshot).region_containing(RemoteAddress(0x1000)));
}

TEST_CASE("a kept range that the planner also asks for is copied inside the pause, once") {
  TestProcess target({bin("threads_blocked"), "1"});
  const PatternBuffer buffer = start_pattern_program(target);
  auto mappings = read_maps(target.pid());
  REQUIRE(mappings);
  // The buffer's first whole page lies in one mapping, whatever the layout.
  const std::uint64_t page = (4096 - buffer.start.value() % 4096) % 4096;
  Precopy precopy =
      Precopy::copy(target.pid(), {buffer.part(page, page + 1024), buffer.part(page + 2048, page + 3072)}, *mappings);
  REQUIRE(precopy.copied(0));
  REQUIRE(precopy.copied(1));
  CaptureOptions options;
  options.mappings = &*mappings;
  options.precopy = &precopy;
  auto snapshot = capture_live(target.pid(), options, [&](const Memory&, const std::vector<ThreadState>&) {
    precopy.keep(0);
    precopy.keep(1);
    return std::vector<AddressRange>{buffer.part(page + 512, page + 1536)};  // overlaps the first kept range
  });
  REQUIRE(snapshot);
  CHECK_FALSE(precopy.kept(0));
  CHECK(precopy.kept(1));
  CHECK(holds_pattern(*snapshot->memory, buffer, page, page + 1536));  // one region: the pause's copy of both
  CHECK(holds_pattern(*snapshot->memory, buffer, page + 2048, page + 3072));
  CHECK(copied(*snapshot).total_bytes() == 1536 + 1024);
}

TEST_CASE("ranges copied first are read by the planner from their copy and not copied again") {
  TestProcess target({bin("threads_blocked"), "1"});
  const PatternBuffer buffer = start_pattern_program(target);
  auto mappings = read_maps(target.pid());
  REQUIRE(mappings);
  CaptureOptions options;
  options.mappings = &*mappings;
  options.copy_first = {buffer.part(0, 4096)};
  bool planner_read_pattern = false;
  auto snapshot = capture_live(target.pid(), options, [&](const Memory& live, const std::vector<ThreadState>&) {
    planner_read_pattern = holds_pattern(live, buffer, 100, 200) && holds_pattern(live, buffer, 5000, 5100);
    return std::vector<AddressRange>{buffer.part(2048, 8192)};  // half of it already copied
  });
  REQUIRE(snapshot);
  CHECK(planner_read_pattern);
  CHECK(holds_pattern(*snapshot->memory, buffer, 0, 4096));
  CHECK(holds_pattern(*snapshot->memory, buffer, 4096, 8192));
  CHECK(copied(*snapshot).total_bytes() == 8192);
}

TEST_CASE("subtracting copied ranges leaves the parts around them") {
  auto r = [](std::uint64_t start, std::uint64_t end) {
    return AddressRange{RemoteAddress(start), RemoteAddress(end)};
  };
  const std::vector<AddressRange> ranges{r(0x1000, 0x5000), r(0x6000, 0x7000), r(0x8000, 0x9000)};
  const std::vector<AddressRange> copied{r(0x0, 0x1800), r(0x2000, 0x3000), r(0x4800, 0x6800)};
  const std::vector<AddressRange> left = subtract_ranges(ranges, copied);
  REQUIRE(left.size() == 4);
  CHECK((left[0].start.value() == 0x1800 && left[0].end.value() == 0x2000));
  CHECK((left[1].start.value() == 0x3000 && left[1].end.value() == 0x4800));
  CHECK((left[2].start.value() == 0x6800 && left[2].end.value() == 0x7000));
  CHECK((left[3].start.value() == 0x8000 && left[3].end.value() == 0x9000));
  CHECK(overlaps_any(r(0x17ff, 0x1801), copied));
  CHECK_FALSE(overlaps_any(r(0x1800, 0x2000), copied));
  CHECK_FALSE(overlaps_any(r(0x7000, 0x8000), copied));
  CHECK_FALSE(overlaps_any(r(0x7000, 0x7000), copied));
}
