#include "binary/dwarf_types.h"

#include <unordered_map>
#include <utility>

#include "base/hex.h"
#include "binary/dwarf_limits.h"
#include "binary/libdwarf.h"

namespace fiberscope::binary {
namespace {

// Caps on hostile input: Go binaries of hundreds of megabytes stay far below them (kMaxCompileUnits: dwarf_limits.h).
constexpr std::size_t kMaxTopLevelDies = 20'000'000;
constexpr std::size_t kMaxMembers = 100'000;
constexpr unsigned kMaxTypeHops = 16;      // typedef chains
constexpr unsigned kMaxNestingDepth = 16;  // structures inside structures along one member path

// An attribute that cannot be read is treated as absent: a type with a broken member attribute then fails where it
// is used ("runtime.g has no member goid"), naming what is missing, rather than failing every other type.
template <class T>
std::optional<T> or_absent(Result<std::optional<T>> result) {
  return result ? std::move(*result) : std::nullopt;
}

struct RawMember {
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t type = 0;
};

// What the index keeps of one top-level DIE.
struct TypeDie {
  Dwarf_Half tag = 0;
  std::string name;
  std::uint64_t size_bytes = 0;
  std::uint64_t type = 0;  // DW_AT_type, 0 if none
  std::vector<RawMember> members;
};

}  // namespace

struct DwarfTypes::Impl {
  Session session;
  std::unordered_map<std::uint64_t, TypeDie> dies;     // by DIE offset
  std::unordered_map<std::string, std::uint64_t> types;  // structures and typedefs by name
  std::unordered_map<std::string, std::int64_t> constants;
  std::string producer;

  Dwarf_Debug debug() const { return session.debug(); }

  Result<void> index_members(Dwarf_Die die, TypeDie& entry, std::size_t& budget) {
    FS_TRY(child, first_child(debug(), die, "DWARF: members of " + entry.name));
    while (*child) {
      if (entry.members.size() >= kMaxMembers || budget == 0)
        return fail("DWARF: structure ", entry.name, " has more members than the cap");
      --budget;
      auto child_tag = tag_of(debug(), child->get());
      if (child_tag && *child_tag == DW_TAG_member) {
        RawMember member;
        member.name = or_absent(string_attribute(debug(), child->get(), DW_AT_name)).value_or("");
        member.offset = or_absent(unsigned_attribute(debug(), child->get(), DW_AT_data_member_location)).value_or(0);
        member.type = or_absent(reference_attribute(debug(), child->get(), DW_AT_type)).value_or(0);
        entry.members.push_back(std::move(member));
      }
      FS_TRY(next, next_sibling(debug(), child->get(), "DWARF: members of " + entry.name));
      *child = std::move(*next);
    }
    return {};
  }

  Result<void> index_die(Dwarf_Die die, std::size_t& budget) {
    FS_TRY(tag, tag_of(debug(), die));
    const bool wanted = *tag == DW_TAG_structure_type || *tag == DW_TAG_typedef || *tag == DW_TAG_pointer_type ||
                        *tag == DW_TAG_base_type || *tag == DW_TAG_constant;
    if (!wanted) return {};
    FS_TRY(offset, offset_of(debug(), die));
    TypeDie entry;
    entry.tag = *tag;
    entry.name = or_absent(string_attribute(debug(), die, DW_AT_name)).value_or("");
    entry.size_bytes =
        or_absent(unsigned_attribute(debug(), die, DW_AT_byte_size)).value_or(*tag == DW_TAG_pointer_type ? 8 : 0);
    entry.type = or_absent(reference_attribute(debug(), die, DW_AT_type)).value_or(0);
    if (*tag == DW_TAG_constant) {
      if (auto value = or_absent(unsigned_attribute(debug(), die, DW_AT_const_value)); value && !entry.name.empty())
        constants.emplace(entry.name, static_cast<std::int64_t>(*value));
      return {};
    }
    if (*tag == DW_TAG_structure_type) FS_TRY_DISCARD(index_members(die, entry, budget));
    if (!entry.name.empty() && (*tag == DW_TAG_structure_type || *tag == DW_TAG_typedef)) {
      // A structure wins over a typedef of the same name (Go emits both for runtime.g).
      auto [it, added] = types.emplace(entry.name, *offset);
      if (!added && *tag == DW_TAG_structure_type) it->second = *offset;
    }
    dies.emplace(*offset, std::move(entry));
    return {};
  }

  Result<void> index_units() {
    std::size_t budget = kMaxTopLevelDies;
    for (std::size_t units = 0;; ++units) {
      if (units >= kMaxCompileUnits)
        return fail("DWARF: more than ", std::to_string(kMaxCompileUnits), " compile units");
      Dwarf_Unsigned next_offset = 0;
      Dwarf_Half unit_type = 0;
      FS_TRY(has_unit, dwarf_call(debug(), "DWARF: compile unit header", dwarf_next_cu_header_d, debug(), true,
                                  nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  &next_offset, &unit_type));
      if (!*has_unit) return {};
      // The unit's DIE is the sibling of "no DIE" in the unit dwarf_next_cu_header_d moved to.
      FS_TRY(unit, next_sibling(debug(), nullptr, "DWARF: compile unit DIE"));
      if (!*unit) continue;
      if (producer.empty()) producer = or_absent(string_attribute(debug(), unit->get(), DW_AT_producer)).value_or("");
      FS_TRY(child, first_child(debug(), unit->get(), "DWARF: compile unit children"));
      while (*child) {
        if (budget == 0) return fail("DWARF: more than ", std::to_string(kMaxTopLevelDies), " top-level DIEs");
        --budget;
        FS_TRY_DISCARD(index_die(child->get(), budget));
        FS_TRY(next, next_sibling(debug(), child->get(), "DWARF: next DIE"));
        *child = std::move(*next);
      }
    }
  }

  // The DIE `offset` names, through typedefs; null if unknown.
  const TypeDie* resolve(std::uint64_t offset) const {
    for (unsigned hops = 0; hops < kMaxTypeHops; ++hops) {
      auto it = dies.find(offset);
      if (it == dies.end()) return nullptr;
      if (it->second.tag != DW_TAG_typedef) return &it->second;
      offset = it->second.type;
    }
    return nullptr;
  }
};

DwarfTypes::DwarfTypes() : impl_(std::make_unique<Impl>()) {}
DwarfTypes::~DwarfTypes() = default;

Result<std::unique_ptr<DwarfTypes>> DwarfTypes::open(const ElfImage& image) {
  if (!image.has_dwarf()) return fail(image.path(), ": no DWARF debug information (.debug_info)");
  std::unique_ptr<DwarfTypes> types(new DwarfTypes());
  FS_TRY(has_dwarf, types->impl_->session.open(image.path()));
  if (!*has_dwarf) return fail(image.path(), ": no DWARF debug information");
  if (auto indexed = types->impl_->index_units(); !indexed)
    return std::unexpected(indexed.error().with_context(image.path()));
  return types;
}

Result<StructLayout> DwarfTypes::structure_at(std::uint64_t die_offset) const {
  const TypeDie* die = impl_->resolve(die_offset);
  if (!die || die->tag != DW_TAG_structure_type) return fail("DWARF type at ", hex(die_offset), " is not a structure");
  StructLayout layout;
  layout.name = die->name;
  layout.size_bytes = die->size_bytes;
  layout.types_ = this;
  for (const RawMember& raw : die->members) {
    TypeMember member;
    member.name = raw.name;
    member.offset = raw.offset;
    if (auto it = impl_->dies.find(raw.type); it != impl_->dies.end()) member.type_name = it->second.name;
    if (const TypeDie* type = impl_->resolve(raw.type)) {
      member.size_bytes = type->size_bytes;
      member.is_pointer = type->tag == DW_TAG_pointer_type;
    }
    layout.members.push_back(std::move(member));
    layout.member_types_.push_back(raw.type);
  }
  return layout;
}

Result<StructLayout> DwarfTypes::structure(std::string_view name) const {
  auto it = impl_->types.find(std::string(name));
  if (it == impl_->types.end()) return fail("DWARF has no type ", name);
  auto layout = structure_at(it->second);
  if (!layout) return fail("DWARF type ", name, " is not a structure");
  return layout;
}

std::optional<std::int64_t> DwarfTypes::constant(std::string_view name) const {
  auto it = impl_->constants.find(std::string(name));
  if (it == impl_->constants.end()) return std::nullopt;
  return it->second;
}

const std::string& DwarfTypes::producer() const { return impl_->producer; }

Result<TypeMember> StructLayout::member(std::string_view path) const {
  const StructLayout* current = this;
  StructLayout nested;
  std::uint64_t base = 0;
  for (unsigned depth = 0;; ++depth) {
    if (depth >= kMaxNestingDepth) return fail(name, ": member path ", path, " is nested too deep");
    const std::size_t dot = path.find('.');
    const std::string_view head = path.substr(0, dot);
    std::size_t index = current->members.size();
    for (std::size_t i = 0; i < current->members.size(); ++i)
      if (current->members[i].name == head) index = i;
    if (index == current->members.size()) return fail(current->name, " has no member ", head);
    TypeMember found = current->members[index];
    found.offset += base;
    if (dot == std::string_view::npos) return found;
    if (!types_) return fail(current->name, ".", head, ": no type information");
    auto inner = types_->structure_at(current->member_types_[index]);
    if (!inner) return fail(current->name, ".", head, " (", found.type_name, ") is not a structure");
    nested = std::move(*inner);
    current = &nested;
    base = found.offset;
    path = path.substr(dot + 1);
  }
}

}  // namespace fiberscope::binary
