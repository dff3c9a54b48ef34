// The parts of the capture that keep the pause short with many fibers: the copy reservation's estimate and the
// plan for a table of thousands of fibers (one range per live fiber, workers matched only against fibers that
// have transitions).
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

bool planned(const std::vector<AddressRange>& ranges, AddressRange wanted) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [&](AddressRange range) { return range.start == wanted.start && range.end == wanted.end; });
}

}  // namespace

TEST_CASE("the copy estimate counts every live fiber's record and its share of stack") {
  TableBuilder builder(2, 5);
  FakeMemory memory;
  builder.install(memory);
  CHECK(expected_copy_bytes(memory, RemoteAddress(kRoot)) == 5 * (sizeof(fiberscope_fiber) + 1024));
  CHECK(expected_copy_bytes(memory, RemoteAddress(kRoot), 4096) == 5 * (sizeof(fiberscope_fiber) + 4096));
}

TEST_CASE("the copy estimate is zero for an unusable root and capped for a lying one") {
  SECTION("bad magic") {
    TableBuilder builder(1, 3);
    builder.root.magic = 0x1234;
    FakeMemory memory;
    builder.install(memory);
    CHECK(expected_copy_bytes(memory, RemoteAddress(kRoot)) == 0);
  }
  SECTION("unreadable root") {
    FakeMemory memory;
    CHECK(expected_copy_bytes(memory, RemoteAddress(kRoot)) == 0);
  }
  SECTION("a root claiming 2^60 live fibers and huge records") {
    TableBuilder builder(1, 3);
    builder.root.fibers_live = std::uint64_t{1} << 60;
    builder.root.fiber_record_size = 0xffffffffu;
    FakeMemory memory;
    builder.install(memory);
    const std::uint64_t estimate = expected_copy_bytes(memory, RemoteAddress(kRoot), std::uint64_t{1} << 40);
    CHECK(estimate > 0);
    CHECK(estimate <= (std::uint64_t{1} << 30));
  }
}

TEST_CASE("the plan for thousands of parked fibers has one stack range per live fiber, from its sp to its top") {
  constexpr unsigned kFibers = 3000;
  TableBuilder builder(4, kFibers);
  builder.fibers[7].state = FIBERSCOPE_FIBER_DEAD;  // no stack to copy
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot), {.target_stopped = true});
  REQUIRE(table);
  REQUIRE(table->fibers.size() == kFibers);
  const std::vector<AddressRange> ranges = plan_regions(&*table, {}, {});
  for (unsigned i = 0; i < kFibers; ++i) {
    const fiberscope_fiber& fiber = builder.fibers[i];
    // A parked fiber's frames start at its saved sp: the red zone below it holds nothing live.
    const AddressRange used{RemoteAddress(fiber.context.sp), RemoteAddress(fiber.stack_hi)};
    INFO("fiber " << i);
    CHECK(planned(ranges, used) == (i != 7));
  }
  // Plus the root and the two chunks; nothing for workers that run no fiber.
  CHECK(ranges.size() == kFibers - 1 + 1 + 2);
}

TEST_CASE("a worker in a foreign call gets its system stack copied from the lowest transition record on it") {
  TableBuilder builder(3, 50);
  fiberscope_worker& worker = builder.workers[2];
  fiberscope_fiber& fiber = builder.fibers[42];
  fiber.state = FIBERSCOPE_FIBER_FOREIGN;
  fiber.worker = 2;
  fiber.foreign_depth = 1;
  worker.state = FIBERSCOPE_WORKER_SYSCALL;
  worker.current_fiber = fiber.id;
  worker.current_record = TableBuilder::fiber_address(42);
  // The transition record sits on the worker's system stack, 0x400 below its top.
  const std::uint64_t record_at = worker.sysstack_hi - 0x400;
  fiber.transition_top = record_at;
  fiberscope_transition transition{};
  transition.kind = FIBERSCOPE_TRANSITION_FOREIGN_CALL;
  transition.depth = 1;
  transition.from_sp = fiber.stack_hi - 0x300;
  transition.from_pc = 0x401234;
  transition.to_sp = record_at - 0x40;
  FakeMemory memory;
  builder.install(memory);
  memory.put_object(record_at, transition);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot), {.target_stopped = true});
  REQUIRE(table);
  const std::vector<AddressRange> ranges = plan_regions(&*table, {}, {});
  const AddressRange system_part{RemoteAddress(record_at - 0x40 - 128), RemoteAddress(worker.sysstack_hi)};
  CHECK(planned(ranges, system_part));
}
