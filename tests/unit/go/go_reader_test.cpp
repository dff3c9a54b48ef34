// The Go reader on its own: layouts from a real binary's DWARF, the session API's records of a live cgo program,
// and hostile memory (a huge allglen, a bad pointer in allgs, a loop in allm) read beside the good records.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>

#include "binary/symbolizer.h"
#include "fibers/go/go_reader.h"
#include "session/inspection.h"
#include "target/proc_files.h"
#include "target/process_memory.h"
#include "go/go_roles.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

std::map<std::string, std::uint64_t> roles_of(TestProcess& target) {
  return testing::go_roles(target.lines());
}

// A live process's memory with some 8-byte words replaced: how the tests corrupt the runtime's structures.
class PatchedMemory final : public target::Memory {
 public:
  explicit PatchedMemory(const target::Memory& base) : base_(base) {}
  void patch(target::RemoteAddress address, std::uint64_t value) { words_[address.value()] = value; }
  Result<void> read(target::RemoteAddress address, std::span<std::byte> out) const override {
    FS_TRY_DISCARD(base_.read(address, out));
    for (const auto& [at, value] : words_) {
      for (std::size_t byte = 0; byte < 8; ++byte) {
        const std::uint64_t where = at + byte;
        if (where >= address.value() && where < address.value() + out.size())
          out[where - address.value()] = static_cast<std::byte>(value >> (8 * byte));
      }
    }
    return {};
  }

 private:
  const target::Memory& base_;
  std::map<std::uint64_t, std::uint64_t> words_;
};

struct GoTarget {
  std::unique_ptr<binary::Symbolizer> symbols;
  std::shared_ptr<const fibers::go::GoRuntime> runtime;
};

GoTarget load(int pid) {
  auto mappings = target::read_maps(pid);
  REQUIRE(mappings);
  GoTarget loaded;
  loaded.symbols = std::make_unique<binary::Symbolizer>(*mappings);
  REQUIRE(fibers::go::is_go_program(*loaded.symbols));
  auto runtime = fibers::go::load_go_runtime(*loaded.symbols);
  INFO((runtime ? "" : runtime.error().message));
  REQUIRE(runtime);
  loaded.runtime = *runtime;
  return loaded;
}

const fibers::FiberRecord* goroutine(const fibers::FiberTable& table, std::uint64_t goid) {
  for (const fibers::FiberRecord& fiber : table.fibers)
    if (fiber.id == goid) return &fiber;
  return nullptr;
}

}  // namespace

TEST_CASE("the Go reader takes runtime.g and runtime.m and the _G status values from the binary's DWARF") {
  TestProcess target({bin("go_states")});
  REQUIRE(target.wait_for("READY"));
  GoTarget go = load(target.pid());
  CHECK(go.runtime->version.starts_with("go1.19"));
  CHECK(go.runtime->status_from_dwarf);
  // Go 1.19's runtime2.go: the values the named table holds agree with the DWARF constants.
  CHECK(go.runtime->g_waiting == 4);
  CHECK(go.runtime->g_scan == 0x1000);
  CHECK(go.runtime->g.goid.size_bytes == 8);
  CHECK(go.runtime->g.status.size_bytes == 4);
  CHECK(go.runtime->g.wait_reason.size_bytes == 1);
  CHECK(go.runtime->g.sched_sp.offset == go.runtime->g.sched_pc.offset - 8);  // gobuf {sp, pc, g, ...}
  CHECK(go.runtime->wait_reason_count > 20);
}

TEST_CASE("the session API gives each cgo goroutine its stack switches and Go's own wait reasons") {
  TestProcess target({bin("go_cgo")});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target);
  auto inspection = session::inspect_live(target.pid(), {});
  REQUIRE(inspection);
  REQUIRE(inspection->table);
  const fibers::FiberTable& table = *inspection->table;
  CHECK(table.fiber_noun == "goroutine");
  CHECK_FALSE(table.fibers_named);
  for (const fibers::TableError& error : table.errors) FAIL_CHECK(error.message);

  const fibers::FiberRecord* in_c = goroutine(table, roles.at("in_c"));
  REQUIRE(in_c);
  CHECK(in_c->state == fibers::FiberState::foreign);
  CHECK(in_c->transitions.size() == 1);
  REQUIRE(table.worker_of(*in_c));
  CHECK(table.worker_of(*in_c)->tid > 0);

  const fibers::FiberRecord* parked = goroutine(table, roles.at("callback_parked"));
  REQUIRE(parked);
  CHECK(parked->state == fibers::FiberState::waiting);
  CHECK(parked->wait_reason_text == "chan receive");
  CHECK(parked->wait_reason == fibers::WaitReason::chan_receive);
  CHECK(parked->is_locked);
  REQUIRE(parked->transitions.size() == 2);
  CHECK(parked->transitions[0].kind == fibers::Transition::Kind::callback);
  CHECK(parked->transitions[1].kind == fibers::Transition::Kind::foreign_call);

  const fibers::FiberRecord* nested = goroutine(table, roles.at("nested"));
  REQUIRE(nested);
  CHECK(nested->transitions.size() == 4);
  const fibers::FiberRecord* after = goroutine(table, roles.at("after_callback"));
  REQUIRE(after);
  CHECK(after->state == fibers::FiberState::foreign);
  CHECK(after->transitions.size() == 1);

  // Frames are stitched without notes, and a healthy runtime gives no findings.
  report::Dump dump = session::build_dump(*inspection, {});
  CHECK(dump.findings.empty());
  for (const report::DumpError& error : dump.errors) FAIL_CHECK(error.message);
}

TEST_CASE("a corrupt goroutine table reads as errors beside the good goroutines, never a crash") {
  TestProcess target({bin("go_states")});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target);
  GoTarget go = load(target.pid());
  target::ProcessMemory live(target.pid());
  auto clean = fibers::go::read_go_table(live, *go.runtime);
  REQUIRE(clean);
  REQUIRE(clean->fibers.size() >= roles.size());

  SECTION("a bad pointer in allgs is one error; every other goroutine still reads") {
    PatchedMemory memory(live);
    auto data = live.read_u64(go.runtime->allgs);
    REQUIRE(data);
    memory.patch(target::RemoteAddress(*data + 8), 0x10);  // allgs[1]
    auto table = fibers::go::read_go_table(memory, *go.runtime);
    REQUIRE(table);
    CHECK(table->fibers.size() == clean->fibers.size() - 1);
    REQUIRE(table->errors.size() == 1);
    CHECK(table->errors[0].message.find("goroutine record 1 at 0x10: unreadable") != std::string::npos);
    CHECK(goroutine(*table, roles.at("chan_receive")));
  }
  SECTION("a huge allglen and slice length are held to the slice's capacity") {
    PatchedMemory memory(live);
    memory.patch(go.runtime->allglen, std::uint64_t{1} << 40);
    memory.patch(go.runtime->allgs + 8, std::uint64_t{1} << 40);
    auto table = fibers::go::read_go_table(memory, *go.runtime);
    REQUIRE(table);
    REQUIRE(table->errors.size() == 1);
    CHECK(table->errors[0].message.find("exceed its capacity") != std::string::npos);
    CHECK(table->fibers.size() == clean->fibers.size());
  }
  SECTION("a capacity beyond the cap stops at the cap, and an unreadable pointer array is a clear error") {
    PatchedMemory memory(live);
    for (std::uint64_t offset : {0, 8, 16}) memory.patch(go.runtime->allgs + offset, offset ? 1u << 20 : 0x10);
    memory.patch(go.runtime->allglen, 1u << 20);
    auto table = fibers::go::read_go_table(memory, *go.runtime, {.max_goroutines = 1u << 16});
    REQUIRE_FALSE(table);
    CHECK(table.error().message.find("runtime.allgs: 65536 pointers at 0x10 are unreadable") != std::string::npos);
  }
  SECTION("a loop in allm ends the walk with an error; the goroutines still read") {
    PatchedMemory memory(live);
    auto first = live.read_u64(go.runtime->allm);
    REQUIRE(first);
    memory.patch(target::RemoteAddress(*first + go.runtime->m.alllink.offset), *first);
    auto table = fibers::go::read_go_table(memory, *go.runtime);
    REQUIRE(table);
    CHECK(table->workers.size() == 1);
    bool loop_reported = false;
    for (const fibers::TableError& error : table->errors)
      loop_reported |= error.message.find("runtime.allm loops back") != std::string::npos;
    CHECK(loop_reported);
    CHECK(table->fibers.size() == clean->fibers.size());
  }
}

TEST_CASE("leave_out is asked about goroutines parked off any M and leaves those it answers for out of the table") {
  TestProcess target({bin("go_states")});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target);
  GoTarget go = load(target.pid());
  std::vector<std::uint64_t> asked;
  fibers::go::GoReadOptions options;
  options.leave_out = [&](const fibers::FiberRecord& fiber) {
    asked.push_back(fiber.id);
    CHECK(fiber.transitions.empty());
    CHECK_FALSE(fiber.worker_index);
    return fiber.id == roles.at("chan_receive");
  };
  auto table = fibers::go::read_go_table(target::ProcessMemory(target.pid()), *go.runtime, options);
  REQUIRE(table);
  auto was_asked = [&](const std::string& role) {
    return std::find(asked.begin(), asked.end(), roles.at(role)) != asked.end();
  };
  CHECK(was_asked("chan_receive"));
  CHECK_FALSE(goroutine(*table, roles.at("chan_receive")));
  CHECK(was_asked("sleep"));
  const fibers::FiberRecord* sleeping = goroutine(*table, roles.at("sleep"));
  REQUIRE(sleeping);
  CHECK(sleeping->wait_reason_text == "sleep");
}

TEST_CASE("without DWARF the reader uses go1.19's known layouts, which are the ones DWARF gives") {
  TestProcess with_dwarf({bin("go_states")});
  TestProcess without_dwarf({bin("go_states_nodwarf")});
  REQUIRE(with_dwarf.wait_for("READY"));
  REQUIRE(without_dwarf.wait_for("READY"));
  GoTarget described = load(with_dwarf.pid());
  GoTarget known = load(without_dwarf.pid());
  CHECK(described.runtime->layout_from_dwarf);
  CHECK_FALSE(known.runtime->layout_from_dwarf);
  CHECK(known.runtime->version == described.runtime->version);  // .go.buildinfo and the DWARF producer agree
  CHECK(known.runtime->g_size == described.runtime->g_size);
  CHECK(known.runtime->m_size == described.runtime->m_size);
  CHECK(known.runtime->g == described.runtime->g);
  CHECK(known.runtime->m == described.runtime->m);

  // And the goroutines read with them are the program's.
  const auto roles = roles_of(without_dwarf);
  auto table = fibers::go::read_go_table(target::ProcessMemory(without_dwarf.pid()), *known.runtime);
  REQUIRE(table);
  const fibers::FiberRecord* select = goroutine(*table, roles.at("select"));
  REQUIRE(select);
  CHECK(select->wait_reason_text == "select");
  const fibers::FiberRecord* sleeping = goroutine(*table, roles.at("sleep"));
  REQUIRE(sleeping);
  CHECK(sleeping->wait_reason == fibers::WaitReason::sleep);
}
