// Each rule of the checks on hand-built snapshots: RegionMemory holds the stacks, the fiber records are built
// by hand, and there are no modules (so rule 3, which needs CFI and symbols, can only say "names no frame").
#include <catch2/catch.hpp>

#include <algorithm>

#include "checks/checks.h"
#include "checks/location_text.h"
#include "report/check_reporter.h"
#include "unwind/module_cfi.h"

using namespace fiberscope;
using fiberscope::checks::Finding;
using fiberscope::checks::FindingKind;
using fiberscope::checks::SyscallFrameRule;
using fiberscope::fibers::FiberRecord;
using fiberscope::fibers::FiberState;
using fiberscope::fibers::Transition;
using fiberscope::target::RemoteAddress;

namespace {

constexpr std::uint64_t kStackLo = 0x7f0000010000, kStackHi = 0x7f0000020000;
constexpr std::uint64_t kSystemLo = 0x7f0000100000, kSystemHi = 0x7f0000110000;

// A snapshot with one fiber stack and one system stack (zero-filled), no threads, no modules.
struct HandBuilt {
  target::Snapshot snapshot;
  fibers::FiberTable table;
  binary::Symbolizer symbols{std::vector<target::Mapping>{}};
  unwind::ModuleCfiSet cfi;

  HandBuilt() {
    auto memory = std::make_unique<target::RegionMemory>();
    REQUIRE(memory->add(RemoteAddress(kStackLo), std::vector<std::byte>(kStackHi - kStackLo)));
    REQUIRE(memory->add(RemoteAddress(kSystemLo), std::vector<std::byte>(kSystemHi - kSystemLo)));
    snapshot.memory = std::move(memory);
    fibers::WorkerRecord worker;
    worker.index = 0;
    worker.tid = 4242;
    worker.system_stack = {RemoteAddress(kSystemLo), RemoteAddress(kSystemHi)};
    table.workers.push_back(worker);
  }

  FiberRecord& add_fiber(FiberState state, std::uint64_t syscall_sp) {
    FiberRecord fiber;
    fiber.index = table.fibers.size();
    fiber.id = table.fibers.size() + 7;
    fiber.name = "hand-built";
    fiber.state = state;
    fiber.stack = {RemoteAddress(kStackLo), RemoteAddress(kStackHi)};
    fiber.syscall_pc = 0x401000;
    fiber.syscall_sp = syscall_sp;
    fiber.worker_index = 0;
    table.fibers.push_back(fiber);
    return table.fibers.back();
  }

  checks::CheckResult run() { return checks::run_checks({snapshot, table, symbols, cfi}); }
};

Transition foreign_call(std::uint32_t depth, std::uint64_t from_sp) {
  Transition transition;
  transition.kind = Transition::Kind::foreign_call;
  transition.depth = depth;
  transition.from_sp = from_sp;
  transition.from_pc = 0x401100;
  transition.to_sp = kSystemHi - 0x100 * depth;
  transition.address = RemoteAddress(transition.to_sp);
  return transition;
}

Transition callback(std::uint32_t depth, std::uint64_t from_sp, std::uint64_t to_sp) {
  Transition transition;
  transition.kind = Transition::Kind::callback;
  transition.depth = depth;
  transition.from_sp = from_sp;
  transition.from_pc = 0x402000;
  transition.to_sp = to_sp;
  transition.address = RemoteAddress(to_sp);
  return transition;
}

std::vector<const Finding*> with_rule(const checks::CheckResult& result, SyscallFrameRule rule) {
  std::vector<const Finding*> found;
  for (const Finding& finding : result.findings)
    if (finding.kind == FindingKind::invalid_syscall_frame && finding.rule == rule) found.push_back(&finding);
  return found;
}

}  // namespace

TEST_CASE("a syscall_sp exactly at stack_lo is inside the stack and one at stack_hi is outside (rule 1)") {
  HandBuilt at_lo;
  at_lo.add_fiber(FiberState::foreign, kStackLo).transitions.push_back(foreign_call(1, kStackLo));
  CHECK(with_rule(at_lo.run(), SyscallFrameRule::outside_stack).empty());

  HandBuilt at_hi;
  at_hi.add_fiber(FiberState::foreign, kStackHi).transitions.push_back(foreign_call(1, kStackHi - 0x40));
  auto result = at_hi.run();
  auto found = with_rule(result, SyscallFrameRule::outside_stack);
  REQUIRE(found.size() == 1);
  CHECK(found[0]->fiber_id == 7);
  CHECK(found[0]->stack.end.value() == kStackHi);
  CHECK(found[0]->explanation.find("7978") != std::string::npos);
  CHECK(result.findings.size() == 1);  // the first failing rule only
}

TEST_CASE("a syscall_sp below the foreign call's resume sp is reported with the popped region (rule 2)") {
  HandBuilt built;
  const std::uint64_t resume_sp = kStackHi - 0x200;
  built.add_fiber(FiberState::foreign, resume_sp - 0x170).transitions.push_back(foreign_call(1, resume_sp));
  auto result = built.run();
  auto found = with_rule(result, SyscallFrameRule::below_live_frame);
  REQUIRE(found.size() == 1);
  REQUIRE(found[0]->popped);
  CHECK(found[0]->popped->start.value() == resume_sp - 0x170);
  CHECK(found[0]->popped->end.value() == resume_sp);
  CHECK(found[0]->deepest_live_sp == resume_sp);
  const auto lines = checks::evidence_lines(*found[0]);
  CHECK(std::any_of(lines.begin(), lines.end(),
                    [](const std::string& line) { return line.find("popped region") != std::string::npos; }));
}

TEST_CASE("a syscall_sp equal to the resume sp is not below the live frame") {
  HandBuilt built;
  const std::uint64_t resume_sp = kStackHi - 0x200;
  built.add_fiber(FiberState::foreign, resume_sp).transitions.push_back(foreign_call(1, resume_sp));
  auto result = built.run();
  CHECK(with_rule(result, SyscallFrameRule::outside_stack).empty());
  CHECK(with_rule(result, SyscallFrameRule::below_live_frame).empty());
}

TEST_CASE("nested callbacks three deep: the innermost foreign call decides the deepest live frame") {
  // Fiber stack, top down: call 1 at hi-0x100, callback 2 below it, call 3 at hi-0x600, callback 4, call 5.
  const std::uint64_t call1 = kStackHi - 0x100, call3 = kStackHi - 0x600, call5 = kStackHi - 0xb00;
  auto chain = [&] {
    return std::vector<Transition>{foreign_call(5, call5), callback(4, kSystemHi - 0x800, call3 - 0x300),
                                   foreign_call(3, call3), callback(2, kSystemHi - 0x400, call1 - 0x300),
                                   foreign_call(1, call1)};
  };
  SECTION("syscall_sp at the innermost call's frame is sound") {
    HandBuilt built;
    built.add_fiber(FiberState::foreign, call5).transitions = chain();
    auto result = built.run();
    CHECK(with_rule(result, SyscallFrameRule::below_live_frame).empty());
    CHECK(with_rule(result, SyscallFrameRule::outside_stack).empty());
  }
  SECTION("syscall_sp left inside the third callback's popped frames is rule 2") {
    HandBuilt built;
    built.add_fiber(FiberState::foreign, call5 - 0x80).transitions = chain();
    const auto result = built.run();  // with_rule points into it: it must outlive `found`
    auto found = with_rule(result, SyscallFrameRule::below_live_frame);
    REQUIRE(found.size() == 1);
    CHECK(found[0]->popped->end.value() == call5);
  }
}

TEST_CASE("a fiber in a callback at the moment of the snapshot is not judged as in a foreign call") {
  HandBuilt built;
  // Running fiber code on its stack below the foreign call: not in a syscall, so its syscall_sp is not used.
  FiberRecord& fiber = built.add_fiber(FiberState::running, 0x10);
  fiber.transitions = {callback(2, kSystemHi - 0x400, kStackHi - 0x400), foreign_call(1, kStackHi - 0x100)};
  auto result = built.run();
  CHECK(result.findings.empty());
  CHECK(result.fibers_checked == 0);
}

TEST_CASE("a syscall inside a callback uses the thread's sp as the deepest live frame") {
  HandBuilt built;
  const std::uint64_t thread_sp = kStackHi - 0x900;
  FiberRecord& fiber = built.add_fiber(FiberState::syscall, thread_sp - 0x40);
  fiber.transitions = {callback(2, kSystemHi - 0x400, kStackHi - 0x400), foreign_call(1, kStackHi - 0x100)};
  target::ThreadState thread;
  thread.tid = 4242;
  thread.registers.emplace();
  thread.registers->set(target::Reg::rsp, thread_sp);
  thread.registers->set(target::Reg::rip, 0x401234);
  built.snapshot.threads.push_back(thread);
  const auto result = built.run();  // with_rule points into it: it must outlive `found`
  auto found = with_rule(result, SyscallFrameRule::below_live_frame);
  REQUIRE(found.size() == 1);
  CHECK(found[0]->popped->end.value() == thread_sp);
}

TEST_CASE("records caught mid-update are transient, never findings") {
  HandBuilt built;
  built.add_fiber(FiberState::foreign, kStackHi + 0x1000).integrity = fibers::Integrity::torn;
  built.add_fiber(FiberState::syscall, 1).integrity = fibers::Integrity::in_transition;
  auto result = built.run();
  CHECK(result.findings.empty());
  REQUIRE(result.transients.size() == 2);
  CHECK(result.transients[0].reason.find("torn") != std::string::npos);
}

TEST_CASE("a foreign call whose trampoline record is not linked yet and whose thread is unknown is transient") {
  HandBuilt built;
  built.add_fiber(FiberState::foreign, kStackHi - 0x100);  // no transitions, no thread registers
  auto result = built.run();
  CHECK(result.findings.empty());
  CHECK(result.transients.size() == 1);
}

TEST_CASE("without CFI or symbols a sound-looking frame is reported by rule 3, never by rules 1 or 2") {
  HandBuilt built;
  built.add_fiber(FiberState::foreign, kStackHi - 0x200).transitions.push_back(foreign_call(1, kStackHi - 0x200));
  auto result = built.run();
  CHECK(with_rule(result, SyscallFrameRule::outside_stack).empty());
  CHECK(with_rule(result, SyscallFrameRule::below_live_frame).empty());
  CHECK(with_rule(result, SyscallFrameRule::names_no_frame).size() == 1);
}

TEST_CASE("garbage records never crash the checks") {
  HandBuilt built;
  for (std::uint64_t sp : std::vector<std::uint64_t>{0, 1, ~0ull, kStackLo - 1, kStackHi - 1, kSystemLo + 8}) {
    FiberRecord& fiber = built.add_fiber(FiberState::foreign, sp);
    fiber.syscall_pc = sp;
    fiber.transitions.push_back(foreign_call(1, ~sp));
    fiber.context.rbp = sp;
  }
  auto result = built.run();
  CHECK(result.fibers_checked == 6);
}

TEST_CASE("a finding's identity names fiber, kind, rule and frame for --watch") {
  Finding finding;
  finding.fiber_id = 12;
  finding.rule = SyscallFrameRule::below_live_frame;
  finding.frame = "f";
  CHECK(finding.identity() == "12/invalid-syscall-frame/2/f");
  auto reported = report::dump_finding(finding);
  CHECK(reported.kind == "invalid-syscall-frame");
  CHECK(reported.message.starts_with("rule 2 (below-live-frame)"));
}

TEST_CASE("location expressions are written out as objdump spells them, hostile ones without failing") {
  auto bytes = [](std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (int value : values) out.push_back(static_cast<std::byte>(value));
    return out;
  };
  CHECK(checks::location_text({}) == "none");
  CHECK(checks::location_text(bytes({0x53})) == "DW_OP_reg3 (rbx)");
  CHECK(checks::location_text(bytes({0x91, 0x68})) == "DW_OP_fbreg -24");
  CHECK(checks::location_text(bytes({0xa3, 0x01, 0x55, 0x9f})) ==
        "DW_OP_entry_value(DW_OP_reg5 (rdi)) DW_OP_stack_value");
  CHECK(checks::location_text(bytes({0x91})).find("truncated") != std::string::npos);
  CHECK(checks::location_text(bytes({0xa3, 0x7f, 0x55})).find("truncated") != std::string::npos);
}
