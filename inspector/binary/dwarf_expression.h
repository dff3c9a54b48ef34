// DWARF expression evaluator (DWARF 5 section 2.5, 2.6): our own, because libdwarf only decodes.
//
// Used for variable locations (DW_AT_location, location lists), frame bases and the CFI's DW_CFA_expression /
// DW_CFA_def_cfa_expression rules. Every step is bounded: the operation count, the stack depth and every memory
// read are checked, so a hostile expression gives an Error, never a crash or a hang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "target/memory.h"
#include "target/registers.h"

namespace fiberscope::binary {

struct ExpressionContext {
  const target::Registers* registers = nullptr;   // the frame's recovered registers (may lack some)
  const target::Memory* memory = nullptr;         // for DW_OP_deref and friends
  std::optional<std::uint64_t> frame_base;        // DW_OP_fbreg
  std::optional<std::uint64_t> cfa;               // DW_OP_call_frame_cfa
  std::uint64_t load_bias = 0;                    // added to DW_OP_addr operands
  std::vector<std::uint64_t> initial_stack;       // e.g. the CFA for DW_CFA_expression (DWARF 5 6.4.2)
  // Resolves DW_OP_entry_value(expr) when the caller's call site says what was passed; empty if unknown.
  std::function<std::optional<std::uint64_t>(std::span<const std::byte>)> entry_value;
};

// Where a value lives, or the value itself.
struct Location {
  enum class Kind {
    memory,         // at `address`
    reg,            // in DWARF register `register_number`
    value,          // DW_OP_stack_value: `value` is the value itself
    implicit,       // DW_OP_implicit_value: `bytes`
    pieces,         // DW_OP_piece: see `pieces`
    optimized_out,  // empty expression or DW_OP_piece with no location
    entry_value_unknown,  // DW_OP_entry_value that could not be resolved
  };
  struct Piece;
  Kind kind = Kind::optimized_out;
  std::uint64_t address = 0;
  unsigned register_number = 0;
  std::uint64_t value = 0;
  std::vector<std::byte> bytes;
  std::vector<Piece> pieces;
};

struct Location::Piece {
  Location location;
  std::uint64_t size_bytes = 0;
};

// Caps on hostile input.
inline constexpr std::size_t kMaxExpressionOps = 10'000;
inline constexpr std::size_t kMaxExpressionStack = 1'000;

// Evaluates `expression` (raw DWARF bytes, address size 8).
Result<Location> evaluate(std::span<const std::byte> expression, const ExpressionContext& context);

}  // namespace fiberscope::binary
