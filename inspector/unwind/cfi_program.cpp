#include "unwind/cfi_program.h"

#include <string>
#include <vector>

#include "base/byte_reader.h"
#include "base/hex.h"

namespace fiberscope::unwind {
namespace {

// DW_CFA_* (DWARF 5 table 7.29, GNU extensions from binutils' dwarf2.def).
enum : std::uint8_t {
  kAdvanceLoc = 0x40, kOffset = 0x80, kRestore = 0xc0,
  kNop = 0x00, kSetLoc = 0x01, kAdvanceLoc1 = 0x02, kAdvanceLoc2 = 0x03, kAdvanceLoc4 = 0x04,
  kOffsetExtended = 0x05, kRestoreExtended = 0x06, kUndefined = 0x07, kSameValue = 0x08, kRegister = 0x09,
  kRememberState = 0x0a, kRestoreState = 0x0b, kDefCfa = 0x0c, kDefCfaRegister = 0x0d, kDefCfaOffset = 0x0e,
  kDefCfaExpression = 0x0f, kExpression = 0x10, kOffsetExtendedSf = 0x11, kDefCfaSf = 0x12,
  kDefCfaOffsetSf = 0x13, kValOffset = 0x14, kValOffsetSf = 0x15, kValExpression = 0x16,
  kGnuWindowSave = 0x2d, kGnuArgsSize = 0x2e, kGnuNegativeOffsetExtended = 0x2f,
};

// Runs one instruction block. Stops (successfully) when an advance moves past `target_pc`.
class Interpreter {
 public:
  Interpreter(const CfiSection& section, const Fde& fde, std::uint64_t target_pc)
      : section_(section), fde_(fde), target_pc_(target_pc) {}

  // Runs `entry[start..]` (a CIE's or FDE's instructions). `initial` is the row after the CIE (for restore), or
  // null while running the CIE itself.
  Result<void> run(std::span<const std::byte> entry, std::size_t start, std::uint64_t entry_offset,
                   const char* kind, const CfiRow* initial) {
    const std::string what = std::string(kind) + " at " + section_.name() + "+" + hex(entry_offset);
    ByteReader reader(entry, what);
    FS_TRY_DISCARD(reader.seek(start));
    const std::uint64_t entry_address = section_.address() + entry_offset;
    const auto error_here = [&](std::size_t at, const std::string& problem) {
      return fail(what, ": ", problem, " at offset ", hex(at));
    };
    while (!reader.at_end()) {
      if (++op_count_ > kMaxCfiOps) return fail(what, ": more than ", std::to_string(kMaxCfiOps), " instructions");
      const std::size_t op_offset = reader.offset();
      FS_TRY(opcode, reader.fixed<std::uint8_t>());
      const std::uint8_t high = *opcode & 0xc0;
      const std::uint8_t low = *opcode & 0x3f;
      Result<void> ok;
      bool stop = false;
      if (high == kAdvanceLoc) {
        ok = advance(low, &stop);
      } else if (high == kOffset) {
        FS_TRY(factored, reader.uleb128());
        ok = set_offset(low, *factored, RegisterRule::Kind::offset);
      } else if (high == kRestore) {
        restore(low, initial);
      } else {
        switch (*opcode) {
          case kNop: break;
          case kSetLoc: {
            std::uint64_t location = 0;
            if (section_.format() == CfiFormat::eh_frame) {
              bool indirect = false;
              FS_TRY(v, read_encoded_pointer(reader, fde_.cie.fde_pointer_encoding, entry_address, 0, &indirect));
              if (indirect) return error_here(op_offset, "indirect DW_CFA_set_loc");
              location = *v;
            } else {
              FS_TRY(v, reader.fixed<std::uint64_t>());
              location = *v;
            }
            if (location < row_.start_address) return error_here(op_offset, "DW_CFA_set_loc moves backwards");
            ok = move_to(location, &stop);
            break;
          }
          case kAdvanceLoc1: {
            FS_TRY(d, reader.fixed<std::uint8_t>());
            ok = advance(*d, &stop); break;
          }
          case kAdvanceLoc2: {
            FS_TRY(d, reader.fixed<std::uint16_t>());
            ok = advance(*d, &stop); break;
          }
          case kAdvanceLoc4: {
            FS_TRY(d, reader.fixed<std::uint32_t>());
            ok = advance(*d, &stop); break;
          }
          case kOffsetExtended: case kValOffset: {
            FS_TRY(reg, reader.uleb128());
            FS_TRY(factored, reader.uleb128());
            ok = set_offset(*reg, *factored,
                            *opcode == kValOffset ? RegisterRule::Kind::val_offset : RegisterRule::Kind::offset);
            break;
          }
          case kOffsetExtendedSf: case kValOffsetSf: case kGnuNegativeOffsetExtended: {
            FS_TRY(reg, reader.uleb128());
            std::int64_t factored = 0;
            if (*opcode == kGnuNegativeOffsetExtended) {
              FS_TRY(v, reader.uleb128());
              if (*v > static_cast<std::uint64_t>(INT64_MAX)) return error_here(op_offset, "offset out of range");
              factored = -static_cast<std::int64_t>(*v);
            } else {
              FS_TRY(v, reader.sleb128());
              factored = *v;
            }
            ok = set_signed_offset(*reg, factored,
                                   *opcode == kValOffsetSf ? RegisterRule::Kind::val_offset
                                                           : RegisterRule::Kind::offset);
            break;
          }
          case kRestoreExtended: {
            FS_TRY(reg, reader.uleb128());
            restore(*reg, initial); break;
          }
          case kUndefined: case kSameValue: {
            FS_TRY(reg, reader.uleb128());
            if (auto* rule = rule_for(*reg)) {
              *rule = RegisterRule{};
              rule->kind = *opcode == kUndefined ? RegisterRule::Kind::undefined : RegisterRule::Kind::same_value;
            }
            break;
          }
          case kRegister: {
            FS_TRY(reg, reader.uleb128());
            FS_TRY(source, reader.uleb128());
            if (*source > 0xffff) return error_here(op_offset, "register " + hex(*source) + " out of range");
            if (auto* rule = rule_for(*reg)) {
              *rule = RegisterRule{};
              rule->kind = RegisterRule::Kind::register_copy;
              rule->source_register = static_cast<std::uint16_t>(*source);
            }
            break;
          }
          case kRememberState:
            if (remembered_.size() >= kMaxRememberDepth) {
              return error_here(op_offset, "DW_CFA_remember_state nested deeper than " +
                                               std::to_string(kMaxRememberDepth));
            }
            remembered_.push_back(row_);
            break;
          case kRestoreState: {
            if (remembered_.empty()) return error_here(op_offset, "DW_CFA_restore_state without remember_state");
            // DWARF 5 6.4.2.4: the rules (register and CFA) come back; the location does not.
            const std::uint64_t start_address = row_.start_address;
            row_ = remembered_.back();
            row_.start_address = start_address;
            remembered_.pop_back();
            break;
          }
          case kDefCfa: case kDefCfaSf: {
            FS_TRY(reg, reader.uleb128());
            if (*reg > 0xffff) return error_here(op_offset, "CFA register " + hex(*reg) + " out of range");
            std::int64_t offset = 0;
            if (*opcode == kDefCfa) {
              FS_TRY(v, reader.uleb128());
              if (*v > static_cast<std::uint64_t>(INT64_MAX)) return error_here(op_offset, "CFA offset out of range");
              offset = static_cast<std::int64_t>(*v);
            } else {
              FS_TRY(v, reader.sleb128());
              if (__builtin_mul_overflow(*v, fde_.cie.data_alignment, &offset)) {
                return error_here(op_offset, "CFA offset overflows");
              }
            }
            row_.cfa = CfaRule{CfaRule::Kind::register_offset, static_cast<std::uint16_t>(*reg), offset, {}};
            break;
          }
          case kDefCfaRegister: {
            FS_TRY(reg, reader.uleb128());
            if (*reg > 0xffff) return error_here(op_offset, "CFA register " + hex(*reg) + " out of range");
            if (row_.cfa.kind != CfaRule::Kind::register_offset) {
              return error_here(op_offset, "DW_CFA_def_cfa_register without a register CFA rule");
            }
            row_.cfa.base_register = static_cast<std::uint16_t>(*reg);
            break;
          }
          case kDefCfaOffset: case kDefCfaOffsetSf: {
            std::int64_t offset = 0;
            if (*opcode == kDefCfaOffset) {
              FS_TRY(v, reader.uleb128());
              if (*v > static_cast<std::uint64_t>(INT64_MAX)) return error_here(op_offset, "CFA offset out of range");
              offset = static_cast<std::int64_t>(*v);
            } else {
              FS_TRY(v, reader.sleb128());
              if (__builtin_mul_overflow(*v, fde_.cie.data_alignment, &offset)) {
                return error_here(op_offset, "CFA offset overflows");
              }
            }
            if (row_.cfa.kind != CfaRule::Kind::register_offset) {
              return error_here(op_offset, "DW_CFA_def_cfa_offset without a register CFA rule");
            }
            row_.cfa.offset = offset;
            break;
          }
          case kDefCfaExpression: {
            FS_TRY(length, reader.uleb128());
            FS_TRY(block, reader.bytes(*length));
            row_.cfa = CfaRule{CfaRule::Kind::expression, 0, 0, *block};
            break;
          }
          case kExpression: case kValExpression: {
            FS_TRY(reg, reader.uleb128());
            FS_TRY(length, reader.uleb128());
            FS_TRY(block, reader.bytes(*length));
            if (auto* rule = rule_for(*reg)) {
              *rule = RegisterRule{};
              rule->kind = *opcode == kExpression ? RegisterRule::Kind::expression : RegisterRule::Kind::val_expression;
              rule->expression = *block;
            }
            break;
          }
          case kGnuArgsSize: {
            FS_TRY(size, reader.uleb128());
            row_.args_size = *size;
            break;
          }
          case kGnuWindowSave:
            return error_here(op_offset, "DW_CFA_GNU_window_save (SPARC/AArch64) in x86-64 CFI");
          default:
            return error_here(op_offset, "unknown call frame instruction " + hex(*opcode));
        }
      }
      if (!ok) return std::unexpected(ok.error().with_context(what + " instruction at offset " + hex(op_offset)));
      if (stop) return {};
    }
    return {};
  }

  CfiRow& row() { return row_; }
  bool stopped_early() const { return end_found_; }

 private:
  // Null for registers beyond rip (vector registers): their rules are parsed and ignored.
  RegisterRule* rule_for(std::uint64_t reg) {
    return reg < target::kRegisterCount ? &row_.registers[static_cast<std::size_t>(reg)] : nullptr;
  }

  void restore(std::uint64_t reg, const CfiRow* initial) {
    if (auto* rule = rule_for(reg))
      *rule = initial ? initial->registers[static_cast<std::size_t>(reg)] : RegisterRule{};
  }

  Result<void> set_offset(std::uint64_t reg, std::uint64_t factored, RegisterRule::Kind kind) {
    if (factored > static_cast<std::uint64_t>(INT64_MAX)) return fail("register offset out of range");
    return set_signed_offset(reg, static_cast<std::int64_t>(factored), kind);
  }

  Result<void> set_signed_offset(std::uint64_t reg, std::int64_t factored, RegisterRule::Kind kind) {
    std::int64_t offset = 0;
    if (__builtin_mul_overflow(factored, fde_.cie.data_alignment, &offset)) return fail("register offset overflows");
    if (auto* rule = rule_for(reg)) *rule = RegisterRule{kind, 0, offset, {}};
    return {};
  }

  Result<void> advance(std::uint64_t factored, bool* stop) {
    std::uint64_t delta = 0, location = 0;
    if (__builtin_mul_overflow(factored, fde_.cie.code_alignment, &delta) ||
        __builtin_add_overflow(row_.start_address, delta, &location)) {
      return fail("advance past 2^64");
    }
    return move_to(location, stop);
  }

  Result<void> move_to(std::uint64_t location, bool* stop) {
    if (location > target_pc_) {  // the current row covers the target: [start, location)
      row_.end_address = location;
      end_found_ = true;
      *stop = true;
      return {};
    }
    row_.start_address = location;
    return {};
  }

  const CfiSection& section_;
  const Fde& fde_;
  std::uint64_t target_pc_;
  CfiRow row_;
  std::vector<CfiRow> remembered_;
  std::size_t op_count_ = 0;
  bool end_found_ = false;
};

}  // namespace

Result<CfiRow> compute_row(const CfiSection& section, const Fde& fde, std::uint64_t pc) {
  if (pc < fde.pc_begin || pc >= fde.pc_end) {
    return fail("pc ", hex(pc), " is outside the FDE at ", section.name(), "+", hex(fde.offset));
  }
  Interpreter interpreter(section, fde, pc);
  CfiRow& row = interpreter.row();
  row.start_address = fde.pc_begin;
  row.return_address_register = fde.cie.return_address_register;
  row.signal_frame = fde.cie.signal_frame;
  FS_TRY_DISCARD(interpreter.run(fde.cie.entry, fde.cie.instructions_start, fde.cie.offset, "CIE", nullptr));
  if (!interpreter.stopped_early()) {
    const CfiRow initial = row;
    FS_TRY_DISCARD(interpreter.run(fde.entry, fde.instructions_start, fde.offset, "FDE", &initial));
  }
  if (!interpreter.stopped_early()) row.end_address = fde.pc_end;
  if (row.cfa.kind == CfaRule::Kind::unset) {
    return fail("FDE at ", section.name(), "+", hex(fde.offset), " defines no CFA rule at pc ", hex(pc));
  }
  return row;
}

}  // namespace fiberscope::unwind
