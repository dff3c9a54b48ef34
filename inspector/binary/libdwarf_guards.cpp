#include "binary/libdwarf_guards.h"

#include <vector>

#include "base/byte_reader.h"
#include "base/hex.h"
#include "binary/dwarf_limits.h"

namespace fiberscope::binary {
namespace {

// Moves past one field of a line header's directory or file entry. False for a form this walk does not know, or a
// field that runs off the section: the check ends there and libdwarf judges the rest (it reports a truncation).
Result<bool> skip_entry_field(ByteReader& reader, std::uint64_t form, bool is_64bit) {
  std::size_t size = 0;
  switch (form) {
    case DW_FORM_string:
      while (true) {
        FS_TRY(byte, reader.fixed<std::uint8_t>());
        if (*byte == 0) return true;
      }
    case DW_FORM_udata: case DW_FORM_strx: {
      FS_TRY(value, reader.uleb128());
      return true;
    }
    case DW_FORM_line_strp: case DW_FORM_strp: size = is_64bit ? 8 : 4; break;
    case DW_FORM_data1: case DW_FORM_strx1: size = 1; break;
    case DW_FORM_data2: case DW_FORM_strx2: size = 2; break;
    case DW_FORM_strx3: size = 3; break;
    case DW_FORM_data4: case DW_FORM_strx4: size = 4; break;
    case DW_FORM_data8: size = 8; break;
    case DW_FORM_data16: size = 16; break;
    default: return false;
  }
  return reader.seek(reader.offset() + size).has_value();
}

}  // namespace

// libdwarf 20210528 loads every .debug_rnglists / .debug_loclists table header as soon as the first compile unit
// is read, and when a header is malformed its loader frees the table contexts and then keeps looping over them: a
// double free (found by tests/fuzz/fuzz_dwarf). So the headers are checked here first, with the rules that loader
// applies (DWARF 5 sections 7.28 and 7.29), and a file that breaks them never reaches libdwarf.
Result<void> check_list_table_headers(std::span<const std::byte> section, std::string_view name) {
  ByteReader reader(section, name);
  for (std::size_t table = 0; !reader.at_end(); ++table) {
    if (table >= kMaxCompileUnits) return fail(name, ": more than ", std::to_string(kMaxCompileUnits), " tables");
    const std::size_t start = reader.offset();
    FS_TRY(length32, reader.fixed<std::uint32_t>());
    std::uint64_t length = *length32;
    if (*length32 >= 0xfffffff0u) {
      if (*length32 != 0xffffffffu)
        return fail(name, ": reserved unit length ", hex(*length32), " at offset ", hex(start));
      FS_TRY(length64, reader.fixed<std::uint64_t>());
      length = *length64;
    }
    const std::size_t body = reader.offset();
    if (length > reader.remaining() || length < 8)
      return fail(name, ": table at offset ", hex(start), " claims ", hex(length), " bytes but ",
                  hex(reader.remaining()), " remain in the section");
    FS_TRY(version, reader.fixed<std::uint16_t>());
    FS_TRY(address_size, reader.fixed<std::uint8_t>());
    if (*version != 5) return fail(name, ": table at offset ", hex(start), " has version ", std::to_string(*version));
    if (*address_size != 2 && *address_size != 4 && *address_size != 8)
      return fail(name, ": table at offset ", hex(start), " has address size ", std::to_string(*address_size));
    FS_TRY_DISCARD(reader.seek(body + static_cast<std::size_t>(length)));
  }
  return {};
}

// libdwarf 20210528 joins a file's name to its directory (dwarf_srcfiles, dwarf_linesrc) without checking the
// file's directory index against the line header's directory table: a hostile index reads past that array and
// follows whatever pointer lies there (found by fuzz_dwarf; valgrind shows the read). So the indexes are checked
// first. DWARF 5 lists the compilation directory as entry 0 of the table; earlier versions imply it as index 0
// and number the listed directories from 1 (DWARF 5 section 6.2.4, DWARF 4 section 6.2.4).
Result<void> check_file_directories(Dwarf_Debug debug, Dwarf_Line_Context context, Dwarf_Unsigned version) {
  Dwarf_Signed directories = 0, first = 0, count = 0, end = 0;
  FS_TRY_DISCARD(dwarf_call(debug, "reading the line table's directories", dwarf_srclines_include_dir_count, context,
                            &directories));
  FS_TRY_DISCARD(dwarf_call(debug, "reading the line table's files", dwarf_srclines_files_indexes, context, &first,
                            &count, &end));
  const Dwarf_Unsigned highest = version >= 5 ? static_cast<Dwarf_Unsigned>(directories) - 1
                                              : static_cast<Dwarf_Unsigned>(directories);
  for (Dwarf_Signed index = first; index < end && index - first < static_cast<Dwarf_Signed>(kMaxListEntries); ++index) {
    const char* name = nullptr;
    Dwarf_Unsigned directory = 0, modified = 0, length = 0;
    Dwarf_Form_Data16* md5 = nullptr;
    FS_TRY_DISCARD(dwarf_call(debug, "reading the line table's files", dwarf_srclines_files_data_b, context, index,
                              &name, &directory, &modified, &length, &md5));
    if (directories <= 0 ? directory != 0 : directory > highest)
      return fail("line table: file ", std::to_string(index), " names directory ", std::to_string(directory), " of ",
                  std::to_string(directories < 0 ? 0 : directories));
  }
  return {};
}

// libdwarf 20210528 allocates a DWARF 5 line header's directory and file name tables from their counts before
// reading them: a hostile count of 2^28 becomes a 2 GiB calloc from a 4 KiB file (found by fuzz_dwarf). Every entry
// takes at least one byte per format field, so a count the rest of the unit cannot hold is refused here first
// (DWARF 5 section 6.2.4). Forms this walk does not know end the check; libdwarf then judges the rest.
Result<void> check_line_table_counts(std::span<const std::byte> debug_line, std::uint64_t offset) {
  ByteReader reader(debug_line, ".debug_line");
  if (offset > debug_line.size()) return fail(".debug_line: unit offset ", hex(offset), " is past the section");
  FS_TRY_DISCARD(reader.seek(static_cast<std::size_t>(offset)));
  FS_TRY(length32, reader.fixed<std::uint32_t>());
  std::uint64_t length = *length32;
  const bool is_64bit = *length32 == 0xffffffffu;
  if (is_64bit) {
    FS_TRY(length64, reader.fixed<std::uint64_t>());
    length = *length64;
  }
  if (length > reader.remaining()) return {};  // libdwarf reports a truncated unit itself
  const std::size_t end = reader.offset() + static_cast<std::size_t>(length);
  FS_TRY(version, reader.fixed<std::uint16_t>());
  if (*version < 5) return {};  // earlier versions list NUL-terminated entries without counts
  // address_size, segment_selector_size, header_length, minimum_instruction_length,
  // maximum_operations_per_instruction, default_is_stmt, line_base, line_range; then the standard opcode lengths.
  FS_TRY(fixed_fields, reader.bytes(2 + (is_64bit ? 8 : 4) + 5));
  FS_TRY(opcode_base, reader.fixed<std::uint8_t>());
  FS_TRY(opcode_lengths, reader.bytes(*opcode_base > 0 ? *opcode_base - 1u : 0u));
  for (const char* table : {"directory", "file name"}) {
    FS_TRY(format_count, reader.fixed<std::uint8_t>());
    std::vector<std::uint64_t> forms;
    for (unsigned i = 0; i < *format_count; ++i) {
      FS_TRY(content_type, reader.uleb128());
      FS_TRY(form, reader.uleb128());
      forms.push_back(*form);
    }
    FS_TRY(count, reader.uleb128());
    const std::uint64_t left = end > reader.offset() ? end - reader.offset() : 0;
    if (*count > 0 && (forms.empty() || *count > left / forms.size()))
      return fail(".debug_line: unit at offset ", hex(offset), " claims ", std::to_string(*count), " ", table,
                  " entries but only ", hex(left), " bytes remain");
    if (std::string_view(table) != "directory") break;
    for (std::uint64_t entry = 0; entry < *count; ++entry) {
      for (std::uint64_t form : forms) {
        FS_TRY(skipped, skip_entry_field(reader, form, is_64bit));
        if (!*skipped) return {};
      }
    }
  }
  return {};
}

}  // namespace fiberscope::binary
