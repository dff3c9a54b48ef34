// The unwinder on Go functions that no CFI describes (a binary built with -ldflags=-w or stripped): frame sizes from
// the pclntab's pcsp, Go's ends of stacks (TOPFRAME, SPWRITE), and a signal trampoline just after a Go function.
// The table is the hand-built one of tests/unit/binary/go_pclntab_builder.h; the target is an in-memory fake.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>

#include "go_pclntab_builder.h"
#include "target/memory.h"
#include "unwind/unwinder.h"

using namespace fiberscope;
using namespace fiberscope::unwind;
using target::Reg;
using target::RemoteAddress;

namespace {

constexpr std::uint64_t kStack = 0x70000000;
constexpr std::uint64_t kStackSize = 0x1000;
constexpr std::uint64_t kOuter = go_pclntab_builder::kText;          // frame 0x18 from +4
constexpr std::uint64_t kInner = go_pclntab_builder::kText + 0x40;   // frame 8
constexpr std::uint64_t kAfterText = go_pclntab_builder::kText + 0x60;
constexpr std::size_t kFlagOffset = 37;  // _func.flag

struct GoFixture {
  go_pclntab_builder::Table table = go_pclntab_builder::build();
  std::vector<std::byte> code = std::vector<std::byte>(0x80);  // the text, with a sigreturn trampoline at +0x60
  std::vector<std::byte> stack = std::vector<std::byte>(kStackSize);
  StackRegion regions[1] = {{{RemoteAddress(kStack), RemoteAddress(kStack + kStackSize)}, StackKind::system, 1}};
  ModuleCfiSet modules;
  target::RegionMemory memory;

  void put(std::uint64_t address, std::uint64_t value) { std::memcpy(stack.data() + (address - kStack), &value, 8); }
  // Call once the table and the stack are final.
  void load() {
    const std::uint8_t restore_rt[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
    std::memcpy(code.data() + 0x60, restore_rt, sizeof restore_rt);
    auto parsed = binary::GoPclntab::parse(table.bytes, go_pclntab_builder::kTableAddress, 0,
                                           go_pclntab_builder::kGofunc, {{go_pclntab_builder::kGofunc, table.data}});
    REQUIRE(parsed);
    ModuleCfi module;
    module.name = "go";
    module.range = {RemoteAddress(0x400000), RemoteAddress(0x410000)};
    module.go_table = std::make_shared<const binary::GoPclntab>(std::move(*parsed));
    module.code = code;
    module.code_address = go_pclntab_builder::kText;
    REQUIRE(modules.add(std::move(module)));
    REQUIRE(memory.add(RemoteAddress(kStack), stack));
  }
  static target::Registers registers(std::uint64_t pc, std::uint64_t sp) {
    target::Registers r;
    r.set(Reg::rip, pc);
    r.set(Reg::rsp, sp);
    r.set(Reg::rbp, 0x1111);
    return r;
  }
  UnwindOptions options() const { return UnwindOptions{.stacks = regions}; }
};

}  // namespace

TEST_CASE("Go functions without CFI are stepped by their pcsp frame sizes, the caller's rbp below the return address",
          "[go]") {
  GoFixture fx;
  const std::uint64_t sp = kStack + 0x100;
  fx.put(sp, 0xfeed);                  // inner's saved rbp (CFA - 16)
  fx.put(sp + 8, kOuter + 0x31);       // return address into outer (frame 0x18 there)
  fx.put(sp + 16 + 0x18, 0);           // outer's return address: the end
  fx.load();
  Unwinder unwinder(fx.modules);
  const auto result = unwinder.unwind(GoFixture::registers(kInner + 4, sp), fx.memory, fx.options());
  INFO(result.stop_message);
  CHECK(result.complete());
  REQUIRE(result.frames.size() == 2);
  CHECK(result.frames[0].cfa.value() == sp + 16);
  CHECK(result.frames[1].pc.value() == kOuter + 0x31);
  CHECK(result.frames[1].recovered_by == FrameMethod::go_pclntab);
  CHECK(result.frames[1].registers.get(Reg::rbp) == 0xfeed);
  CHECK(result.frames[1].cfa.value() == sp + 16 + 0x18 + 8);
}

TEST_CASE("A Go TOPFRAME function ends the stack; an SPWRITE one ends it only as a caller", "[go]") {
  const std::uint64_t sp = kStack + 0x100;
  const auto unwind_with_outer_flag = [&](std::uint8_t flag, std::uint64_t start_pc, std::uint64_t start_sp) {
    GoFixture fx;
    fx.table.put<std::uint8_t>(fx.table.outer_record + kFlagOffset, flag);
    fx.put(sp + 8, kOuter + 0x31);
    fx.put(sp + 16 + 0x18, kInner + 0x10);  // outer's return address: not 0, so only a Go rule can end the walk
    fx.put(sp + 16 + 0x20 + 8, 0);          // inner's (frame 8) return address: the end
    fx.load();
    Unwinder unwinder(fx.modules);
    return unwinder.unwind(GoFixture::registers(start_pc, start_sp), fx.memory, fx.options());
  };
  SECTION("without a flag the walk goes on to the zero return address") {
    const auto result = unwind_with_outer_flag(0, kInner + 4, sp);
    INFO(result.stop_message);
    CHECK(result.complete());
    CHECK(result.frames.size() == 3);
  }
  SECTION("TOPFRAME (goexit, mstart): the walk ends at outer") {
    const auto result = unwind_with_outer_flag(binary::kGoFuncFlagTopFrame, kInner + 4, sp);
    CHECK(result.complete());
    REQUIRE(result.frames.size() == 2);
    CHECK(result.frames[1].cfa.value() == sp + 16 + 0x18 + 8);  // its own CFA is still known
  }
  SECTION("SPWRITE (mcall, asmcgocall) as a caller: the walk ends at outer") {
    const auto result = unwind_with_outer_flag(binary::kGoFuncFlagSpWrite, kInner + 4, sp);
    CHECK(result.complete());
    CHECK(result.frames.size() == 2);
  }
  SECTION("SPWRITE as the innermost frame is stepped normally") {
    const auto result = unwind_with_outer_flag(binary::kGoFuncFlagSpWrite, kOuter + 0x31, sp + 16);
    CHECK(result.complete());
    CHECK(result.frames.size() == 2);
    CHECK(result.frames[1].pc.value() == kInner + 0x10);
  }
}

TEST_CASE("A return address at a sigreturn trampoline right after a Go function unwinds through the ucontext",
          "[go]") {
  // The handler returns to the trampoline's first byte: the byte before it (the lookup pc of a return address) is
  // inner's last byte, whose pcsp row would read garbage as the caller.
  GoFixture fx;
  const std::uint64_t sp = kStack + 0x100;
  fx.put(sp + 8, kAfterText);                      // inner (frame 8) was "called" by the kernel: returns to sigreturn
  const std::uint64_t ucontext = sp + 16;          // the trampoline frame's sp
  const std::uint64_t interrupted_sp = kStack + 0x800;
  std::uint64_t gregs[17] = {};
  gregs[15] = interrupted_sp;                      // rsp
  gregs[16] = kOuter + 0x30;                       // rip: the interrupted instruction in outer
  for (int i = 0; i < 17; ++i) fx.put(ucontext + 40 + 8 * i, gregs[i]);
  fx.put(interrupted_sp + 0x18, 0);                // outer's return address: the end
  fx.load();
  Unwinder unwinder(fx.modules);
  const auto result = unwinder.unwind(GoFixture::registers(kInner + 4, sp), fx.memory, fx.options());
  INFO(result.stop_message);
  CHECK(result.complete());
  REQUIRE(result.frames.size() == 3);
  CHECK(result.frames[1].pc.value() == kAfterText);
  CHECK(result.frames[1].is_signal_trampoline);
  CHECK(result.frames[2].pc.value() == kOuter + 0x30);
  CHECK(result.frames[2].recovered_by == FrameMethod::signal_frame);
  CHECK_FALSE(result.frames[2].pc_is_return_address);
}
