// The unwinder over hand-built CFI and an in-memory fake of the target: clean ends, fallbacks, every stop reason.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>

#include "cfi_builder.h"
#include "target/memory.h"
#include "unwind/unwinder.h"

using namespace fiberscope;
using namespace fiberscope::unwind;
using fiberscope::unwind::testing::CfiBuilder;
using target::Reg;
using target::RemoteAddress;

namespace {

constexpr std::uint64_t kBias = 0x400000;
constexpr std::uint64_t kStack = 0x70000000;      // a 4 KiB stack
constexpr std::uint64_t kStackSize = 0x1000;
constexpr std::uint64_t kElsewhere = 0x90000000;  // readable, but no stack
constexpr std::uint64_t kTrampoline = 0x600000;   // code of a signal trampoline no CFI describes

// File addresses of the fake module's functions.
constexpr std::uint64_t kF = 0x1000;  // prologue pushes rbp at +4: then CFA = rsp+16, rbp at cfa-16
constexpr std::uint64_t kG = 0x2000;  // the outermost function: .cfi_undefined rip
constexpr std::uint64_t kH = 0x3000;  // CFA = rbp+16, rip at cfa-8, rbp at cfa-16 (a frame-pointer function)
constexpr std::uint64_t kE = 0x5000;  // CFA and registers by DWARF expressions
constexpr std::uint64_t kR = 0x6000;  // CFA = rsp+16 from +1 on: a recursive function for the 15-frame stack

struct Fixture {
  CfiBuilder cfi;
  ModuleCfiSet modules;
  target::RegionMemory memory;
  std::vector<std::byte> stack = std::vector<std::byte>(kStackSize);
  std::vector<std::byte> elsewhere = std::vector<std::byte>(kStackSize);
  StackRegion regions[1] = {{{RemoteAddress(kStack), RemoteAddress(kStack + kStackSize)}, StackKind::fiber, 7}};

  Fixture() {
    const auto cie = cfi.cie({0x0c, 7, 8, 0x90, 1});
    cfi.fde(cie, kF, 0x100, {0x44, 0x0e, 16, 0x86, 2});
    cfi.fde(cie, kG, 0x100, {0x07, 16});
    cfi.fde(cie, kH, 0x100, {0x0c, 6, 16, 0x86, 2});
    // def_cfa_expression (breg7 +16); rip at (CFA - 8) by DW_CFA_expression; rbx = CFA + 1 by val_expression.
    cfi.fde(cie, kE, 0x100, {0x0f, 2, 0x77, 0x10, 0x10, 16, 2, 0x38, 0x1c, 0x16, 3, 2, 0x31, 0x22});
    cfi.fde(cie, kR, 0x100, {0x41, 0x0e, 16});
    cfi.terminator();
    ModuleCfi module;
    module.name = "fake";
    module.range = {RemoteAddress(kBias), RemoteAddress(kBias + 0x10000)};
    module.load_bias = kBias;
    module.eh_frame = CfiSection::eh_frame(cfi.bytes(), 0x8000);
    REQUIRE(modules.add(std::move(module)));
  }

  void put(std::uint64_t address, std::uint64_t value) {
    auto& bytes = address >= kElsewhere ? elsewhere : stack;
    const std::uint64_t base = address >= kElsewhere ? kElsewhere : kStack;
    std::memcpy(bytes.data() + (address - base), &value, 8);
  }
  // Call once the stack is written.
  void map() {
    REQUIRE(memory.add(RemoteAddress(kStack), stack));
    REQUIRE(memory.add(RemoteAddress(kElsewhere), elsewhere));
  }
  static target::Registers registers(std::uint64_t pc, std::uint64_t sp, std::optional<std::uint64_t> rbp = {}) {
    target::Registers r;
    r.set(Reg::rip, pc);
    r.set(Reg::rsp, sp);
    if (rbp) r.set(Reg::rbp, *rbp);
    return r;
  }
  UnwindOptions options() const { return UnwindOptions{.stacks = regions}; }
};

}  // namespace

TEST_CASE("A two-frame stack unwinds through CFI and ends cleanly at an undefined return address") {
  Fixture fx;
  const std::uint64_t sp = kStack + 0xf00;
  fx.put(sp + 8, kBias + kG + 0x10);  // return address
  fx.put(sp, kStack + 0xfa0);         // saved rbp
  fx.map();
  auto start = Fixture::registers(kBias + kF + 0x10, sp, 0x1234);
  start.set(Reg::rbx, 0xb0b);
  start.set(Reg::rax, 0xa0a);
  Unwinder unwinder(fx.modules);
  const auto result = unwinder.unwind(start, fx.memory, fx.options());
  INFO(result.stop_message);
  REQUIRE(result.complete());
  REQUIRE(result.frames.size() == 2);
  const Frame& f0 = result.frames[0];
  const Frame& f1 = result.frames[1];
  CHECK_FALSE(f0.pc_is_return_address);
  CHECK(f0.cfa.value() == sp + 16);
  CHECK(f0.stack_kind == StackKind::fiber);
  CHECK(f0.stack_id == 7);
  CHECK(f1.pc.value() == kBias + kG + 0x10);
  CHECK(f1.pc_is_return_address);
  CHECK(f1.lookup_pc().value() == kBias + kG + 0xf);
  CHECK(f1.sp.value() == sp + 16);
  CHECK(f1.recovered_by == FrameMethod::eh_frame);
  CHECK(f1.registers.get(Reg::rbp) == kStack + 0xfa0);
  CHECK(f1.registers.get(Reg::rbx) == 0xb0b);           // callee-saved without a rule: unchanged
  CHECK_FALSE(f1.registers.get(Reg::rax).has_value());  // caller-saved: unknown in the caller
  CHECK(f1.on_known_stack);
}

TEST_CASE("CFA and register rules given as DWARF expressions are evaluated") {
  Fixture fx;
  const std::uint64_t sp = kStack + 0xe00;
  fx.put(sp + 8, kBias + kG + 0x20);
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto result = unwinder.unwind(Fixture::registers(kBias + kE + 4, sp), fx.memory, fx.options());
  INFO(result.stop_message);
  REQUIRE(result.complete());
  REQUIRE(result.frames.size() == 2);
  CHECK(result.frames[0].cfa.value() == sp + 16);
  CHECK(result.frames[1].pc.value() == kBias + kG + 0x20);
  CHECK(result.frames[1].registers.get(Reg::rbx) == sp + 17);
}

TEST_CASE("A cyclic stack whose return addresses point back stops with a loop, not a hang") {
  Fixture fx;
  const std::uint64_t frame = kStack + 0x800;
  fx.put(frame, frame);                   // saved rbp points at itself
  fx.put(frame + 8, kBias + kH + 0x10);   // and the return address back into the same function
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto result = unwinder.unwind(Fixture::registers(kBias + kH + 0x10, frame - 32, frame), fx.memory,
                                      fx.options());
  CHECK(result.stop_reason == StopReason::loop);
  CHECK_THAT(result.stop_message, Catch::StartsWith("loop at pc " + hex(kBias + kH + 0x10)));
  CHECK(result.frames.size() == 2);
}

TEST_CASE("A CFA that leaves the known stacks stops the unwind and keeps the frames found so far") {
  Fixture fx;
  fx.put(kElsewhere + 0x108, kBias + kG + 0x10);
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto start = Fixture::registers(kBias + kH + 0x10, kStack + 0x700, kElsewhere + 0x100);
  const auto result = unwinder.unwind(start, fx.memory, fx.options());
  CHECK(result.stop_reason == StopReason::cfa_outside_stack);
  CHECK_THAT(result.stop_message, Catch::StartsWith("CFA " + hex(kElsewhere + 0x110)));
  CHECK(result.frames.size() == 1);

  SECTION("unless the bound is switched off") {
    UnwindOptions options = fx.options();
    options.require_cfa_in_stacks = false;
    const auto unbounded = unwinder.unwind(start, fx.memory, options);
    CHECK(unbounded.complete());
    CHECK(unbounded.frames.size() == 2);
  }
}

TEST_CASE("A CFA that moves down within one stack is refused, a move to another known stack is not") {
  Fixture fx;
  const std::uint64_t frame = kStack + 0x800;
  fx.put(frame, frame - 0x100);            // the caller's rbp lies below
  fx.put(frame + 8, kBias + kH + 0x20);
  fx.put(frame - 0x100 + 8, kBias + kH + 0x30);
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto start = Fixture::registers(kBias + kH + 0x10, frame - 32, frame);
  const auto result = unwinder.unwind(start, fx.memory, fx.options());
  CHECK(result.stop_reason == StopReason::cfa_not_increasing);
  CHECK(result.frames.size() == 2);

  SECTION("a switch to another stack region is legitimate") {
    Fixture fx2;
    fx2.put(frame, kElsewhere + 0x100);    // the caller's frame is on another stack
    fx2.put(frame + 8, kBias + kH + 0x20);
    fx2.put(kElsewhere + 0x108, kBias + kG + 0x10);
    fx2.map();
    const StackRegion two[] = {fx2.regions[0], {{RemoteAddress(kElsewhere), RemoteAddress(kElsewhere + kStackSize)},
                                                StackKind::system, 99}};
    Unwinder unwinder2(fx2.modules);
    const auto switched = unwinder2.unwind(start, fx2.memory, UnwindOptions{.stacks = two});
    INFO(switched.stop_message);
    CHECK(switched.complete());
    REQUIRE(switched.frames.size() == 3);
    CHECK(switched.frames[1].stack_kind == StackKind::fiber);
    CHECK(switched.frames[2].stack_kind == StackKind::system);
    CHECK(switched.frames[2].stack_id == 99);
  }
}

TEST_CASE("Depth is capped, missing registers and unreadable return addresses stop with a reason") {
  Fixture fx;
  const std::uint64_t sp = kStack + 0xf00;
  fx.put(sp + 8, kBias + kG + 0x10);
  fx.map();
  Unwinder unwinder(fx.modules);
  UnwindOptions options = fx.options();
  options.max_depth = 1;
  auto result = unwinder.unwind(Fixture::registers(kBias + kF + 0x10, sp), fx.memory, options);
  CHECK(result.stop_reason == StopReason::max_depth);
  CHECK(result.frames.size() == 1);

  result = unwinder.unwind(Fixture::registers(kBias + kH + 0x10, sp), fx.memory, fx.options());  // no rbp
  CHECK(result.stop_reason == StopReason::missing_register);
  CHECK_THAT(result.stop_message, Catch::Contains("rbp"));

  result = unwinder.unwind(Fixture::registers(kBias + kF + 0x10, 0x50000000), fx.memory, {});
  CHECK(result.stop_reason == StopReason::read_failed);
  CHECK_THAT(result.stop_message, Catch::StartsWith("read of return address at " + hex(0x50000008)));
}

TEST_CASE("Where no CFI covers a pc the rbp chain is followed, and without it the unwind says so") {
  Fixture fx;
  const std::uint64_t frame = kStack + 0x900;
  fx.put(frame, 0);
  fx.put(frame + 8, kBias + kG + 0x10);
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto start = Fixture::registers(0x12345678, frame - 0x40, frame);
  auto result = unwinder.unwind(start, fx.memory, fx.options());
  INFO(result.stop_message);
  CHECK(result.complete());
  REQUIRE(result.frames.size() == 2);
  CHECK(result.frames[1].recovered_by == FrameMethod::frame_pointer);
  CHECK(result.frames[0].cfa.value() == frame + 16);

  UnwindOptions options = fx.options();
  options.use_frame_pointers = false;
  result = unwinder.unwind(start, fx.memory, options);
  CHECK(result.stop_reason == StopReason::no_cfi);
  CHECK_THAT(result.stop_message, Catch::StartsWith("no CFI for pc 0x12345678"));
}

TEST_CASE("A signal trampoline without CFI is recognised by its code and unwound through the ucontext") {
  Fixture fx;
  const std::uint64_t ucontext = kStack + 0x400;
  const std::uint64_t interrupted_sp = kStack + 0xc00;
  std::uint64_t gregs[17] = {};
  gregs[11] = 0xbbb;                        // rbx
  gregs[15] = interrupted_sp;               // rsp
  gregs[16] = kBias + kG + 0x30;            // rip: the faulting instruction
  for (int i = 0; i < 17; ++i) fx.put(ucontext + 40 + 8 * i, gregs[i]);
  fx.map();
  const std::uint8_t code[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
  std::vector<std::byte> code_bytes(sizeof code);
  std::memcpy(code_bytes.data(), code, sizeof code);
  REQUIRE(fx.memory.add(RemoteAddress(kTrampoline), code_bytes));
  Unwinder unwinder(fx.modules);
  Frame handler_return;  // as if the handler had just returned into the trampoline
  auto start = Fixture::registers(kTrampoline, ucontext);
  const auto result = unwinder.unwind(start, fx.memory, fx.options());
  INFO(result.stop_message);
  CHECK(result.complete());
  REQUIRE(result.frames.size() == 2);
  CHECK(result.frames[0].is_signal_trampoline);
  CHECK(result.frames[1].pc.value() == kBias + kG + 0x30);
  CHECK_FALSE(result.frames[1].pc_is_return_address);
  CHECK(result.frames[1].recovered_by == FrameMethod::signal_frame);
  CHECK(result.frames[1].registers.get(Reg::rbx) == 0xbbb);
}

TEST_CASE("The row cache computes each pc's row once across unwinds") {
  Fixture fx;
  const std::uint64_t sp = kStack + 0xf00;
  fx.put(sp + 8, kBias + kG + 0x10);
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto start = Fixture::registers(kBias + kF + 0x10, sp, 1);
  REQUIRE(unwinder.unwind(start, fx.memory, fx.options()).complete());
  const auto first = unwinder.cache_stats();
  CHECK(first.misses == 2);
  for (int i = 0; i < 10; ++i) REQUIRE(unwinder.unwind(start, fx.memory, fx.options()).complete());
  const auto later = unwinder.cache_stats();
  CHECK(later.misses == 2);
  CHECK(later.entries == 2);
  CHECK(later.hits == first.hits + 20);
}

// Prints the time of 100k unwinds of a 15-frame stack; run with `unwind_tests "[.perf]"`.
TEST_CASE("100k unwinds of a 15-frame stack (figure, not an assertion)", "[.perf]") {
  Fixture fx;
  const std::uint64_t base = kStack + 0x800;
  for (int i = 0; i < 14; ++i) fx.put(base + 16 * i + 8, kBias + kR + 0x10);
  fx.put(base + 16 * 14 + 8, kBias + kG + 0x10);
  fx.map();
  Unwinder unwinder(fx.modules);
  const auto start = Fixture::registers(kBias + kR + 0x10, base);
  std::size_t frames = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100'000; ++i) frames += unwinder.unwind(start, fx.memory, fx.options()).frames.size();
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(frames == 100'000u * 16);
  WARN("100k unwinds x " << frames / 100'000 << " frames: " << elapsed * 1000 << " ms");
}
