// session::build_dump's speed options on a real fiber program: without fiber arguments the dump keeps every fiber
// and every frame (the same functions in the same order), only the arguments are left out; threads keep theirs.
#include <catch2/catch.hpp>

#include <algorithm>

#include "report/text_reporter.h"
#include "session/inspection.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

TEST_CASE("a dump built without fiber arguments has the same fibers and frames, and no fiber arguments") {
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  auto inspection = session::inspect_live(target.pid(), {.stop = true});
  REQUIRE(inspection);

  const report::Dump with_args = session::build_dump(*inspection, {});
  session::BuildOptions options;
  options.fiber_args = false;
  const report::Dump without_args = session::build_dump(*inspection, options);

  REQUIRE(with_args.fibers.size() == without_args.fibers.size());
  REQUIRE_FALSE(with_args.fibers.empty());
  std::size_t fiber_frames_with_args = 0;
  for (std::size_t i = 0; i < with_args.fibers.size(); ++i) {
    const report::Fiber& full = with_args.fibers[i];
    const report::Fiber& lean = without_args.fibers[i];
    CHECK(full.id == lean.id);
    REQUIRE(full.stack.frames.size() == lean.stack.frames.size());
    for (std::size_t k = 0; k < full.stack.frames.size(); ++k) {
      CHECK(full.stack.frames[k].function == lean.stack.frames[k].function);
      CHECK(full.stack.frames[k].line == lean.stack.frames[k].line);
      CHECK_FALSE(lean.stack.frames[k].args_known);
      CHECK(lean.stack.frames[k].args.empty());
      fiber_frames_with_args += full.stack.frames[k].args_known ? 1 : 0;
    }
  }
  CHECK(fiber_frames_with_args > 0);  // the -O0 program's fiber frames do have DWARF arguments

  REQUIRE(with_args.threads.size() == without_args.threads.size());
  for (std::size_t i = 0; i < with_args.threads.size(); ++i) {
    const auto& full = with_args.threads[i].stack.frames;
    const auto& lean = without_args.threads[i].stack.frames;
    REQUIRE(full.size() == lean.size());
    for (std::size_t k = 0; k < full.size(); ++k) CHECK(full[k].args_known == lean[k].args_known);
  }
}

namespace {

// A fiber's frames as text: function, line and pc of each.
std::string frame_text(const report::Fiber& fiber) {
  std::string text;
  for (const report::Frame& frame : fiber.stack.frames)
    text += frame.function + ":" + std::to_string(frame.line) + "@" + std::to_string(frame.pc) + "\n";
  return text;
}

// A fiber's arguments as text, frame by frame.
std::string argument_text(const report::Fiber& fiber) {
  std::string text;
  for (const report::Frame& frame : fiber.stack.frames) {
    text += frame.args_known ? "(" : "(?";
    for (const report::Argument& arg : frame.args) text += report::format_argument(arg) + ",";
    text += ")";
  }
  return text;
}

}  // namespace

TEST_CASE("without fiber arguments, fibers parked at the same place share one frame list, and FiberArgsReader "
          "gives chosen fibers the arguments of a full build") {
  TestProcess target({bin("fiber_states_O0"), "--sleepers=5"});
  REQUIRE(target.wait_for("READY"));
  auto inspection = session::inspect_live(target.pid(), {.stop = true});
  REQUIRE(inspection);
  const report::Dump full = session::build_dump(*inspection, {});
  session::BuildOptions lean_options;
  lean_options.fiber_args = false;
  report::Dump lean = session::build_dump(*inspection, lean_options);
  REQUIRE(full.fibers.size() == lean.fibers.size());

  // Same frames <=> one shared list. The five extra sleepers run the same code, and the runtime parks every fiber
  // through one switch site, so they make one list; "sleeper" has a lambda of its own.
  std::size_t sharing_pairs = 0;
  for (std::size_t i = 0; i < lean.fibers.size(); ++i) {
    for (std::size_t j = i + 1; j < lean.fibers.size(); ++j) {
      const report::Fiber& a = lean.fibers[i];
      const report::Fiber& b = lean.fibers[j];
      INFO(a.name << " and " << b.name);
      const bool shared = a.stack.frames.shares_with(b.stack.frames);
      CHECK((frame_text(a) == frame_text(b)) == shared);
      if (shared) {
        CHECK(a.name.starts_with("sleeper-"));
        ++sharing_pairs;
      }
    }
  }
  CHECK(sharing_pairs == 10);  // five fibers on one list: every one of the 5 * 4 / 2 pairs

  // Arguments back for two sleepers and the channel waiter: what a full build has; the others stay lean.
  std::vector<std::uint64_t> chosen;
  for (const report::Fiber& fiber : lean.fibers)
    if (fiber.name == "sleeper-2" || fiber.name == "sleeper-4" || fiber.name == "chan-waiter")
      chosen.push_back(fiber.id);
  REQUIRE(chosen.size() == 3);
  session::FiberArgsReader reader(inspection->snapshot, &*inspection->table, *inspection->modules, lean_options);
  for (report::Fiber& fiber : lean.fibers) {
    if (std::find(chosen.begin(), chosen.end(), fiber.id) == chosen.end()) continue;
    std::optional<report::Stack> stack = reader.stack_with_args(fiber.id);
    REQUIRE(stack);
    fiber.stack = std::move(*stack);
  }
  for (std::size_t i = 0; i < lean.fibers.size(); ++i) {
    const bool is_chosen = std::find(chosen.begin(), chosen.end(), lean.fibers[i].id) != chosen.end();
    INFO(lean.fibers[i].name);
    CHECK(frame_text(lean.fibers[i]) == frame_text(full.fibers[i]));
    if (is_chosen) {
      CHECK(argument_text(lean.fibers[i]) == argument_text(full.fibers[i]));
    } else {
      CHECK(argument_text(lean.fibers[i]).find("=") == std::string::npos);
    }
  }
  const auto sleeper_4 = std::find_if(lean.fibers.begin(), lean.fibers.end(),
                                      [](const report::Fiber& fiber) { return fiber.name == "sleeper-4"; });
  REQUIRE(sleeper_4 != lean.fibers.end());
  CHECK(argument_text(*sleeper_4).find("seconds=3604") != std::string::npos);
}
