// The pre-copy's reconcile rule on an in-memory table: which fibers' stacks are copied before the stop, and which
// of those copies still hold inside it (same even seqlock value, still parked, no transitions, same used range).
#include <catch2/catch.hpp>

#include <algorithm>

#include "fake_table.h"
#include "fibers/capture_plan.h"
#include "fibers/fiber_table.h"

using namespace fiberscope;
using namespace fiberscope::fibers;
using namespace fiberscope::fibers::testing;
using target::AddressRange;
using target::RemoteAddress;

namespace {

const ParkedStack* planned_for(const StackPrecopyPlan& plan, unsigned index) {
  const RemoteAddress record(TableBuilder::fiber_address(index));
  for (const ParkedStack& parked : plan.stacks)
    if (parked.record == record) return &parked;
  return nullptr;
}

StackView view_of(FakeMemory& memory, unsigned index) {
  auto scan = scan_fiber_stacks(memory, RemoteAddress(kRoot));
  REQUIRE(scan);
  for (const StackView& view : scan->fibers)
    if (view.record == RemoteAddress(TableBuilder::fiber_address(index))) return view;
  FAIL("fiber " << index << " not in the scan");
  return {};
}

}  // namespace

TEST_CASE("only parked fibers without transitions and with an even seqlock value are pre-copied") {
  TableBuilder builder(2, 8);
  builder.fibers[1].state = FIBERSCOPE_FIBER_RUNNING;
  builder.fibers[2].state = FIBERSCOPE_FIBER_SYSCALL;
  builder.fibers[3].state = FIBERSCOPE_FIBER_FOREIGN;
  builder.fibers[4].seq = 7;  // caught mid-update
  builder.fibers[5].transition_top = builder.fibers[5].stack_hi - 0x100;
  builder.fibers[5].foreign_depth = 1;
  builder.fibers[6].state = FIBERSCOPE_FIBER_DEAD;
  builder.fibers[7].state = FIBERSCOPE_FIBER_RUNNABLE;
  builder.fibers[7].seq = 42;
  FakeMemory memory;
  builder.install(memory);
  auto scan = scan_fiber_stacks(memory, RemoteAddress(kRoot));
  REQUIRE(scan);
  const StackPrecopyPlan plan = plan_stack_precopy(*scan);
  CHECK(plan.live_fibers == 7);
  REQUIRE(planned_for(plan, 0));
  REQUIRE(planned_for(plan, 7));
  for (unsigned i = 1; i <= 6; ++i) {
    INFO("fiber " << i);
    CHECK_FALSE(planned_for(plan, i));
  }
  // From the saved sp (no red zone: nothing below a parked fiber's sp is live) to the top of its stack.
  const ParkedStack& parked = *planned_for(plan, 7);
  CHECK(parked.sequence == 42);
  CHECK(parked.used.start.value() == builder.fibers[7].context.sp);
  CHECK(parked.used.end.value() == builder.fibers[7].stack_hi);
  CHECK(std::is_sorted(plan.stacks.begin(), plan.stacks.end(),
                       [](const ParkedStack& a, const ParkedStack& b) { return a.record < b.record; }));
  // The table's own memory: the root and both chunks, to be copied first inside the stop.
  CHECK(plan.table_ranges.size() == 3);
  CHECK(plan.table_ranges.front().start.value() == kRoot);
}

TEST_CASE("a pre-copied stack is kept only if the record shows the fiber never moved") {
  TableBuilder builder(1, 1);
  builder.fibers[0].seq = 10;
  FakeMemory memory;
  builder.install(memory);
  auto scan = scan_fiber_stacks(memory, RemoteAddress(kRoot));
  REQUIRE(scan);
  const StackPrecopyPlan plan = plan_stack_precopy(*scan);
  REQUIRE(plan.stacks.size() == 1);
  const ParkedStack before = plan.stacks.front();
  fiberscope_fiber& now = builder.fibers[0];

  SECTION("unchanged seqlock value, still parked: kept") {
    builder.install(memory);
    CHECK(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("runnable instead of waiting with the same seqlock value (a state written without the seqlock would "
          "be a runtime bug, but the rule only needs parked): kept") {
    now.state = FIBERSCOPE_FIBER_RUNNABLE;
    builder.install(memory);
    CHECK(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("the fiber ran and parked again at the same place: seqlock moved, copied again") {
    now.seq = 14;
    builder.install(memory);
    CHECK_FALSE(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("the record is being written (odd seqlock value): copied again") {
    now.seq = 11;
    builder.install(memory);
    CHECK_FALSE(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("running at the stop: copied again") {
    now.state = FIBERSCOPE_FIBER_RUNNING;
    builder.install(memory);
    CHECK_FALSE(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("in a foreign call's callback (transitions): copied again") {
    now.transition_top = now.stack_hi - 0x80;
    now.foreign_depth = 1;
    builder.install(memory);
    CHECK_FALSE(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("saved sp moved (a record rewritten without its seqlock): copied again") {
    now.context.sp -= 0x40;
    builder.install(memory);
    CHECK_FALSE(precopy_still_valid(before, view_of(memory, 0)));
  }
  SECTION("another record: never matched") {
    StackView other = view_of(memory, 0);
    other.record = other.record + sizeof(fiberscope_fiber);
    CHECK_FALSE(precopy_still_valid(before, other));
  }
}

TEST_CASE("records left out of a table read are not decoded; the others are") {
  TableBuilder builder(2, 20);
  builder.fibers[3].state = FIBERSCOPE_FIBER_RUNNING;
  FakeMemory memory;
  builder.install(memory);
  auto scan = scan_fiber_stacks(memory, RemoteAddress(kRoot));
  REQUIRE(scan);
  const StackPrecopyPlan plan = plan_stack_precopy(*scan);
  REQUIRE(plan.stacks.size() == 19);
  // Between the scan and the stop fiber 5 runs and parks again.
  builder.fibers[5].seq += 4;
  builder.install(memory);
  std::size_t kept = 0;
  ReadOptions options{.target_stopped = true};
  options.leave_out = [&](const StackView& view) {
    auto found = std::find_if(plan.stacks.begin(), plan.stacks.end(),
                              [&](const ParkedStack& parked) { return parked.record == view.record; });
    const bool keep = found != plan.stacks.end() && precopy_still_valid(*found, view);
    kept += keep;
    return keep;
  };
  auto rest = read_fiber_table(memory, RemoteAddress(kRoot), options);
  REQUIRE(rest);
  CHECK(kept == 18);
  REQUIRE(rest->fibers.size() == 2);
  CHECK(rest->fibers[0].id == builder.fibers[3].id);
  CHECK(rest->fibers[1].id == builder.fibers[5].id);
  CHECK(rest->workers.size() == 2);
  // The plan made from what is left copies only those two stacks (fiber 3 runs on no known thread: the top of its
  // stack), the root and the two chunks.
  const std::vector<AddressRange> ranges = plan_regions(&*rest, {}, {});
  CHECK(ranges.size() == 2 + 1 + 2);
}
