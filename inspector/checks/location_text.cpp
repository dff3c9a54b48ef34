#include "checks/location_text.h"

#include <cstdint>

#include "base/byte_reader.h"
#include "base/hex.h"
#include "target/registers.h"

namespace fiberscope::checks {
namespace {

// Entry-value sub-expressions nest; a hostile one could nest without end.
constexpr int kMaxNesting = 4;
// A finding's evidence line, not a disassembly: long expressions are cut.
constexpr std::size_t kMaxOperations = 32;

std::string register_text(std::uint64_t number) {
  return "(" + std::string(target::register_name(static_cast<unsigned>(number))) + ")";
}

std::string describe(std::span<const std::byte> expression, int nesting) {
  ByteReader reader(expression, "location expression");
  std::string text;
  std::size_t operations = 0;
  auto append = [&text](const std::string& part) {
    if (!text.empty()) text += ' ';
    text += part;
  };
  while (!reader.at_end()) {
    if (++operations > kMaxOperations) {
      append("...");
      break;
    }
    const std::size_t at = reader.offset();
    auto opcode = reader.fixed<std::uint8_t>();
    if (!opcode) break;
    const unsigned op = *opcode;
    bool ok = true;
    if (op >= 0x50 && op <= 0x6f) {
      append("DW_OP_reg" + std::to_string(op - 0x50) + " " + register_text(op - 0x50));
    } else if (op >= 0x70 && op <= 0x8f) {
      auto offset = reader.sleb128();
      ok = offset.has_value();
      if (ok) append("DW_OP_breg" + std::to_string(op - 0x70) + " " + register_text(op - 0x70) + " " +
                     std::to_string(*offset));
    } else if (op >= 0x30 && op <= 0x4f) {
      append("DW_OP_lit" + std::to_string(op - 0x30));
    } else if (op == 0x90) {  // DW_OP_regx
      auto number = reader.uleb128();
      ok = number.has_value();
      if (ok) append("DW_OP_regx " + std::to_string(*number) + " " + register_text(*number));
    } else if (op == 0x92) {  // DW_OP_bregx
      auto number = reader.uleb128();
      auto offset = number ? reader.sleb128() : std::expected<std::int64_t, Error>(std::unexpected(number.error()));
      ok = number && offset;
      if (ok) append("DW_OP_bregx " + std::to_string(*number) + " " + register_text(*number) + " " +
                     std::to_string(*offset));
    } else if (op == 0x91) {  // DW_OP_fbreg
      auto offset = reader.sleb128();
      ok = offset.has_value();
      if (ok) append("DW_OP_fbreg " + std::to_string(*offset));
    } else if (op == 0x03) {  // DW_OP_addr
      auto address = reader.fixed<std::uint64_t>();
      ok = address.has_value();
      if (ok) append("DW_OP_addr " + hex(*address));
    } else if (op == 0x93) {  // DW_OP_piece
      auto size = reader.uleb128();
      ok = size.has_value();
      if (ok) append("DW_OP_piece " + std::to_string(*size));
    } else if (op == 0x9c) {
      append("DW_OP_call_frame_cfa");
    } else if (op == 0x9f) {
      append("DW_OP_stack_value");
    } else if (op == 0x06) {
      append("DW_OP_deref");
    } else if (op == 0x23) {  // DW_OP_plus_uconst
      auto value = reader.uleb128();
      ok = value.has_value();
      if (ok) append("DW_OP_plus_uconst " + std::to_string(*value));
    } else if (op == 0xa3 || op == 0xf3) {  // DW_OP_entry_value, DW_OP_GNU_entry_value
      auto length = reader.uleb128();
      auto inner = length ? reader.bytes(*length)
                          : std::expected<std::span<const std::byte>, Error>(std::unexpected(length.error()));
      ok = length && inner;
      if (ok) {
        append("DW_OP_entry_value(" + (nesting < kMaxNesting ? describe(*inner, nesting + 1) : std::string("...")) +
               ")");
      }
    } else {
      // Anything else is rare in variable locations; show the rest raw rather than guess its operands.
      std::string raw;
      for (std::size_t k = at; k < expression.size(); ++k) raw += hex(static_cast<std::uint8_t>(expression[k])) + " ";
      if (!raw.empty()) raw.pop_back();
      append("[" + raw + "]");
      break;
    }
    if (!ok) {
      append("<truncated at byte " + std::to_string(at) + ">");
      break;
    }
  }
  return text;
}

}  // namespace

std::string location_text(std::span<const std::byte> expression) {
  if (expression.empty()) return "none";
  return describe(expression, 0);
}

}  // namespace fiberscope::checks
