// session::build_dump's speed options on a real fiber program: without fiber arguments the dump keeps every fiber
// and every frame (the same functions in the same order), only the arguments are left out; threads keep theirs.
#include <catch2/catch.hpp>

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
