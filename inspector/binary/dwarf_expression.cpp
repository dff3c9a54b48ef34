#include "binary/dwarf_expression.h"

#include <libdwarf/dwarf.h>

#include <array>
#include <string>

#include "base/byte_reader.h"
#include "base/hex.h"

namespace fiberscope::binary {
namespace {

// GNU opcodes that gcc emits and that older dwarf.h copies may lack under these names.
constexpr unsigned kOpGnuEntryValue = 0xf3;
constexpr unsigned kOpGnuParameterRef = 0xfa;
constexpr unsigned kOpGnuImplicitPointer = 0xf2;
constexpr unsigned kOpGnuConstType = 0xf4;
constexpr unsigned kOpGnuRegvalType = 0xf5;
constexpr unsigned kOpGnuDerefType = 0xf6;
constexpr unsigned kOpGnuConvert = 0xf7;
constexpr unsigned kOpGnuReinterpret = 0xf9;

// One evaluation: the stack and the state of the simple location description being built (DWARF 5 2.6.1.1).
class Evaluator {
 public:
  Evaluator(std::span<const std::byte> expression, const ExpressionContext& context)
      : reader_(expression, "DWARF expression"), context_(context) {}

  Result<Location> run();

 private:
  enum class Pending { none, reg, value, implicit, optimized_out };

  Result<void> step(unsigned op);  // constants, then hands the operation on through the families below
  Result<void> stack_step(unsigned op);
  Result<void> arithmetic_step(unsigned op);
  Result<void> control_step(unsigned op);
  Result<void> location_step(unsigned op);
  Result<void> close_piece(unsigned op);  // DW_OP_piece, DW_OP_bit_piece: closes one part of a composite location
  Result<void> push(std::uint64_t value) {
    if (stack_.size() >= kMaxExpressionStack)
      return here("stack overflow (more than " + std::to_string(kMaxExpressionStack) + " entries)");
    stack_.push_back(value);
    return {};
  }
  Result<std::uint64_t> pop() {
    if (stack_.empty()) return here("stack underflow");
    auto value = stack_.back();
    stack_.pop_back();
    return value;
  }
  Result<std::uint64_t> register_value(std::uint64_t number) {
    if (!context_.registers) return here("register r" + std::to_string(number) + " needed but no registers given");
    auto value = context_.registers->get(static_cast<unsigned>(number > 1000 ? 1000 : number));
    if (!value) return here("value of DWARF register " + std::to_string(number) + " is not known in this frame");
    return *value;
  }
  Result<void> deref(std::uint64_t size_bytes);
  Result<void> branch(std::int16_t delta);
  Result<void> entry_value(std::span<const std::byte> inner);
  // The location described since the last piece (or the start), from the pending state and the stack top.
  Result<Location> finish_simple();
  std::unexpected<Error> here(std::string_view problem) const {
    return fail("DWARF expression: ", problem, " (op ", hex(op_offset_), ")");
  }

  ByteReader reader_;
  const ExpressionContext& context_;
  std::vector<std::uint64_t> stack_;
  std::size_t op_offset_ = 0;
  Pending pending_ = Pending::none;
  unsigned pending_register_ = 0;
  std::vector<std::byte> pending_bytes_;
  // Set when an entry value could not be resolved: the simple location is then entry_value_unknown, and reads
  // through the placeholder value are skipped rather than reported as unreadable memory.
  bool tainted_ = false;
  std::vector<Location::Piece> pieces_;
};

Result<Location> Evaluator::run() {
  for (std::uint64_t value : context_.initial_stack)
    FS_TRY_DISCARD(push(value));
  if (reader_.size() == 0) return Location{};  // empty expression: optimized out (DWARF 5 2.6.1.1.1)
  std::size_t executed = 0;
  while (!reader_.at_end()) {
    if (++executed > kMaxExpressionOps)
      return here("more than " + std::to_string(kMaxExpressionOps) + " operations (a loop?)");
    op_offset_ = reader_.offset();
    FS_TRY(op, reader_.fixed<std::uint8_t>());
    if (pending_ != Pending::none && *op != DW_OP_piece && *op != DW_OP_bit_piece && *op != DW_OP_nop)
      return here("operation " + hex(*op) + " follows a register, stack_value or implicit_value location");
    FS_TRY_DISCARD(step(*op));
  }
  if (!pieces_.empty()) {
    if (pending_ != Pending::none || !stack_.empty())
      return here("trailing location after the last DW_OP_piece");
    Location composite;
    composite.kind = Location::Kind::pieces;
    composite.pieces = std::move(pieces_);
    return composite;
  }
  return finish_simple();
}

Result<Location> Evaluator::finish_simple() {
  Location location;
  if (tainted_) {
    location.kind = Location::Kind::entry_value_unknown;
    return location;
  }
  switch (pending_) {
    case Pending::reg:
      location.kind = Location::Kind::reg;
      location.register_number = pending_register_;
      return location;
    case Pending::implicit:
      location.kind = Location::Kind::implicit;
      location.bytes = std::move(pending_bytes_);
      return location;
    case Pending::optimized_out:
      return location;
    case Pending::value: {
      FS_TRY(top, pop());
      location.kind = Location::Kind::value;
      location.value = *top;
      return location;
    }
    case Pending::none:
      break;
  }
  if (stack_.empty()) return here("expression ends with an empty stack");
  location.kind = Location::Kind::memory;
  location.address = stack_.back();
  return location;
}

Result<void> Evaluator::deref(std::uint64_t size_bytes) {
  if (size_bytes == 0 || size_bytes > 8) return here("deref size " + std::to_string(size_bytes) + " is not 1..8");
  FS_TRY(address, pop());
  if (tainted_) return push(0);
  if (!context_.memory) return here("memory read at " + hex(*address) + " but no memory given");
  std::array<std::byte, 8> buffer{};
  if (auto ok = context_.memory->read(target::RemoteAddress(*address), std::span(buffer.data(), size_bytes)); !ok)
    return std::unexpected(ok.error().with_context("DWARF expression: deref at op " + hex(op_offset_)));
  std::uint64_t value = 0;
  std::memcpy(&value, buffer.data(), 8);  // little-endian: the high bytes stay zero (zero-extension, 2.5.1.3)
  return push(value);
}

Result<void> Evaluator::branch(std::int16_t delta) {
  // The offset counts from the end of the 2-byte operand; landing exactly at the end is allowed (it terminates).
  const auto from = static_cast<std::int64_t>(reader_.offset());
  const std::int64_t to = from + delta;
  if (to < 0 || to > static_cast<std::int64_t>(reader_.size())) return here("branch target outside the expression");
  return reader_.seek(static_cast<std::size_t>(to));
}

Result<void> Evaluator::entry_value(std::span<const std::byte> inner) {
  // DWARF 5 2.5.1.7: the value the described register (or location) had on entry to the function; only the
  // caller's DW_TAG_call_site can say, so the context's resolver is the only source.
  std::optional<std::uint64_t> value;
  if (context_.entry_value) value = context_.entry_value(inner);
  if (!value) {
    tainted_ = true;
    return push(0);
  }
  return push(*value);
}

// The operations are split by family; each family's switch hands an operation that is not its own to the next,
// and the last reports it unknown.
Result<void> Evaluator::step(unsigned op) {
  auto& r = reader_;
  if (op >= DW_OP_lit0 && op <= DW_OP_lit31) return push(op - DW_OP_lit0);
  if (op >= DW_OP_breg0 && op <= DW_OP_breg31) {
    FS_TRY(offset, r.sleb128());
    FS_TRY(base, register_value(op - DW_OP_breg0));
    return push(*base + static_cast<std::uint64_t>(*offset));
  }
  if (op >= DW_OP_reg0 && op <= DW_OP_reg31) {
    pending_ = Pending::reg;
    pending_register_ = op - DW_OP_reg0;
    return {};
  }
  switch (op) {
    case DW_OP_addr: {
      FS_TRY(address, r.fixed<std::uint64_t>());
      return push(*address + context_.load_bias);
    }
    case DW_OP_const1u: { FS_TRY(v, r.fixed<std::uint8_t>()); return push(*v); }
    case DW_OP_const1s: {
      FS_TRY(v, r.fixed<std::int8_t>());
      return push(static_cast<std::uint64_t>(std::int64_t{*v}));
    }
    case DW_OP_const2u: { FS_TRY(v, r.fixed<std::uint16_t>()); return push(*v); }
    case DW_OP_const2s: {
      FS_TRY(v, r.fixed<std::int16_t>());
      return push(static_cast<std::uint64_t>(std::int64_t{*v}));
    }
    case DW_OP_const4u: { FS_TRY(v, r.fixed<std::uint32_t>()); return push(*v); }
    case DW_OP_const4s: {
      FS_TRY(v, r.fixed<std::int32_t>());
      return push(static_cast<std::uint64_t>(std::int64_t{*v}));
    }
    case DW_OP_const8u: { FS_TRY(v, r.fixed<std::uint64_t>()); return push(*v); }
    case DW_OP_const8s: { FS_TRY(v, r.fixed<std::int64_t>()); return push(static_cast<std::uint64_t>(*v)); }
    case DW_OP_constu: { FS_TRY(v, r.uleb128()); return push(*v); }
    case DW_OP_consts: { FS_TRY(v, r.sleb128()); return push(static_cast<std::uint64_t>(*v)); }
    default: return stack_step(op);
  }
}

// Stack manipulation and memory reads (DWARF 5 2.5.1.3).
Result<void> Evaluator::stack_step(unsigned op) {
  auto& r = reader_;
  switch (op) {
    case DW_OP_dup: {
      if (stack_.empty()) return here("stack underflow");
      return push(stack_.back());
    }
    case DW_OP_drop: { FS_TRY(v, pop()); return {}; }
    case DW_OP_over: {
      if (stack_.size() < 2) return here("stack underflow");
      return push(stack_[stack_.size() - 2]);
    }
    case DW_OP_pick: {
      FS_TRY(index, r.fixed<std::uint8_t>());
      if (*index >= stack_.size()) return here("pick index " + std::to_string(*index) + " beyond the stack");
      return push(stack_[stack_.size() - 1 - *index]);
    }
    case DW_OP_swap: {
      if (stack_.size() < 2) return here("stack underflow");
      std::swap(stack_[stack_.size() - 1], stack_[stack_.size() - 2]);
      return {};
    }
    case DW_OP_rot: {
      if (stack_.size() < 3) return here("stack underflow");
      // The top entry becomes the third, the second and third move up.
      const std::size_t n = stack_.size();
      const std::uint64_t top = stack_[n - 1];
      stack_[n - 1] = stack_[n - 2];
      stack_[n - 2] = stack_[n - 3];
      stack_[n - 3] = top;
      return {};
    }

    case DW_OP_deref: return deref(8);
    case DW_OP_deref_size: { FS_TRY(size, r.fixed<std::uint8_t>()); return deref(*size); }
    case DW_OP_deref_type:
    case kOpGnuDerefType: {
      FS_TRY(size, r.fixed<std::uint8_t>());
      FS_TRY(type, r.uleb128());
      return deref(*size);
    }
    case DW_OP_xderef:
    case DW_OP_xderef_size:
    case DW_OP_xderef_type: return here("address-space derefs (xderef) are not supported on x86-64");
    default: return arithmetic_step(op);
  }
}

// Arithmetic, logical and relational operations (DWARF 5 2.5.1.4).
Result<void> Evaluator::arithmetic_step(unsigned op) {
  auto& r = reader_;
  auto binary_op = [&](auto&& apply) -> Result<void> {
    FS_TRY(b, pop());
    FS_TRY(a, pop());
    FS_TRY(result, apply(*a, *b));
    return push(*result);
  };
  auto ok = [](std::uint64_t v) -> Result<std::uint64_t> { return v; };
  switch (op) {
    case DW_OP_abs: {
      FS_TRY(v, pop());
      const auto s = static_cast<std::int64_t>(*v);
      return push(s < 0 ? std::uint64_t{0} - *v : *v);
    }
    case DW_OP_neg: { FS_TRY(v, pop()); return push(std::uint64_t{0} - *v); }
    case DW_OP_not: { FS_TRY(v, pop()); return push(~*v); }
    case DW_OP_plus_uconst: {
      FS_TRY(addend, r.uleb128());
      FS_TRY(v, pop());
      return push(*v + *addend);
    }
    case DW_OP_and: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a & b); });
    case DW_OP_or: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a | b); });
    case DW_OP_xor: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a ^ b); });
    case DW_OP_plus: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a + b); });
    case DW_OP_minus: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a - b); });
    case DW_OP_mul: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a * b); });
    case DW_OP_div:
      return binary_op([&](std::uint64_t a, std::uint64_t b) -> Result<std::uint64_t> {
        const auto sa = static_cast<std::int64_t>(a), sb = static_cast<std::int64_t>(b);
        if (sb == 0) return here("division by zero");
        if (sa == INT64_MIN && sb == -1) return a;  // the only overflowing signed division
        return static_cast<std::uint64_t>(sa / sb);
      });
    case DW_OP_mod:
      return binary_op([&](std::uint64_t a, std::uint64_t b) -> Result<std::uint64_t> {
        if (b == 0) return here("modulo by zero");
        return a % b;
      });
    case DW_OP_shl: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(b >= 64 ? 0 : a << b); });
    case DW_OP_shr: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(b >= 64 ? 0 : a >> b); });
    case DW_OP_shra:
      return binary_op([&](std::uint64_t a, std::uint64_t b) {
        const auto sa = static_cast<std::int64_t>(a);
        if (b >= 64) return ok(sa < 0 ? ~std::uint64_t{0} : 0);
        return ok(static_cast<std::uint64_t>(sa >> b));
      });
    // Comparisons use the generic type, which is signed (DWARF 5 2.5.1.4).
    case DW_OP_eq: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a == b); });
    case DW_OP_ne: return binary_op([&](std::uint64_t a, std::uint64_t b) { return ok(a != b); });
    case DW_OP_lt:
      return binary_op([&](std::uint64_t a, std::uint64_t b) {
        return ok(static_cast<std::int64_t>(a) < static_cast<std::int64_t>(b));
      });
    case DW_OP_le:
      return binary_op([&](std::uint64_t a, std::uint64_t b) {
        return ok(static_cast<std::int64_t>(a) <= static_cast<std::int64_t>(b));
      });
    case DW_OP_gt:
      return binary_op([&](std::uint64_t a, std::uint64_t b) {
        return ok(static_cast<std::int64_t>(a) > static_cast<std::int64_t>(b));
      });
    case DW_OP_ge:
      return binary_op([&](std::uint64_t a, std::uint64_t b) {
        return ok(static_cast<std::int64_t>(a) >= static_cast<std::int64_t>(b));
      });
    default: return control_step(op);
  }
}

// Branches, registers and the frame's bases (DWARF 5 2.5.1.2, 2.5.1.5, 2.6.1.1.3).
Result<void> Evaluator::control_step(unsigned op) {
  auto& r = reader_;
  switch (op) {
    case DW_OP_skip: {
      FS_TRY(delta, r.fixed<std::int16_t>());
      return branch(*delta);
    }
    case DW_OP_bra: {
      FS_TRY(delta, r.fixed<std::int16_t>());
      FS_TRY(condition, pop());
      if (*condition == 0) return {};
      return branch(*delta);
    }

    case DW_OP_regx: {
      FS_TRY(number, r.uleb128());
      if (*number > 0xffff) return here("register number " + std::to_string(*number) + " is implausible");
      pending_ = Pending::reg;
      pending_register_ = static_cast<unsigned>(*number);
      return {};
    }
    case DW_OP_bregx: {
      FS_TRY(number, r.uleb128());
      FS_TRY(offset, r.sleb128());
      FS_TRY(base, register_value(*number));
      return push(*base + static_cast<std::uint64_t>(*offset));
    }
    case DW_OP_regval_type:
    case kOpGnuRegvalType: {
      FS_TRY(number, r.uleb128());
      FS_TRY(type, r.uleb128());
      FS_TRY(value, register_value(*number));
      return push(*value);
    }
    case DW_OP_fbreg: {
      FS_TRY(offset, r.sleb128());
      if (!context_.frame_base) return here("DW_OP_fbreg without a frame base");
      return push(*context_.frame_base + static_cast<std::uint64_t>(*offset));
    }
    case DW_OP_call_frame_cfa: {
      if (!context_.cfa) return here("DW_OP_call_frame_cfa without a CFA");
      return push(*context_.cfa);
    }
    default: return location_step(op);
  }
}

// Composite and implicit locations, entry values and typed values (DWARF 5 2.5.1.6-7, 2.6.1.1.4, 2.6.1.2).
Result<void> Evaluator::location_step(unsigned op) {
  auto& r = reader_;
  switch (op) {
    case DW_OP_piece:
    case DW_OP_bit_piece: return close_piece(op);
    case DW_OP_stack_value:
      if (stack_.empty()) return here("DW_OP_stack_value with an empty stack");
      pending_ = Pending::value;
      return {};
    case DW_OP_implicit_value: {
      FS_TRY(size, r.uleb128());
      FS_TRY(block, r.bytes(*size));
      pending_ = Pending::implicit;
      pending_bytes_.assign(block->begin(), block->end());
      return {};
    }
    case DW_OP_implicit_pointer:
    case kOpGnuImplicitPointer: {
      // A pointer to a variable that has no address: nothing readable to show, so treat as optimized out.
      FS_TRY(die_offset, r.fixed<std::uint32_t>());
      FS_TRY(byte_offset, r.sleb128());
      pending_ = Pending::optimized_out;
      return {};
    }
    case DW_OP_entry_value:
    case kOpGnuEntryValue: {
      FS_TRY(size, r.uleb128());
      FS_TRY(inner, r.bytes(*size));
      return entry_value(*inner);
    }
    case kOpGnuParameterRef: {
      // Refers to a parameter of the abstract origin; the caller-side value is not tracked: unknown.
      FS_TRY(die_offset, r.fixed<std::uint32_t>());
      tainted_ = true;
      return push(0);
    }
    case DW_OP_const_type:
    case kOpGnuConstType: {
      FS_TRY(type, r.uleb128());
      FS_TRY(size, r.fixed<std::uint8_t>());
      FS_TRY(block, r.bytes(*size));
      if (*size > 8) return here("typed constant wider than 8 bytes is not supported");
      std::uint64_t value = 0;
      std::memcpy(&value, block->data(), *size);
      return push(value);
    }
    case DW_OP_convert:
    case kOpGnuConvert:
    case DW_OP_reinterpret:
    case kOpGnuReinterpret: {
      // Values are kept as 64-bit integers; a type change of an integer value of at most 8 bytes is a no-op.
      FS_TRY(type, r.uleb128());
      if (stack_.empty()) return here("stack underflow");
      return {};
    }
    case DW_OP_nop: return {};
    case DW_OP_call2:
    case DW_OP_call4:
    case DW_OP_call_ref: return here("DW_OP_call* is not supported");
    case DW_OP_push_object_address: return here("DW_OP_push_object_address has no object here");
    case DW_OP_form_tls_address:
    case DW_OP_GNU_push_tls_address: return here("thread-local storage addresses are not supported");
    case DW_OP_addrx:
    case DW_OP_constx:
    case DW_OP_GNU_addr_index:
    case DW_OP_GNU_const_index: return here("indexed addresses (.debug_addr, split DWARF) are not supported");
    default: return here("unknown operation " + hex(op));
  }
}

Result<void> Evaluator::close_piece(unsigned op) {
  auto& r = reader_;
  FS_TRY(size, r.uleb128());
  std::uint64_t size_bytes = *size;
  if (op == DW_OP_bit_piece) {
    FS_TRY(bit_offset, r.uleb128());
    if (*size % 8 != 0 || *bit_offset != 0) return here("DW_OP_bit_piece not on byte boundaries is not supported");
    size_bytes = *size / 8;
  }
  if (pieces_.size() >= kMaxExpressionStack) return here("too many pieces");
  Location::Piece piece;
  piece.size_bytes = size_bytes;
  // A piece with nothing before it describes a part that was optimized out (DWARF 5 2.6.1.2).
  if (pending_ == Pending::none && stack_.empty() && !tainted_) {
    pending_ = Pending::optimized_out;
  }
  FS_TRY(part, finish_simple());
  piece.location = std::move(*part);
  pieces_.push_back(std::move(piece));
  pending_ = Pending::none;
  tainted_ = false;
  stack_.clear();
  return {};
}

}  // namespace

Result<Location> evaluate(std::span<const std::byte> expression, const ExpressionContext& context) {
  return Evaluator(expression, context).run();
}

}  // namespace fiberscope::binary
