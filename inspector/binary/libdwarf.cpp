#include "binary/libdwarf.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/hex.h"
#include "target/regular_file.h"

namespace fiberscope::binary {

std::unexpected<Error> dwarf_failure(Dwarf_Debug debug, Dwarf_Error error, std::string_view what) {
  std::string message = error ? dwarf_errmsg(error) : "unknown libdwarf error";
  // The Dwarf_Error is allocated by libdwarf per failure: unfreed, it would pile up until dwarf_finish.
  if (error) dwarf_dealloc_error(debug, error);
  return fail(what, ": ", message);
}

Session::~Session() {
  if (debug_) dwarf_finish(debug_, nullptr);
  if (fd_ >= 0) ::close(fd_);
}

Result<bool> Session::open(const std::string& path) {
  FS_TRY(opened, with_context(target::open_regular_file(path), "opening for DWARF"));
  fd_ = opened->release();
  // No error handler: every failure comes back as DW_DLV_ERROR (a handler would abort the process).
  return dwarf_call(nullptr, path + ": libdwarf cannot read the DWARF", dwarf_init_b, fd_, DW_DLC_READ,
                    DW_GROUPNUMBER_ANY, nullptr, nullptr, &debug_);
}

Result<std::optional<Attribute>> attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name) {
  Dwarf_Attribute raw = nullptr;
  FS_TRY(found, dwarf_call(debug, "reading an attribute", dwarf_attr, die, name, &raw));
  if (!*found) return std::optional<Attribute>();
  return std::optional<Attribute>(Attribute(raw));
}

Result<Dwarf_Half> form_of(Dwarf_Debug debug, Dwarf_Attribute attribute) {
  Dwarf_Half form = 0;
  FS_TRY_DISCARD(dwarf_call(debug, "reading a form", dwarf_whatform, attribute, &form));
  return form;
}

Result<std::optional<std::uint64_t>> unsigned_attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name) {
  FS_TRY(attr, attribute(debug, die, name));
  if (!*attr) return std::optional<std::uint64_t>();
  FS_TRY(form, form_of(debug, (*attr)->get()));
  if (*form == DW_FORM_sec_offset) {
    Dwarf_Off offset = 0;
    FS_TRY_DISCARD(dwarf_call(debug, "reading a section offset", dwarf_global_formref, (*attr)->get(), &offset));
    return std::optional<std::uint64_t>(offset);
  }
  Dwarf_Unsigned value = 0;
  if (dwarf_call_status(debug, dwarf_formudata, (*attr)->get(), &value) == DW_DLV_ERROR) {
    // libdwarf 20210528 refuses DW_FORM_implicit_const in dwarf_formudata; dwarf_formsdata reads it.
    Dwarf_Signed signed_value = 0;
    FS_TRY_DISCARD(dwarf_call(debug, "reading a constant attribute", dwarf_formsdata, (*attr)->get(), &signed_value));
    value = static_cast<Dwarf_Unsigned>(signed_value);
  }
  return std::optional<std::uint64_t>(value);
}

Result<std::optional<std::uint64_t>> reference_attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name) {
  FS_TRY(attr, attribute(debug, die, name));
  if (!*attr) return std::optional<std::uint64_t>();
  Dwarf_Off offset = 0;
  FS_TRY_DISCARD(dwarf_call(debug, "reading a reference", dwarf_global_formref, (*attr)->get(), &offset));
  return std::optional<std::uint64_t>(offset);
}

Result<std::optional<std::string>> string_attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name) {
  FS_TRY(attr, attribute(debug, die, name));
  if (!*attr) return std::optional<std::string>();
  char* text = nullptr;
  FS_TRY(found, dwarf_call(debug, "reading a string", dwarf_formstring, (*attr)->get(), &text));
  if (!*found || !text) return std::optional<std::string>();
  return std::optional<std::string>(text);
}

Result<std::vector<std::byte>> block_attribute(Dwarf_Debug debug, Dwarf_Attribute attribute, Dwarf_Half form) {
  if (form == DW_FORM_exprloc) {
    Dwarf_Unsigned length = 0;
    Dwarf_Ptr bytes = nullptr;
    FS_TRY_DISCARD(dwarf_call(debug, "reading an expression", dwarf_formexprloc, attribute, &length, &bytes));
    const auto* begin = static_cast<const std::byte*>(bytes);
    return std::vector<std::byte>(begin, begin + length);
  }
  Dwarf_Block* block = nullptr;
  FS_TRY_DISCARD(dwarf_call(debug, "reading a block", dwarf_formblock, attribute, &block));
  if (!block) return std::vector<std::byte>();
  // The Dwarf_Block descriptor is allocated per call; its data points into the section.
  const auto* begin = static_cast<const std::byte*>(block->bl_data);
  std::vector<std::byte> copy(begin, begin + block->bl_len);
  dwarf_dealloc(debug, block, DW_DLA_BLOCK);
  return copy;
}

Result<Die> die_at(Dwarf_Debug debug, std::uint64_t offset) {
  Dwarf_Die raw = nullptr;
  FS_TRY(found, dwarf_call(debug, "reading the DIE at .debug_info offset " + hex(offset), dwarf_offdie_b, debug,
                           offset, true, &raw));
  if (!*found) return fail("no DIE at .debug_info offset ", hex(offset));
  return Die(raw);
}

Result<std::uint64_t> offset_of(Dwarf_Debug debug, Dwarf_Die die) {
  Dwarf_Off offset = 0;
  FS_TRY_DISCARD(dwarf_call(debug, "reading a DIE offset", dwarf_dieoffset, die, &offset));
  return std::uint64_t{offset};
}

Result<Dwarf_Half> tag_of(Dwarf_Debug debug, Dwarf_Die die) {
  Dwarf_Half tag = 0;
  FS_TRY_DISCARD(dwarf_call(debug, "reading a tag", dwarf_tag, die, &tag));
  return tag;
}

Result<Dwarf_Half> unit_version(Dwarf_Debug debug, Dwarf_Die die) {
  Dwarf_Half version = 0, offset_size = 0;
  // The one libdwarf function here without a Dwarf_Error argument.
  FS_TRY_DISCARD(dwarf_status(debug, dwarf_get_version_of_die(die, &version, &offset_size), nullptr,
                              "reading a CU's version"));
  return version;
}

Result<Die> first_child(Dwarf_Debug debug, Dwarf_Die die, std::string_view what) {
  Dwarf_Die raw = nullptr;
  FS_TRY(found, dwarf_call(debug, what, dwarf_child, die, &raw));
  return Die(*found ? raw : nullptr);
}

Result<Die> next_sibling(Dwarf_Debug debug, Dwarf_Die die, std::string_view what) {
  Dwarf_Die raw = nullptr;
  FS_TRY(found, dwarf_call(debug, what, dwarf_siblingof_b, debug, die, true, &raw));
  return Die(*found ? raw : nullptr);
}

Result<std::vector<std::string>> source_files(Dwarf_Debug debug, Dwarf_Die cu_die) {
  std::vector<std::string> names;
  char** files = nullptr;
  Dwarf_Signed count = 0;
  FS_TRY(found, dwarf_call(debug, "reading the source file table", dwarf_srcfiles, cu_die, &files, &count));
  if (!*found) return names;
  // dwarf_srcfiles allocates each string and the array: copied, then freed.
  for (Dwarf_Signed i = 0; i < count; ++i) {
    names.emplace_back(files[i] ? files[i] : "?");
    dwarf_dealloc(debug, files[i], DW_DLA_STRING);
  }
  dwarf_dealloc(debug, files, DW_DLA_LIST);
  return names;
}

std::string line_file(Dwarf_Debug debug, Dwarf_Line line) {
  char* name = nullptr;
  if (dwarf_call_status(debug, dwarf_linesrc, line, &name) != DW_DLV_OK || !name) return "?";
  // dwarf_linesrc allocates the joined path.
  std::string text = name;
  dwarf_dealloc(debug, name, DW_DLA_STRING);
  return text;
}

}  // namespace fiberscope::binary
