// DwarfTypes: the layouts of named types and the values of named constants in one file's DWARF, for readers that
// decode a runtime's own structures from memory (fibers/go/ reads Go's runtime.g and runtime.m this way).
//
//   auto types = DwarfTypes::open(image);                     // one walk over every unit's top-level DIEs
//   auto g = types.value()->structure("runtime.g");            // size and members, typedefs followed
//   auto sp = g->member("sched.sp");                           // nested members by path: offset 56 + 0
//   auto running = types.value()->constant("runtime._Grunning");
//
// Only top-level DIEs (children of a compile unit) are indexed, which is where Go puts its types and constants.
// Separate from DwarfIndex (which answers "what is at this pc") on purpose: this walk never looks at code.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "binary/elf_image.h"

namespace fiberscope::binary {

struct TypeMember {
  std::string name;
  std::uint64_t offset = 0;        // from the start of the outermost structure asked for
  std::uint64_t size_bytes = 0;    // of the member's type, typedefs followed; 0 if unknown
  std::string type_name;           // as DWARF names it ("uintptr", "*runtime.m", "runtime.waitReason")
  bool is_pointer = false;
};

class DwarfTypes;

struct StructLayout {
  std::string name;
  std::uint64_t size_bytes = 0;
  std::vector<TypeMember> members;  // direct members, in DWARF order

  // The member at `path` ("goid", "sched.sp"), descending through structure-typed members; fails naming the
  // missing part.
  Result<TypeMember> member(std::string_view path) const;

 private:
  friend class DwarfTypes;
  const DwarfTypes* types_ = nullptr;
  std::vector<std::uint64_t> member_types_;  // DIE offset of each member's type
};

class DwarfTypes {
 public:
  // Indexes the named types, typedefs and constants of `image` (which must contain .debug_info).
  static Result<std::unique_ptr<DwarfTypes>> open(const ElfImage& image);
  ~DwarfTypes();
  DwarfTypes(const DwarfTypes&) = delete;
  DwarfTypes& operator=(const DwarfTypes&) = delete;

  // The structure named `name` (or a typedef of one); fails if there is none.
  Result<StructLayout> structure(std::string_view name) const;
  // The DW_AT_const_value of the DW_TAG_constant named `name`.
  std::optional<std::int64_t> constant(std::string_view name) const;
  // The DW_AT_producer of the first compile unit that has one ("Go cmd/compile go1.19.8; regabi").
  const std::string& producer() const;

 private:
  friend struct StructLayout;
  DwarfTypes();
  Result<StructLayout> structure_at(std::uint64_t die_offset) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fiberscope::binary
