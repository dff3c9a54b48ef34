#include <catch2/catch.hpp>

#include "target/copy_plan.h"

using namespace fiberscope;
using namespace fiberscope::target;

namespace {

AddressRange range(std::uint64_t start, std::uint64_t end) { return {RemoteAddress(start), RemoteAddress(end)}; }

Mapping mapping(std::uint64_t start, std::uint64_t end, bool readable = true) {
  Mapping result;
  result.range = range(start, end);
  result.readable = readable;
  return result;
}

}  // namespace

TEST_CASE("plan_copies merges overlapping, repeated and touching ranges and drops empty ones") {
  std::vector<AddressRange> requested = {range(0x3000, 0x3100), range(0x1000, 0x1100), range(0x1080, 0x1200),
                                         range(0x1200, 0x1300), range(0x3000, 0x3100), range(0x5000, 0x5000)};
  std::vector<std::string> warnings;
  auto planned = plan_copies(requested, {}, CaptureOptions{}, warnings);
  REQUIRE(planned.size() == 2);
  CHECK(planned[0].start == RemoteAddress(0x1000));
  CHECK(planned[0].end == RemoteAddress(0x1300));
  CHECK(planned[1].start == RemoteAddress(0x3000));
  CHECK(warnings.empty());
}

TEST_CASE("plan_copies drops unreadable mappings, joins back-to-back readable ones and keeps holes apart") {
  std::vector<Mapping> mappings = {mapping(0x1000, 0x2000), mapping(0x2000, 0x3000), mapping(0x3000, 0x4000, false),
                                   mapping(0x8000, 0x9000)};
  std::vector<AddressRange> requested = {range(0x1800, 0x3800), range(0x6000, 0x6100), range(0x7f00, 0x8100),
                                         range(0x8f00, 0x9100)};
  std::vector<std::string> warnings;
  CaptureOptions options;
  options.bridged_gap_bytes = 512;
  auto planned = plan_copies(requested, mappings, options, warnings);
  REQUIRE(planned.size() == 6);
  CHECK(planned[0].start == RemoteAddress(0x1800));  // two readable mappings, one range
  CHECK(planned[0].end == RemoteAddress(0x3000));
  CHECK(planned[1].start == RemoteAddress(0x6000));  // a hole: maybe mapped since the maps were read
  CHECK(planned[1].end == RemoteAddress(0x6100));
  CHECK(planned[2].end == RemoteAddress(0x8000));    // hole then mapping: split, so one cannot fail the other
  CHECK(planned[3].start == RemoteAddress(0x8000));
  CHECK(planned[3].end == RemoteAddress(0x8100));
  CHECK(planned[4].start == RemoteAddress(0x8f00));  // mapping then hole
  CHECK(planned[4].end == RemoteAddress(0x9000));
  CHECK(planned[5].end == RemoteAddress(0x9100));
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("unreadable mappings"));
}

TEST_CASE("plan_copies never returns overlapping ranges, even for overlapping mappings") {
  std::vector<Mapping> mappings = {mapping(0x1000, 0x3000), mapping(0x2000, 0x4000), mapping(0x2800, 0x2900, false)};
  std::vector<std::string> warnings;
  auto planned = plan_copies(std::vector<AddressRange>{range(0x0800, 0x5000)}, mappings, CaptureOptions{}, warnings);
  REQUIRE_FALSE(planned.empty());
  for (std::size_t i = 0; i < planned.size(); ++i) {
    CHECK(planned[i].start < planned[i].end);
    if (i > 0) CHECK(planned[i - 1].end <= planned[i].start);
  }
}

TEST_CASE("plan_copies applies the per-region and total caps and says so") {
  CaptureOptions options;
  options.max_region_bytes = 0x100;
  options.max_total_bytes = 0x180;
  std::vector<AddressRange> requested = {range(0x1000, 0x5000), range(0x9000, 0x9100), range(0xa000, 0xa100)};
  std::vector<std::string> warnings;
  auto planned = plan_copies(requested, {}, options, warnings);
  REQUIRE(planned.size() == 2);
  CHECK(planned[0].size_bytes() == 0x100);
  CHECK(planned[1].size_bytes() == 0x80);
  REQUIRE(warnings.size() == 2);
  CHECK_THAT(warnings[1], Catch::Contains("total cap"));
}

TEST_CASE("plan_copies skips reversed ranges and limits how many warnings a hostile plan produces") {
  std::vector<AddressRange> requested;
  for (std::uint64_t i = 0; i < 1000; ++i) requested.push_back(range(0x100000 + i * 0x10, 0x1000 + i));
  std::vector<std::string> warnings;
  auto planned = plan_copies(requested, {}, CaptureOptions{}, warnings);
  CHECK(planned.empty());
  CHECK(warnings.size() <= 10);
  CHECK_THAT(warnings.back(), Catch::Contains("992 more"));
}

TEST_CASE("plan_copies with bridged_gap_bytes copies near ranges in one readable mapping as one, gap included") {
  std::vector<Mapping> mappings = {mapping(0x1000, 0x2000), mapping(0x2100, 0x3000), mapping(0x3000, 0x3100, false),
                                   mapping(0x3100, 0x4000)};
  std::vector<AddressRange> requested = {range(0x1000, 0x1188), range(0x11a0, 0x1328),  // 24 bytes apart: joined
                                         range(0x1800, 0x1900),                          // 1 KiB further: apart
                                         range(0x1f80, 0x2000), range(0x2100, 0x2180),  // another mapping: apart
                                         range(0x2f80, 0x3000), range(0x3100, 0x3180)};  // unreadable between
  std::vector<std::string> warnings;
  CaptureOptions options;
  options.bridged_gap_bytes = 512;
  auto planned = plan_copies(requested, mappings, options, warnings);
  REQUIRE(planned.size() == 6);
  CHECK(planned[0].start == RemoteAddress(0x1000));
  CHECK(planned[0].end == RemoteAddress(0x1328));
  CHECK(planned[1].start == RemoteAddress(0x1800));
  CHECK(planned[2].start == RemoteAddress(0x1f80));
  CHECK(planned[3].start == RemoteAddress(0x2100));
  CHECK(planned[4].end == RemoteAddress(0x3000));
  CHECK(planned[5].start == RemoteAddress(0x3100));
  CHECK(warnings.empty());
  // Without maps nothing says the gap is readable, and without the option nothing is bridged: ranges stay apart.
  const std::vector<AddressRange> near = {range(0x1000, 0x1188), range(0x11a0, 0x1328)};
  CHECK(plan_copies(near, {}, options, warnings).size() == 2);
  CHECK(plan_copies(near, mappings, CaptureOptions{}, warnings).size() == 2);
}
