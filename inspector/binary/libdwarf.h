// libdwarf, confined: the one place its status codes, error objects and handles are dealt with.
//
//   Dwarf_Half tag = 0;
//   FS_TRY(found, dwarf_call(debug, "reading a tag", dwarf_tag, die, &tag));  // true, false (no entry) or Error
//   FS_TRY(name, string_attribute(debug, die, DW_AT_name));                   // std::optional<std::string>
//   FS_TRY(child, first_child(debug, die, "reading DIE children"));          // a Die that owns the allocation
//
// DW_DLV_OK becomes true, DW_DLV_NO_ENTRY false and DW_DLV_ERROR our Error "what: libdwarf's message"; the
// Dwarf_Error libdwarf allocates per failure is freed here. Every handle libdwarf hands the caller to free is a
// move-only owner (Die, Attribute, LineContext, Session), and what it returns as allocations to free one by one
// (strings, blocks, file tables) is copied into our own types before it is freed.
#pragma once

#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace fiberscope::binary {

// The failure side of a libdwarf call: "what: libdwarf's message". Frees `error` (which may be null).
std::unexpected<Error> dwarf_failure(Dwarf_Debug debug, Dwarf_Error error, std::string_view what);

// Turns a libdwarf status into true (DW_DLV_OK), false (DW_DLV_NO_ENTRY) or an Error (DW_DLV_ERROR). Only for the
// few functions without a Dwarf_Error argument; the others go through dwarf_call.
inline Result<bool> dwarf_status(Dwarf_Debug debug, int status, Dwarf_Error error, std::string_view what) {
  if (status == DW_DLV_OK) return true;
  if (status == DW_DLV_NO_ENTRY) return false;
  return dwarf_failure(debug, error, what);
}

// Calls `fn(args..., &error)` and turns its status into true, false (no entry) or an Error that starts with `what`.
// `debug` may be null only before dwarf_init_b has produced one.
template <class Fn, class... Args>
Result<bool> dwarf_call(Dwarf_Debug debug, std::string_view what, Fn fn, Args... args) {
  Dwarf_Error error = nullptr;
  const int status = fn(args..., &error);
  return dwarf_status(debug, status, error, what);
}

// Calls `fn(args..., &error)` and returns its raw status, freeing any error: for a failure the caller answers
// itself (a fallback to another form, a "?" in a name).
template <class Fn, class... Args>
int dwarf_call_status(Dwarf_Debug debug, Fn fn, Args... args) {
  Dwarf_Error error = nullptr;
  const int status = fn(args..., &error);
  if (error) dwarf_dealloc_error(debug, error);
  return status;
}

// A DIE. dwarf_child / dwarf_siblingof_b / dwarf_offdie_b each return a new allocation that the caller owns.
class Die {
 public:
  Die() = default;
  explicit Die(Dwarf_Die die) : die_(die) {}
  Die(Die&& other) noexcept : die_(std::exchange(other.die_, nullptr)) {}
  Die& operator=(Die&& other) noexcept {
    if (this != &other) {
      reset();
      die_ = std::exchange(other.die_, nullptr);
    }
    return *this;
  }
  Die(const Die&) = delete;
  Die& operator=(const Die&) = delete;
  ~Die() { reset(); }

  Dwarf_Die get() const { return die_; }
  explicit operator bool() const { return die_ != nullptr; }

 private:
  void reset() {
    if (die_) dwarf_dealloc_die(die_);
    die_ = nullptr;
  }
  Dwarf_Die die_ = nullptr;
};

// An attribute from dwarf_attr: owned by the caller, freed with dwarf_dealloc_attribute. Strings and blocks read
// from it point into libdwarf's section copies and stay valid until dwarf_finish, so they need no freeing.
class Attribute {
 public:
  explicit Attribute(Dwarf_Attribute attribute) : attribute_(attribute) {}
  Attribute(Attribute&& other) noexcept : attribute_(std::exchange(other.attribute_, nullptr)) {}
  Attribute(const Attribute&) = delete;
  Attribute& operator=(const Attribute&) = delete;
  Attribute& operator=(Attribute&&) = delete;
  ~Attribute() {
    if (attribute_) dwarf_dealloc_attribute(attribute_);
  }
  Dwarf_Attribute get() const { return attribute_; }

 private:
  Dwarf_Attribute attribute_ = nullptr;
};

// A line table from dwarf_srclines_b: the context owns the Dwarf_Line array, and dwarf_srclines_dealloc_b frees
// both.
class LineContext {
 public:
  explicit LineContext(Dwarf_Line_Context context) : context_(context) {}
  LineContext(const LineContext&) = delete;
  LineContext& operator=(const LineContext&) = delete;
  ~LineContext() {
    if (context_) dwarf_srclines_dealloc_b(context_);
  }
  Dwarf_Line_Context get() const { return context_; }

 private:
  Dwarf_Line_Context context_ = nullptr;
};

// The session: the file descriptor libdwarf reads and the Dwarf_Debug. dwarf_finish frees every allocation
// libdwarf still holds, so every Die, Attribute and LineContext must be gone before the session.
class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Opens `path` for libdwarf; false if the file has no DWARF.
  Result<bool> open(const std::string& path);
  Dwarf_Debug debug() const { return debug_; }

 private:
  Dwarf_Debug debug_ = nullptr;
  int fd_ = -1;
};

// Attribute readers. Each returns an absent attribute as nullopt and a libdwarf failure as an Error.
Result<std::optional<Attribute>> attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name);
// A constant (DW_FORM_data*, udata, implicit_const, flags) or a section offset.
Result<std::optional<std::uint64_t>> unsigned_attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name);
// The .debug_info offset a reference attribute (DW_AT_type, DW_AT_abstract_origin, ...) points to.
Result<std::optional<std::uint64_t>> reference_attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name);
Result<std::optional<std::string>> string_attribute(Dwarf_Debug debug, Dwarf_Die die, Dwarf_Half name);
// The bytes of an exprloc or block attribute of form `form`.
Result<std::vector<std::byte>> block_attribute(Dwarf_Debug debug, Dwarf_Attribute attribute, Dwarf_Half form);
Result<Dwarf_Half> form_of(Dwarf_Debug debug, Dwarf_Attribute attribute);

// DIEs.
Result<Die> die_at(Dwarf_Debug debug, std::uint64_t offset);  // an Error if there is none
Result<std::uint64_t> offset_of(Dwarf_Debug debug, Dwarf_Die die);
Result<Dwarf_Half> tag_of(Dwarf_Debug debug, Dwarf_Die die);
// The DWARF version of the unit holding `die`.
Result<Dwarf_Half> unit_version(Dwarf_Debug debug, Dwarf_Die die);
// The first child, or the next sibling, of `die`; an empty Die if there is none. `what` names the walk in errors.
Result<Die> first_child(Dwarf_Debug debug, Dwarf_Die die, std::string_view what);
Result<Die> next_sibling(Dwarf_Debug debug, Dwarf_Die die, std::string_view what);

// Line tables.
// The unit's file table (dwarf_srcfiles, for DW_AT_call_file); empty if the unit has none.
Result<std::vector<std::string>> source_files(Dwarf_Debug debug, Dwarf_Die cu_die);
// The path of a line row's file, "?" if libdwarf cannot name it.
std::string line_file(Dwarf_Debug debug, Dwarf_Line line);

}  // namespace fiberscope::binary
