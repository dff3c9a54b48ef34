// capture_live options that exist for speed with many fibers: the caller's own memory map is reused instead of
// being read again.
#include <catch2/catch.hpp>

#include <algorithm>

#include "target/live_capture.h"
#include "target/proc_files.h"
#include "test_process.h"

using namespace fiberscope;
using namespace fiberscope::target;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

TEST_CASE("a capture given the caller's memory map uses it instead of reading /proc/PID/maps again") {
  TestProcess target({bin("threads_blocked"), "2"});
  REQUIRE(target.wait_for("READY"));
  auto maps = read_maps(target.pid(), nullptr);
  REQUIRE(maps);
  REQUIRE_FALSE(maps->empty());
  // A mapping the kernel would never list: if it shows up in the snapshot, the caller's list was used.
  Mapping marker;
  marker.range = {RemoteAddress(0x7fff00000000), RemoteAddress(0x7fff00001000)};
  marker.path = "[fiberscope test marker]";
  std::vector<Mapping> given = *maps;
  given.insert(std::upper_bound(given.begin(), given.end(), marker,
                                [](const Mapping& a, const Mapping& b) { return a.range.start < b.range.start; }),
               marker);

  CaptureOptions options;
  options.mappings = &given;
  auto snapshot = capture_live(target.pid(), options, [](const Memory&, const std::vector<ThreadState>& threads) {
    std::vector<AddressRange> ranges;
    for (const ThreadState& thread : threads)
      if (thread.registers)
        ranges.push_back({RemoteAddress(thread.registers->sp()), RemoteAddress(thread.registers->sp() + 64)});
    return ranges;
  });
  REQUIRE(snapshot);
  CHECK(snapshot->mappings.size() == given.size());
  CHECK(std::any_of(snapshot->mappings.begin(), snapshot->mappings.end(),
                    [](const Mapping& m) { return m.path == "[fiberscope test marker]"; }));
  REQUIRE(snapshot->threads.size() == 3);
  for (const ThreadState& thread : snapshot->threads) {
    REQUIRE(thread.registers);
    CHECK(snapshot->memory->read_u64(RemoteAddress(thread.registers->sp())));
  }

  SECTION("without it, the capture reads the map itself") {
    auto own = capture_live(target.pid(), {}, nullptr);
    REQUIRE(own);
    CHECK_FALSE(own->mappings.empty());
    CHECK(std::none_of(own->mappings.begin(), own->mappings.end(),
                       [](const Mapping& m) { return m.path == "[fiberscope test marker]"; }));
  }
}
