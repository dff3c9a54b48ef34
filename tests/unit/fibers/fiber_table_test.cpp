#include <catch2/catch.hpp>

#include "fake_table.h"
#include "fibers/fiber_table.h"

using namespace fiberscope;
using namespace fiberscope::fibers;
using namespace fiberscope::fibers::testing;
using target::RemoteAddress;

namespace {

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a well-formed table decodes every worker and fiber field") {
  TableBuilder builder(2, 3);
  builder.fibers[1].state = FIBERSCOPE_FIBER_RUNNING;
  builder.fibers[1].worker = 1;
  builder.fibers[1].flags = FIBERSCOPE_FIBER_FLAG_MAIN;
  std::memset(builder.fibers[2].name, 'x', sizeof builder.fibers[2].name);  // no NUL: all 32 bytes used
  FakeMemory memory;
  builder.install(memory);

  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->errors.empty());
  CHECK(table->clock_ns == 5'000'000'000);
  REQUIRE(table->workers.size() == 2);
  CHECK(table->workers[1].tid == 1001);
  CHECK(table->workers[1].state == WorkerState::idle);
  CHECK(table->workers[1].system_stack.start.value() == 0x900000);
  REQUIRE(table->fibers.size() == 3);
  const FiberRecord& first = table->fibers[0];
  CHECK(first.id == 1);
  CHECK(first.name == "fiber-1");
  CHECK(first.state == FiberState::waiting);
  CHECK(wait_reason_name(first.wait_reason) == "chan receive");
  CHECK(first.wait_object == 0xabc0);
  CHECK(first.stack.start.value() == 0x101000);
  CHECK(first.stack.end.value() == 0x110000);
  CHECK(first.context.sp == 0x110000 - 0x200);
  CHECK(first.address.value() == TableBuilder::fiber_address(0));
  CHECK_FALSE(first.worker_index);
  CHECK(first.integrity == Integrity::consistent);
  CHECK(table->fibers[1].worker_index == 1u);
  CHECK(table->fibers[1].is_main);
  CHECK(table->fibers[2].name == std::string(32, 'x'));
  CHECK(table->fiber_by_id(3) == &table->fibers[2]);
}

TEST_CASE("a root with the wrong magic is rejected with both values named") {
  TableBuilder builder(1, 1);
  builder.root.magic = 0x1122334455667788;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE_FALSE(table);
  CHECK(mentions(table.error().message, "bad magic 0x1122334455667788"));
  CHECK(mentions(table.error().message, "0x3142444353424946"));
}

TEST_CASE("an ABI version mismatch names both versions") {
  TableBuilder builder(1, 1);
  builder.root.abi_version = 7;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE_FALSE(table);
  CHECK(mentions(table.error().message, "target publishes version 7"));
  CHECK(mentions(table.error().message, "reads version 1"));
}

TEST_CASE("a struct size mismatch names the field and both sizes") {
  TableBuilder builder(1, 1);
  builder.root.fiber_record_size = 264;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE_FALSE(table);
  CHECK(mentions(table.error().message, "fiber_record_size is 264"));
  CHECK(mentions(table.error().message, "expects 256"));
}

TEST_CASE("an unreadable root is an error naming its address") {
  FakeMemory memory;
  auto table = read_fiber_table(memory, RemoteAddress(0xdead0000));
  REQUIRE_FALSE(table);
  CHECK(mentions(table.error().message, "0xdead0000 unreadable"));
}

TEST_CASE("garbage records become errors with index and address while the rest still reads") {
  TableBuilder builder(1, 5);
  builder.fibers[1].state = 99;
  builder.fibers[2].stack_lo = builder.fibers[2].stack_hi;
  builder.fibers[3].stack_hi = builder.fibers[3].stack_lo + (4ull << 30);
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  REQUIRE(table->fibers.size() == 2);
  CHECK(table->fibers[0].id == 1);
  CHECK(table->fibers[1].id == 5);
  REQUIRE(table->errors.size() == 3);
  CHECK(table->errors[0].index == 1);
  CHECK(table->errors[0].address.value() == TableBuilder::fiber_address(1));
  CHECK(mentions(table->errors[0].message, "fiber record 1 at " + hex(TableBuilder::fiber_address(1))));
  CHECK(mentions(table->errors[0].message, "state value 99"));
  CHECK(mentions(table->errors[1].message, ">= stack_hi"));
  CHECK(mentions(table->errors[2].message, "exceeds the cap"));
}

TEST_CASE("free records are skipped silently") {
  TableBuilder builder(1, 3);
  builder.fibers[1].state = FIBERSCOPE_FIBER_FREE;
  builder.fibers[1].stack_lo = 5;  // garbage in a never-used slot does not matter
  builder.fibers[1].stack_hi = 1;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->errors.empty());
  CHECK(table->fibers.size() == 2);
}

TEST_CASE("a chunk list that loops back stops with an error and keeps what it read") {
  TableBuilder builder(1, 2);
  builder.fiber_chunk.next = kFiberChunk;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->fibers.size() == 2);
  REQUIRE(table->errors.size() == 1);
  CHECK(table->errors[0].where == TableError::Where::fiber_chunk);
  CHECK(mentions(table->errors[0].message, "loops back"));
}

TEST_CASE("an unreadable next chunk is reported after the good chunk's records") {
  TableBuilder builder(1, 2);
  builder.fiber_chunk.next = 0x7777000;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->fibers.size() == 2);
  REQUIRE(table->errors.size() == 1);
  CHECK(mentions(table->errors[0].message, "fiber chunk 1 at 0x7777000: header unreadable"));
}

TEST_CASE("a chunk claiming more used records than its capacity is clamped") {
  TableBuilder builder(1, 2);
  builder.fiber_chunk.capacity = 2;
  builder.fiber_chunk.used = 50;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->fibers.size() == 2);
  REQUIRE(table->errors.size() == 1);
  CHECK(mentions(table->errors[0].message, "used 50 > capacity 2"));
}

TEST_CASE("a chunk with a wrong record size or an absurd capacity is skipped") {
  TableBuilder builder(1, 2);
  builder.fiber_chunk.record_size = 8;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->fibers.empty());
  REQUIRE(table->errors.size() == 1);
  CHECK(mentions(table->errors[0].message, "record_size 8"));

  TableBuilder huge(1, 1);
  huge.fiber_chunk.capacity = 0xffffffff;
  huge.fiber_chunk.used = 1;
  huge.fiber_chunk.record_size = sizeof(fiberscope_fiber);
  FakeMemory huge_memory;
  huge.root.worker_chunks = 0;
  huge_memory.put_object(kRoot, huge.root);
  huge_memory.put_object(kFiberChunk, huge.fiber_chunk);
  auto huge_table = read_fiber_table(huge_memory, RemoteAddress(kRoot));
  REQUIRE(huge_table);
  CHECK(mentions(huge_table->errors.at(0).message, "exceeds the cap"));
}

TEST_CASE("a stopped target caught mid-write marks the record in transition but uses it") {
  TableBuilder builder(1, 2);
  builder.fibers[0].seq = 7;
  builder.fibers[1].seq = 8;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot), {.target_stopped = true});
  REQUIRE(table);
  REQUIRE(table->fibers.size() == 2);
  CHECK(table->fibers[0].integrity == Integrity::in_transition);
  CHECK(table->fibers[1].integrity == Integrity::consistent);
}

TEST_CASE("without stopping, a record whose writer finishes during the retries reads as consistent") {
  TableBuilder builder(1, 1);
  builder.fibers[0].seq = 3;
  FakeMemory memory;
  builder.install(memory);
  // The writer finishes after a few reads: seq becomes even and stays.
  memory.on_read = [](FakeMemory& self) {
    if (self.reads == 6) {
      std::uint64_t done = 4;
      std::memcpy(self.at(TableBuilder::fiber_address(0)), &done, sizeof done);
    }
  };
  auto table = read_fiber_table(memory, RemoteAddress(kRoot), {.target_stopped = false});
  REQUIRE(table);
  REQUIRE(table->fibers.size() == 1);
  CHECK(table->fibers[0].integrity == Integrity::consistent);
}

TEST_CASE("without stopping, a record that keeps changing is marked torn after the retries") {
  TableBuilder builder(1, 1);
  FakeMemory memory;
  builder.install(memory);
  memory.on_read = [](FakeMemory& self) {
    std::uint64_t seq;
    std::memcpy(&seq, self.at(TableBuilder::fiber_address(0)), sizeof seq);
    ++seq;  // a busy writer bumps seq between every two reads
    std::memcpy(self.at(TableBuilder::fiber_address(0)), &seq, sizeof seq);
  };
  auto table = read_fiber_table(memory, RemoteAddress(kRoot), {.target_stopped = false, .torn_retries = 3});
  REQUIRE(table);
  REQUIRE(table->fibers.size() == 1);
  CHECK(table->fibers[0].integrity == Integrity::torn);
}

namespace {

// Writes a transition record at `address`.
void put_transition(FakeMemory& memory, std::uint64_t address, std::uint64_t prev, std::uint32_t kind,
                    std::uint32_t depth) {
  fiberscope_transition transition{};
  transition.prev = prev;
  transition.kind = kind;
  transition.depth = depth;
  transition.from_sp = address + 0x100;
  transition.from_pc = 0x405000 + depth;
  transition.to_sp = address - 0x10;
  memory.put_object(address, transition);
}

}  // namespace

TEST_CASE("nested transitions are read innermost first across the fiber and system stacks") {
  TableBuilder builder(1, 1);
  auto& fiber = builder.fibers[0];
  fiber.state = FIBERSCOPE_FIBER_FOREIGN;
  fiber.worker = 0;
  const std::uint64_t system_outer = builder.workers[0].sysstack_hi - 0x400;
  const std::uint64_t fiber_callback = fiber.stack_hi - 0x1000;
  const std::uint64_t system_inner = system_outer - 0x800;
  fiber.transition_top = system_inner;
  fiber.foreign_depth = 3;
  FakeMemory memory;
  builder.install(memory);
  put_transition(memory, system_outer, 0, FIBERSCOPE_TRANSITION_FOREIGN_CALL, 1);
  put_transition(memory, fiber_callback, system_outer, FIBERSCOPE_TRANSITION_CALLBACK, 2);
  put_transition(memory, system_inner, fiber_callback, FIBERSCOPE_TRANSITION_FOREIGN_CALL, 3);

  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->errors.empty());
  const auto& transitions = table->fibers.at(0).transitions;
  REQUIRE(transitions.size() == 3);
  CHECK(transitions[0].depth == 3);
  CHECK(transitions[1].kind == Transition::Kind::callback);
  CHECK(transitions[1].from_sp == fiber_callback + 0x100);
  CHECK(transitions[2].address.value() == system_outer);
}

TEST_CASE("a cyclic transition chain stops with an error and the fiber is kept") {
  TableBuilder builder(1, 1);
  auto& fiber = builder.fibers[0];
  fiber.state = FIBERSCOPE_FIBER_FOREIGN;
  fiber.worker = 0;
  const std::uint64_t a = builder.workers[0].sysstack_hi - 0x800;
  const std::uint64_t b = fiber.stack_hi - 0x800;
  fiber.transition_top = a;
  FakeMemory memory;
  builder.install(memory);
  put_transition(memory, a, b, FIBERSCOPE_TRANSITION_FOREIGN_CALL, 2);
  put_transition(memory, b, a, FIBERSCOPE_TRANSITION_CALLBACK, 1);

  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  REQUIRE(table->fibers.size() == 1);
  CHECK(table->fibers[0].transitions.size() == 2);
  CHECK(mentions(table->fibers[0].transition_error, "does not move outwards"));
  REQUIRE(table->errors.size() == 1);
  CHECK(table->errors[0].where == TableError::Where::transition);
  CHECK(table->errors[0].fiber_id == 1);
}

TEST_CASE("a transition outside both stacks is refused without being read") {
  TableBuilder builder(1, 1);
  builder.fibers[0].state = FIBERSCOPE_FIBER_FOREIGN;
  builder.fibers[0].worker = 0;
  builder.fibers[0].transition_top = 0xdeadbeef000;
  FakeMemory memory;
  builder.install(memory);
  auto table = read_fiber_table(memory, RemoteAddress(kRoot));
  REQUIRE(table);
  CHECK(table->fibers.at(0).transitions.empty());
  CHECK(mentions(table->fibers.at(0).transition_error, "outside the fiber stack"));
}
