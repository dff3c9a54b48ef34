// The stack pre-copy on a live process whose fibers keep switching while it is inspected: parked fibers show the
// same stacks as with every stack copied inside the pause, and a fiber that moved between the pre-copy and the
// stop never shows frames from the place it had left (its stale copy is not in the snapshot).
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "session/inspection.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

std::vector<std::string> function_names(const report::Fiber& fiber) {
  std::vector<std::string> names;
  for (const report::Frame& frame : fiber.stack.frames) names.push_back(frame.function);
  return names;
}

// Index of the first frame whose function contains `part`, or -1.
int frame_index(const std::vector<std::string>& names, const std::string& part) {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i].find(part) != std::string::npos) return static_cast<int>(i);
  return -1;
}

bool in_order(const std::vector<std::string>& names, const std::vector<std::string>& parts) {
  int last = -1;
  for (const std::string& part : parts) {
    const int at = frame_index(names, part);
    if (at <= last) return false;
    last = at;
  }
  return true;
}

report::Dump dump_of(session::Inspection& inspection) {
  session::BuildOptions options;
  options.fiber_args = false;
  return session::build_dump(inspection, options);
}

}  // namespace

TEST_CASE("fibers switching during a pre-copied dump show their real frames, parked ones the exact stacks") {
  TestProcess target({bin("switching_fibers"), "--parked", "300", "--switchers", "6"});
  REQUIRE(target.wait_for("READY"));

  auto exact = session::inspect_live(target.pid(), {.exact_stacks = true});
  REQUIRE(exact);
  CHECK_FALSE(exact->precopy);
  std::map<std::uint64_t, std::vector<std::string>> parked_reference;
  for (const report::Fiber& fiber : dump_of(*exact).fibers)
    if (fiber.name.starts_with("parked-")) parked_reference[fiber.id] = function_names(fiber);
  REQUIRE(parked_reference.size() == 300);
  for (const auto& [id, names] : parked_reference) {
    INFO("fiber " << id);
    REQUIRE(in_order(names, {"parked_level_two", "parked_level_one"}));
  }

  std::size_t recopied = 0, switchers_checked = 0;
  for (int round = 0; round < 6; ++round) {
    auto inspection = session::inspect_live(target.pid(), {});
    REQUIRE(inspection);
    REQUIRE(inspection->precopy);
    CHECK(inspection->precopy->stacks_planned >= 300);
    CHECK(inspection->precopy->stacks_kept >= 300);  // the parked fibers never move
    recopied += inspection->precopy->stacks_planned - inspection->precopy->stacks_kept;
    const report::Dump dump = dump_of(*inspection);
    std::size_t parked_seen = 0;
    for (const report::Fiber& fiber : dump.fibers) {
      INFO("round " << round << ", fiber " << fiber.id << " \"" << fiber.name << "\" [" << fiber.state << "]");
      const std::vector<std::string> names = function_names(fiber);
      if (fiber.name.starts_with("parked-")) {
        ++parked_seen;
        CHECK(names == parked_reference[fiber.id]);
        CHECK(fiber.stack.stop_reason.empty());
      } else if (fiber.name.starts_with("switcher-") && fiber.state != "running") {
        // Parked at one of its two places: exactly that place's chain, nothing of the other one.
        ++switchers_checked;
        CHECK(fiber.stack.stop_reason.empty());
        const bool at_a = frame_index(names, "path_a_") >= 0;
        const bool at_b = frame_index(names, "path_b_") >= 0;
        CHECK(at_a != at_b);
        if (at_a) CHECK(in_order(names, {"path_a_two", "path_a_one", "switcher_main"}));
        if (at_b) CHECK(in_order(names, {"path_b_three", "path_b_two", "path_b_one", "switcher_main"}));
      }
    }
    CHECK(parked_seen == 300);
  }
  // The switchers moved between the pre-copy and the stop, so their copies were dropped and taken again inside the
  // pause: the test exercised the path it is about.
  CHECK(recopied > 0);
  CHECK(switchers_checked > 0);
}

TEST_CASE("reads with --no-stop and with exact stacks still work on the switching process") {
  TestProcess target({bin("switching_fibers"), "--parked", "50", "--switchers", "4"});
  REQUIRE(target.wait_for("READY"));
  auto running = session::inspect_live(target.pid(), {.stop = false});
  REQUIRE(running);
  CHECK_FALSE(running->precopy);
  CHECK_FALSE(running->snapshot.target_was_stopped);
  REQUIRE(running->table);
  CHECK(running->table->fibers.size() >= 55);
  auto exact = session::inspect_live(target.pid(), {.exact_stacks = true});
  REQUIRE(exact);
  CHECK_FALSE(exact->precopy);
  REQUIRE(exact->table);
  CHECK(exact->table->fibers.size() >= 55);
}
