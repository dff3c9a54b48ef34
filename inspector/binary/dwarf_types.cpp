#include "binary/dwarf_types.h"

#include <fcntl.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <unistd.h>

#include <cstring>
#include <unordered_map>
#include <utility>

#include "base/hex.h"

namespace fiberscope::binary {
namespace {

// Caps on hostile input: Go binaries of hundreds of megabytes stay far below them.
constexpr std::size_t kMaxCompileUnits = 1'000'000;
constexpr std::size_t kMaxTopLevelDies = 20'000'000;
constexpr std::size_t kMaxMembers = 100'000;
constexpr unsigned kMaxTypeHops = 16;      // typedef chains
constexpr unsigned kMaxNestingDepth = 16;  // structures inside structures along one member path

// Frees a libdwarf error (allocated per failure) and turns it into text.
std::string take_error(Dwarf_Debug debug, Dwarf_Error error) {
  std::string text = error ? dwarf_errmsg(error) : "unknown libdwarf error";
  if (error) dwarf_dealloc_error(debug, error);
  return text;
}

// Owns one DIE from dwarf_child / dwarf_siblingof_b.
class OwnedDie {
 public:
  OwnedDie() = default;
  explicit OwnedDie(Dwarf_Die die) : die_(die) {}
  OwnedDie(OwnedDie&& other) noexcept : die_(std::exchange(other.die_, nullptr)) {}
  OwnedDie& operator=(OwnedDie&& other) noexcept {
    if (this != &other) {
      if (die_) dwarf_dealloc_die(die_);
      die_ = std::exchange(other.die_, nullptr);
    }
    return *this;
  }
  OwnedDie(const OwnedDie&) = delete;
  OwnedDie& operator=(const OwnedDie&) = delete;
  ~OwnedDie() {
    if (die_) dwarf_dealloc_die(die_);
  }
  Dwarf_Die get() const { return die_; }

 private:
  Dwarf_Die die_ = nullptr;
};

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
  Dwarf_Debug debug = nullptr;
  std::unordered_map<std::uint64_t, TypeDie> dies;     // by DIE offset
  std::unordered_map<std::string, std::uint64_t> types;  // structures and typedefs by name
  std::unordered_map<std::string, std::int64_t> constants;
  std::string producer;

  std::optional<std::string> name_of(Dwarf_Die die) {
    char* name = nullptr;
    Dwarf_Error error = nullptr;
    const int status = dwarf_diename(die, &name, &error);
    if (status == DW_DLV_ERROR) take_error(debug, error);
    if (status != DW_DLV_OK || !name) return std::nullopt;
    return std::string(name);
  }

  std::optional<std::uint64_t> unsigned_attribute(Dwarf_Die die, Dwarf_Half number) {
    Dwarf_Attribute attribute = nullptr;
    Dwarf_Error error = nullptr;
    const int status = dwarf_attr(die, number, &attribute, &error);
    if (status == DW_DLV_ERROR) take_error(debug, error);
    if (status != DW_DLV_OK) return std::nullopt;
    std::optional<std::uint64_t> value;
    Dwarf_Unsigned unsigned_value = 0;
    Dwarf_Signed signed_value = 0;
    Dwarf_Off offset = 0;
    if (number == DW_AT_type) {
      if (dwarf_global_formref(attribute, &offset, &error) == DW_DLV_OK) value = offset;
    } else if (dwarf_formudata(attribute, &unsigned_value, &error) == DW_DLV_OK) {
      value = unsigned_value;
    } else if (dwarf_formsdata(attribute, &signed_value, &error) == DW_DLV_OK) {
      value = static_cast<std::uint64_t>(signed_value);
    }
    if (!value && error) take_error(debug, error);
    dwarf_dealloc_attribute(attribute);
    return value;
  }

  std::optional<std::string> string_attribute(Dwarf_Die die, Dwarf_Half number) {
    Dwarf_Attribute attribute = nullptr;
    Dwarf_Error error = nullptr;
    if (dwarf_attr(die, number, &attribute, &error) != DW_DLV_OK) {
      if (error) take_error(debug, error);
      return std::nullopt;
    }
    char* text = nullptr;
    std::optional<std::string> value;
    if (dwarf_formstring(attribute, &text, &error) == DW_DLV_OK && text) value = text;
    else if (error) take_error(debug, error);
    dwarf_dealloc_attribute(attribute);
    return value;
  }

  Result<void> index_die(Dwarf_Die die, std::size_t& budget) {
    Dwarf_Half tag = 0;
    Dwarf_Error error = nullptr;
    if (dwarf_tag(die, &tag, &error) != DW_DLV_OK)
      return fail("DWARF: a DIE without a tag: ", take_error(debug, error));
    const bool wanted = tag == DW_TAG_structure_type || tag == DW_TAG_typedef || tag == DW_TAG_pointer_type ||
                        tag == DW_TAG_base_type || tag == DW_TAG_constant;
    if (!wanted) return {};
    Dwarf_Off offset = 0;
    if (dwarf_dieoffset(die, &offset, &error) != DW_DLV_OK)
      return fail("DWARF: a DIE without an offset: ", take_error(debug, error));
    TypeDie entry;
    entry.tag = tag;
    entry.name = name_of(die).value_or("");
    entry.size_bytes = unsigned_attribute(die, DW_AT_byte_size).value_or(tag == DW_TAG_pointer_type ? 8 : 0);
    entry.type = unsigned_attribute(die, DW_AT_type).value_or(0);
    if (tag == DW_TAG_constant) {
      if (auto value = unsigned_attribute(die, DW_AT_const_value); value && !entry.name.empty())
        constants.emplace(entry.name, static_cast<std::int64_t>(*value));
      return {};
    }
    if (tag == DW_TAG_structure_type) {
      Dwarf_Die raw_child = nullptr;
      int status = dwarf_child(die, &raw_child, &error);
      if (status == DW_DLV_ERROR) return fail("DWARF: members of ", entry.name, ": ", take_error(debug, error));
      OwnedDie child(status == DW_DLV_OK ? raw_child : nullptr);
      while (child.get()) {
        if (entry.members.size() >= kMaxMembers || budget == 0)
          return fail("DWARF: structure ", entry.name, " has more members than the cap");
        --budget;
        Dwarf_Half child_tag = 0;
        if (dwarf_tag(child.get(), &child_tag, &error) == DW_DLV_OK && child_tag == DW_TAG_member) {
          RawMember member;
          member.name = name_of(child.get()).value_or("");
          member.offset = unsigned_attribute(child.get(), DW_AT_data_member_location).value_or(0);
          member.type = unsigned_attribute(child.get(), DW_AT_type).value_or(0);
          entry.members.push_back(std::move(member));
        } else if (error) {
          take_error(debug, error);
          error = nullptr;
        }
        Dwarf_Die raw_next = nullptr;
        status = dwarf_siblingof_b(debug, child.get(), true, &raw_next, &error);
        if (status == DW_DLV_ERROR) return fail("DWARF: members of ", entry.name, ": ", take_error(debug, error));
        child = OwnedDie(status == DW_DLV_OK ? raw_next : nullptr);
      }
    }
    if (!entry.name.empty() && (tag == DW_TAG_structure_type || tag == DW_TAG_typedef)) {
      // A structure wins over a typedef of the same name (Go emits both for runtime.g).
      auto [it, added] = types.emplace(entry.name, offset);
      if (!added && tag == DW_TAG_structure_type) it->second = offset;
    }
    dies.emplace(offset, std::move(entry));
    return {};
  }

  Result<void> index_units() {
    std::size_t budget = kMaxTopLevelDies;
    for (std::size_t units = 0;; ++units) {
      if (units >= kMaxCompileUnits)
        return fail("DWARF: more than ", std::to_string(kMaxCompileUnits), " compile units");
      Dwarf_Unsigned next_offset = 0;
      Dwarf_Half unit_type = 0;
      Dwarf_Error error = nullptr;
      int status = dwarf_next_cu_header_d(debug, true, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, &next_offset, &unit_type, &error);
      if (status == DW_DLV_NO_ENTRY) return {};
      if (status == DW_DLV_ERROR) return fail("DWARF: compile unit header: ", take_error(debug, error));
      Dwarf_Die raw_unit = nullptr;
      status = dwarf_siblingof_b(debug, nullptr, true, &raw_unit, &error);
      if (status == DW_DLV_ERROR) return fail("DWARF: compile unit DIE: ", take_error(debug, error));
      if (status != DW_DLV_OK) continue;
      OwnedDie unit(raw_unit);
      if (producer.empty()) producer = string_attribute(unit.get(), DW_AT_producer).value_or("");
      Dwarf_Die raw_child = nullptr;
      status = dwarf_child(unit.get(), &raw_child, &error);
      if (status == DW_DLV_ERROR) return fail("DWARF: compile unit children: ", take_error(debug, error));
      OwnedDie child(status == DW_DLV_OK ? raw_child : nullptr);
      while (child.get()) {
        if (budget == 0) return fail("DWARF: more than ", std::to_string(kMaxTopLevelDies), " top-level DIEs");
        --budget;
        FS_TRY_DISCARD(index_die(child.get(), budget));
        Dwarf_Die raw_next = nullptr;
        status = dwarf_siblingof_b(debug, child.get(), true, &raw_next, &error);
        if (status == DW_DLV_ERROR) return fail("DWARF: next DIE: ", take_error(debug, error));
        child = OwnedDie(status == DW_DLV_OK ? raw_next : nullptr);
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

  int fd = -1;
  ~Impl() {
    if (debug) dwarf_finish(debug, nullptr);
    if (fd >= 0) ::close(fd);
  }
};

DwarfTypes::DwarfTypes() : impl_(std::make_unique<Impl>()) {}
DwarfTypes::~DwarfTypes() = default;

Result<std::unique_ptr<DwarfTypes>> DwarfTypes::open(const ElfImage& image) {
  if (!image.has_dwarf()) return fail(image.path(), ": no DWARF debug information (.debug_info)");
  std::unique_ptr<DwarfTypes> types(new DwarfTypes());
  Impl& impl = *types->impl_;
  impl.fd = ::open(image.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (impl.fd < 0) return fail(image.path(), ": cannot open for DWARF: ", std::strerror(errno));
  Dwarf_Error error = nullptr;
  // No error handler: every failure comes back as DW_DLV_ERROR (a handler would abort the process).
  const int status = dwarf_init_b(impl.fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, nullptr, nullptr, &impl.debug, &error);
  if (status == DW_DLV_ERROR)
    return fail(image.path(), ": libdwarf cannot read the DWARF: ", take_error(nullptr, error));
  if (status != DW_DLV_OK) return fail(image.path(), ": no DWARF debug information");
  if (auto indexed = impl.index_units(); !indexed)
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
