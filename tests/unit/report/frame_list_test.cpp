// report::FrameList: copies share one list until one is changed, and the grouping and folded reporters treat
// fibers that share a list exactly like fibers with equal copies.
#include <catch2/catch.hpp>

#include "report/folded_reporter.h"
#include "report/grouping.h"

using namespace fiberscope::report;

namespace {

Frame frame(std::uint64_t pc, std::string function) {
  Frame result;
  result.pc = pc;
  result.function = std::move(function);
  result.stack = StackKind::fiber;
  return result;
}

Fiber fiber(std::uint64_t id, FrameList frames) {
  Fiber result;
  result.id = id;
  result.state = "waiting";
  result.wait_reason = "sleep";
  result.stack.frames = std::move(frames);
  return result;
}

}  // namespace

TEST_CASE("a copied frame list is shared until one copy changes, and the change copies first") {
  FrameList original{frame(0x10, "park"), frame(0x20, "work")};
  FrameList copy = original;
  CHECK(copy.shares_with(original));
  CHECK(copy.identity() == original.identity());

  copy.mutable_at(1).function = "other";
  CHECK_FALSE(copy.shares_with(original));
  CHECK(original[1].function == "work");
  CHECK(copy[1].function == "other");

  copy.push_back(frame(0x30, "main"));
  CHECK(copy.size() == 3);
  CHECK(original.size() == 2);
  CHECK(copy.back().function == "main");

  FrameList empty;
  CHECK(empty.empty());
  CHECK(empty.begin() == empty.end());
  CHECK(empty.identity() == nullptr);
  CHECK_FALSE(empty.shares_with(FrameList{}));
  empty.push_back(frame(0x40, "first"));
  CHECK(empty.front().function == "first");
}

TEST_CASE("fibers sharing one frame list group and fold like fibers with equal copies") {
  const FrameList shared{frame(0x10, "park"), frame(0x20, "sleeper")};
  std::vector<Fiber> fibers = {fiber(1, shared), fiber(2, shared),
                               fiber(3, FrameList{frame(0x10, "park"), frame(0x20, "sleeper")}),
                               fiber(4, FrameList{frame(0x10, "park"), frame(0x28, "worker")}), fiber(5, shared)};
  fibers[4].stack.stop_reason = "cfa outside the stack";  // same list, but its walk stopped: a key of its own
  std::vector<const Fiber*> pointers;
  for (const Fiber& f : fibers) pointers.push_back(&f);

  const std::vector<FiberGroup> groups = group_fibers(pointers);
  REQUIRE(groups.size() == 3);
  REQUIRE(groups[0].members.size() == 3);
  CHECK(groups[0].members[0]->id == 1);
  CHECK(groups[0].members[2]->id == 3);
  CHECK(groups[1].members.front()->id == 4);
  CHECK(groups[2].members.front()->id == 5);
  CHECK(stack_group_key(fibers[0]) == stack_group_key(fibers[2]));

  Dump dump;
  dump.fibers = fibers;
  CHECK(render_folded(dump) == "sleeper;park 4\nworker;park 1\n");
}
