#include <catch2/catch.hpp>
#include <libdwarf/dwarf.h>

#include <initializer_list>
#include <vector>

#include "binary/dwarf_expression.h"
#include "target/memory.h"

using fiberscope::binary::evaluate;
using fiberscope::binary::ExpressionContext;
using fiberscope::binary::Location;
using fiberscope::target::Reg;
using fiberscope::target::Registers;
using fiberscope::target::RegionMemory;
using fiberscope::target::RemoteAddress;

namespace {

std::vector<std::byte> ops(std::initializer_list<unsigned> values) {
  std::vector<std::byte> bytes;
  for (unsigned value : values) bytes.push_back(static_cast<std::byte>(value));
  return bytes;
}

// The value an expression leaves on the stack top (its memory-location "address").
std::uint64_t top_of(std::initializer_list<unsigned> values, const ExpressionContext& context = {}) {
  auto location = evaluate(ops(values), context);
  REQUIRE(location);
  REQUIRE(location->kind == Location::Kind::memory);
  return location->address;
}

std::string error_of(std::initializer_list<unsigned> values, const ExpressionContext& context = {}) {
  auto location = evaluate(ops(values), context);
  REQUIRE_FALSE(location);
  return location.error().message;
}

}  // namespace

TEST_CASE("literals and constants push their values, sign-extended where signed") {
  CHECK(top_of({DW_OP_lit0 + 17}) == 17);
  CHECK(top_of({DW_OP_const1u, 0xff}) == 0xff);
  CHECK(top_of({DW_OP_const1s, 0xff}) == ~0ull);
  CHECK(top_of({DW_OP_const2s, 0xfe, 0xff}) == static_cast<std::uint64_t>(-2));
  CHECK(top_of({DW_OP_const4u, 0x78, 0x56, 0x34, 0x12}) == 0x12345678);
  CHECK(top_of({DW_OP_const8u, 1, 2, 3, 4, 5, 6, 7, 8}) == 0x0807060504030201);
  CHECK(top_of({DW_OP_constu, 0xe5, 0x8e, 0x26}) == 624485);
  CHECK(top_of({DW_OP_consts, 0xc0, 0xbb, 0x78}) == static_cast<std::uint64_t>(-123456));
}

TEST_CASE("DW_OP_addr adds the module's load bias") {
  ExpressionContext context;
  context.load_bias = 0x5550'0000'0000;
  CHECK(top_of({DW_OP_addr, 0x10, 0x20, 0, 0, 0, 0, 0, 0}, context) == 0x5550'0000'2010);
}

TEST_CASE("stack operations dup, drop, over, pick, swap and rot reorder the stack as DWARF 5 2.5.1.3 says") {
  CHECK(top_of({DW_OP_lit1, DW_OP_dup, DW_OP_plus}) == 2);
  CHECK(top_of({DW_OP_lit1, DW_OP_lit2, DW_OP_drop}) == 1);
  CHECK(top_of({DW_OP_lit1, DW_OP_lit2, DW_OP_over}) == 1);
  CHECK(top_of({DW_OP_lit5, DW_OP_lit6, DW_OP_lit7, DW_OP_pick, 2}) == 5);
  CHECK(top_of({DW_OP_lit1, DW_OP_lit2, DW_OP_swap}) == 1);
  // rot: (a b c) -> (c a b), so the top becomes b.
  CHECK(top_of({DW_OP_lit1, DW_OP_lit2, DW_OP_lit3, DW_OP_rot}) == 2);
  CHECK(top_of({DW_OP_lit1, DW_OP_lit2, DW_OP_lit3, DW_OP_rot, DW_OP_drop, DW_OP_drop}) == 3);
}

TEST_CASE("arithmetic and logic operations follow the generic type's rules") {
  CHECK(top_of({DW_OP_lit7, DW_OP_lit3, DW_OP_minus}) == 4);
  CHECK(top_of({DW_OP_lit7, DW_OP_lit3, DW_OP_mul}) == 21);
  CHECK(top_of({DW_OP_lit7, DW_OP_lit2, DW_OP_div}) == 3);
  CHECK(top_of({DW_OP_const1s, 0xf9, DW_OP_lit2, DW_OP_div}) == static_cast<std::uint64_t>(-3));
  CHECK(top_of({DW_OP_lit7, DW_OP_lit3, DW_OP_mod}) == 1);
  CHECK(top_of({DW_OP_lit12, DW_OP_lit10, DW_OP_and}) == 8);
  CHECK(top_of({DW_OP_lit12, DW_OP_lit10, DW_OP_or}) == 14);
  CHECK(top_of({DW_OP_lit12, DW_OP_lit10, DW_OP_xor}) == 6);
  CHECK(top_of({DW_OP_lit5, DW_OP_neg}) == static_cast<std::uint64_t>(-5));
  CHECK(top_of({DW_OP_const1s, 0xfb, DW_OP_abs}) == 5);
  CHECK(top_of({DW_OP_lit0, DW_OP_not}) == ~0ull);
  CHECK(top_of({DW_OP_lit1, DW_OP_lit4, DW_OP_shl}) == 16);
  CHECK(top_of({DW_OP_lit16, DW_OP_lit4, DW_OP_shr}) == 1);
  CHECK(top_of({DW_OP_const1s, 0xf0, DW_OP_lit2, DW_OP_shra}) == static_cast<std::uint64_t>(-4));
  CHECK(top_of({DW_OP_lit1, DW_OP_const1u, 200, DW_OP_shl}) == 0);  // shifting out everything is defined
  CHECK(top_of({DW_OP_lit5, DW_OP_plus_uconst, 0x80, 0x01}) == 133);
  CHECK(top_of({DW_OP_const1s, 0xff, DW_OP_lit1, DW_OP_lt}) == 1);  // signed comparison: -1 < 1
  CHECK(top_of({DW_OP_lit3, DW_OP_lit3, DW_OP_eq}) == 1);
  CHECK(top_of({DW_OP_lit3, DW_OP_lit4, DW_OP_ge}) == 0);
  CHECK_THAT(error_of({DW_OP_lit1, DW_OP_lit0, DW_OP_div}), Catch::Contains("division by zero"));
}

TEST_CASE("skip and bra branch relative to the end of their operand") {
  // lit1; bra +1 (over lit9); lit2 -> 2.   lit0; bra never taken -> falls to lit9.
  CHECK(top_of({DW_OP_lit1, DW_OP_bra, 1, 0, DW_OP_lit9, DW_OP_lit2}) == 2);
  CHECK(top_of({DW_OP_lit0, DW_OP_bra, 1, 0, DW_OP_lit9}) == 9);
  CHECK(top_of({DW_OP_skip, 1, 0, DW_OP_lit9, DW_OP_lit3}) == 3);
  // A backwards loop that counts 5 down to 0: dup; bra +? ... expressed as:
  // lit5; [dup; lit0; eq; bra end; lit1; minus; skip back]
  CHECK(top_of({DW_OP_lit5, DW_OP_dup, DW_OP_lit0, DW_OP_eq, DW_OP_bra, 5, 0, DW_OP_lit1, DW_OP_minus, DW_OP_skip,
                0xf5, 0xff, DW_OP_lit7, DW_OP_plus}) == 7);
}

TEST_CASE("register operations read the frame's registers and fail clearly when one is not known") {
  Registers registers;
  registers.set(Reg::rbp, 0x7ffd'0000);
  registers.set(Reg::rdi, 42);
  ExpressionContext context;
  context.registers = &registers;
  CHECK(top_of({DW_OP_breg6, 0x70}, context) == 0x7ffd'0000 - 16);
  CHECK(top_of({DW_OP_bregx, 5, 2}, context) == 44);
  auto reg = evaluate(ops({DW_OP_reg5}), context);
  REQUIRE(reg);
  CHECK(reg->kind == Location::Kind::reg);
  CHECK(reg->register_number == 5);
  auto regx = evaluate(ops({DW_OP_regx, 16}), context);
  REQUIRE(regx);
  CHECK(regx->register_number == 16);
  CHECK_THAT(error_of({DW_OP_breg3, 0}, context), Catch::Contains("register 3 is not known"));
}

TEST_CASE("fbreg and call_frame_cfa use the frame base and the CFA, and fail without them") {
  ExpressionContext context;
  context.frame_base = 0x1000;
  context.cfa = 0x2000;
  CHECK(top_of({DW_OP_fbreg, 0x6c}, context) == 0x1000 - 20);
  CHECK(top_of({DW_OP_call_frame_cfa}, context) == 0x2000);
  CHECK_THAT(error_of({DW_OP_fbreg, 0}), Catch::Contains("frame base"));
  CHECK_THAT(error_of({DW_OP_call_frame_cfa}), Catch::Contains("CFA"));
}

TEST_CASE("deref and deref_size read target memory, zero-extending short reads") {
  RegionMemory memory;
  std::vector<std::byte> bytes(16);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(0x10 + i);
  REQUIRE(memory.add(RemoteAddress(0x4000), bytes));
  ExpressionContext context;
  context.memory = &memory;
  CHECK(top_of({DW_OP_const2u, 0x00, 0x40, DW_OP_deref}, context) == 0x1716151413121110);
  CHECK(top_of({DW_OP_const2u, 0x02, 0x40, DW_OP_deref_size, 2}, context) == 0x1312);
  CHECK_THAT(error_of({DW_OP_const2u, 0x00, 0x50, DW_OP_deref}, context), Catch::Contains("deref"));
  CHECK_THAT(error_of({DW_OP_lit0, DW_OP_deref_size, 9}, context), Catch::Contains("deref size 9"));
}

TEST_CASE("stack_value, implicit_value and an empty expression describe values without a location") {
  auto value = evaluate(ops({DW_OP_lit9, DW_OP_stack_value}), {});
  REQUIRE(value);
  CHECK(value->kind == Location::Kind::value);
  CHECK(value->value == 9);
  auto implicit = evaluate(ops({DW_OP_implicit_value, 3, 0xaa, 0xbb, 0xcc}), {});
  REQUIRE(implicit);
  CHECK(implicit->kind == Location::Kind::implicit);
  CHECK(implicit->bytes == ops({0xaa, 0xbb, 0xcc}));
  auto empty = evaluate({}, {});
  REQUIRE(empty);
  CHECK(empty->kind == Location::Kind::optimized_out);
}

TEST_CASE("pieces compose a value from registers, memory and optimized-out parts") {
  Registers registers;
  ExpressionContext context;
  context.registers = &registers;
  // rax (4 bytes), then 4 optimized-out bytes, then memory at 0x100 (8 bytes).
  auto location = evaluate(ops({DW_OP_reg0, DW_OP_piece, 4, DW_OP_piece, 4, DW_OP_const2u, 0x00, 0x01, DW_OP_piece, 8}),
                           context);
  REQUIRE(location);
  REQUIRE(location->kind == Location::Kind::pieces);
  REQUIRE(location->pieces.size() == 3);
  CHECK(location->pieces[0].location.kind == Location::Kind::reg);
  CHECK(location->pieces[0].size_bytes == 4);
  CHECK(location->pieces[1].location.kind == Location::Kind::optimized_out);
  CHECK(location->pieces[2].location.kind == Location::Kind::memory);
  CHECK(location->pieces[2].location.address == 0x100);
}

TEST_CASE("entry values resolve through the context and are reported unknown otherwise, GNU forms included") {
  const auto entry_rdi = {unsigned{DW_OP_entry_value}, 1u, unsigned{DW_OP_reg5}, unsigned{DW_OP_stack_value}};
  auto unknown = evaluate(ops(entry_rdi), {});
  REQUIRE(unknown);
  CHECK(unknown->kind == Location::Kind::entry_value_unknown);
  auto gnu = evaluate(ops({0xf3, 1, DW_OP_reg5, DW_OP_lit1, DW_OP_plus, DW_OP_stack_value}), {});
  REQUIRE(gnu);
  CHECK(gnu->kind == Location::Kind::entry_value_unknown);
  auto parameter_ref = evaluate(ops({0xfa, 1, 0, 0, 0, DW_OP_stack_value}), {});
  REQUIRE(parameter_ref);
  CHECK(parameter_ref->kind == Location::Kind::entry_value_unknown);

  ExpressionContext context;
  std::vector<std::byte> asked;
  context.entry_value = [&](std::span<const std::byte> inner) -> std::optional<std::uint64_t> {
    asked.assign(inner.begin(), inner.end());
    return 42;
  };
  auto known = evaluate(ops({DW_OP_entry_value, 1, DW_OP_reg5, DW_OP_lit1, DW_OP_plus, DW_OP_stack_value}), context);
  REQUIRE(known);
  CHECK(known->kind == Location::Kind::value);
  CHECK(known->value == 43);
  CHECK(asked == ops({DW_OP_reg5}));
}

TEST_CASE("an unresolved entry value never turns into a read of unrelated memory") {
  RegionMemory memory;
  ExpressionContext context;
  context.memory = &memory;
  auto location = evaluate(ops({DW_OP_entry_value, 1, DW_OP_reg5, DW_OP_deref, DW_OP_stack_value}), context);
  REQUIRE(location);
  CHECK(location->kind == Location::Kind::entry_value_unknown);
}

TEST_CASE("hostile expressions fail with an error that names the problem, never hang or crash") {
  CHECK_THAT(error_of({DW_OP_const4u, 1, 2}), Catch::Contains("truncated"));
  CHECK_THAT(error_of({DW_OP_constu, 0x80, 0x80}), Catch::Contains("truncated ULEB128"));
  CHECK_THAT(error_of({DW_OP_constu, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}),
             Catch::Contains("wider than 64 bits"));
  CHECK_THAT(error_of({DW_OP_skip, 0xfd, 0xff}), Catch::Contains("more than"));  // skip -3: jumps to itself
  CHECK_THAT(error_of({DW_OP_skip, 0x00, 0x10}), Catch::Contains("branch target outside"));
  CHECK_THAT(error_of({DW_OP_plus}), Catch::Contains("underflow"));
  CHECK_THAT(error_of({DW_OP_lit1, DW_OP_pick, 200}), Catch::Contains("pick index 200"));
  CHECK_THAT(error_of({DW_OP_implicit_value, 0x10, 1, 2}), Catch::Contains("truncated block"));
  CHECK_THAT(error_of({DW_OP_reg5, DW_OP_lit1}), Catch::Contains("follows a register"));
  CHECK_THAT(error_of({0xff}), Catch::Contains("unknown operation 0xff"));
  CHECK_THAT(error_of({DW_OP_nop}), Catch::Contains("empty stack"));

  // dup in a loop: lit1; [dup; skip back] grows the stack until the cap.
  auto overflow = evaluate(ops({DW_OP_lit1, DW_OP_dup, DW_OP_skip, 0xfc, 0xff}), {});
  REQUIRE_FALSE(overflow);
  CHECK_THAT(overflow.error().message, Catch::Contains("stack overflow"));
}

TEST_CASE("an initial stack (DW_CFA_expression's CFA) is visible to the expression") {
  ExpressionContext context;
  context.initial_stack = {0x7000};
  CHECK(top_of({DW_OP_lit8, DW_OP_minus}, context) == 0x7000 - 8);
}
