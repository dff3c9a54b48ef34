#include "binary/line_program_files.h"

#include <libdwarf/dwarf.h>

#include <algorithm>

#include "base/byte_reader.h"
#include "base/hex.h"
#include "binary/dwarf_limits.h"

namespace fiberscope::binary {

Result<std::vector<std::uint64_t>> line_program_files(std::span<const std::byte> debug_line, std::uint64_t offset) {
  ByteReader reader(debug_line, ".debug_line");
  FS_TRY_DISCARD(reader.seek(static_cast<std::size_t>(std::min<std::uint64_t>(offset, debug_line.size() + 1))));
  FS_TRY(length32, reader.fixed<std::uint32_t>());
  std::uint64_t length = *length32;
  bool is_64bit = false;
  if (*length32 == 0xffffffffu) {
    FS_TRY(length64, reader.fixed<std::uint64_t>());
    length = *length64;
    is_64bit = true;
  } else if (*length32 >= 0xfffffff0u) {
    return fail(".debug_line: reserved unit length ", hex(*length32), " at offset ", hex(offset));
  }
  if (length > reader.remaining())
    return fail(".debug_line: line program at offset ", hex(offset), " claims ", hex(length), " bytes but ",
                hex(reader.remaining()), " remain");
  const std::size_t unit_end = reader.offset() + static_cast<std::size_t>(length);
  FS_TRY(version, reader.fixed<std::uint16_t>());
  if (*version != 5) return fail(".debug_line: line program at offset ", hex(offset), " is not DWARF 5");
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // address_size
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // segment_selector_size
  std::uint64_t header_length = 0;
  if (is_64bit) {
    FS_TRY(value, reader.fixed<std::uint64_t>());
    header_length = *value;
  } else {
    FS_TRY(value, reader.fixed<std::uint32_t>());
    header_length = *value;
  }
  if (header_length > unit_end - reader.offset())
    return fail(".debug_line: header length ", hex(header_length), " at offset ", hex(offset), " runs past its unit");
  const std::size_t program_start = reader.offset() + static_cast<std::size_t>(header_length);
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // minimum_instruction_length
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // maximum_operations_per_instruction
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // default_is_stmt
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // line_base
  FS_TRY_DISCARD(reader.fixed<std::uint8_t>());  // line_range
  FS_TRY(opcode_base, reader.fixed<std::uint8_t>());
  if (*opcode_base == 0) return fail(".debug_line: opcode_base 0 at offset ", hex(offset));
  std::vector<std::uint8_t> operand_counts(*opcode_base, 0);  // standard_opcode_lengths, by opcode
  for (unsigned opcode = 1; opcode < *opcode_base; ++opcode) {
    FS_TRY(count, reader.fixed<std::uint8_t>());
    operand_counts[opcode] = *count;
  }
  if (program_start < reader.offset())
    return fail(".debug_line: header at offset ", hex(offset), " is shorter than its opcode table");

  // Only the file register is followed; the operands of every other opcode are skipped by their encoding.
  ByteReader program(debug_line.subspan(program_start, unit_end - program_start), ".debug_line program");
  std::vector<std::uint64_t> files;
  std::uint64_t file = 1;
  auto emit_row = [&]() -> Result<void> {
    if (files.size() >= kMaxLineRows) return fail(".debug_line: line program has too many rows");
    files.push_back(file);
    return {};
  };
  while (!program.at_end()) {
    FS_TRY(opcode, program.fixed<std::uint8_t>());
    if (*opcode >= *opcode_base) {
      FS_TRY_DISCARD(emit_row());
      continue;
    }
    switch (*opcode) {
      case 0: {  // extended: length, sub-opcode, operands
        FS_TRY(size, program.uleb128());
        if (*size == 0 || *size > program.remaining()) return fail(".debug_line: bad extended opcode length");
        const std::size_t next = program.offset() + static_cast<std::size_t>(*size);
        FS_TRY(sub_opcode, program.fixed<std::uint8_t>());
        if (*sub_opcode == DW_LNE_end_sequence) {
          FS_TRY_DISCARD(emit_row());
          file = 1;  // every register is reset for the next sequence (6.2.5.3)
        }
        FS_TRY_DISCARD(program.seek(next));
        break;
      }
      case DW_LNS_copy: {
        FS_TRY_DISCARD(emit_row());
        break;
      }
      case DW_LNS_set_file: {
        FS_TRY(number, program.uleb128());
        file = *number;
        break;
      }
      case DW_LNS_advance_line: {
        FS_TRY_DISCARD(program.sleb128());
        break;
      }
      case DW_LNS_fixed_advance_pc: {
        FS_TRY_DISCARD(program.fixed<std::uint16_t>());
        break;
      }
      default: {  // the other standard opcodes (and unknown ones) take as many ULEB operands as the header says
        for (unsigned i = 0; i < operand_counts[*opcode]; ++i) FS_TRY_DISCARD(program.uleb128());
        break;
      }
    }
  }
  return files;
}

}  // namespace fiberscope::binary
