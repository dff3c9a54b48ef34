#include "binary/dwarf_index.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <unordered_map>
#include <utility>

#include "base/hex.h"
#include "binary/dwarf_aranges.h"
#include "binary/dwarf_limits.h"
#include "binary/dwarf_lists.h"
#include "binary/file_address_range.h"
#include "binary/libdwarf.h"
#include "binary/libdwarf_guards.h"
#include "binary/line_program_files.h"

namespace fiberscope::binary {
namespace {

// DW_AT_location or DW_AT_frame_base as parsed: a single expression or a list.
struct LocationAttribute {
  bool present = false;
  bool is_list = false;
  std::vector<std::byte> expression;
  std::vector<LocationListEntry> list;

  std::vector<std::byte> at(std::uint64_t pc) const {
    if (!present) return {};
    if (!is_list) return expression;
    for (const auto& entry : list)
      if (entry.range.contains(pc)) return entry.expression;
    return {};
  }
};

struct VariableInfo {
  std::string name;
  std::string type_name;
  std::uint64_t size_bytes = 0;
  bool is_parameter = false;
  bool is_scalar = false;
  bool is_pointer = false;
  LocationAttribute location;
};

struct Scope {
  enum class Kind { function, inlined, block } kind = Kind::function;
  std::vector<FileAddressRange> ranges;
  std::uint64_t entry_pc = 0;
  std::string name;          // DW_AT_name (through origins)
  std::string linkage_name;  // through origins
  std::uint64_t name_die = 0;  // the DIE that gave `name`: its parents qualify a name without a linkage name
  std::string call_file;     // inlined: where it was called from
  unsigned call_line = 0;
  LocationAttribute frame_base;  // functions only
  std::vector<VariableInfo> variables;
  std::vector<Scope> children;

  bool contains(std::uint64_t pc) const {
    return std::any_of(ranges.begin(), ranges.end(), [&](const FileAddressRange& r) { return r.contains(pc); });
  }
};

struct LineRow {
  std::uint64_t address = 0;
  unsigned line = 0;
  std::uint32_t file = 0;  // index into CompileUnit::line_files
  bool end_sequence = false;
};

struct CallSiteInfo {
  std::vector<DwarfCallSiteParameter> parameters;
  std::size_t function_index = 0;  // into CompileUnit::functions, for the caller's frame base
  std::uint64_t origin_offset = 0; // DW_AT_call_origin's DIE (0: none), named only when asked for (call_site)
  std::vector<std::byte> target;   // DW_AT_call_target of an indirect call
};

struct CompileUnit {
  Dwarf_Off die_offset = 0;
  bool attributes_read = false;    // version/base/addr_base come from the CU DIE, read on first use
  unsigned version = 0;
  std::uint64_t base_address = 0;  // DW_AT_low_pc of the CU: base for location and range lists
  std::uint64_t addr_base = 0;     // DW_AT_addr_base (DWARF 5 .debug_addr)
  bool plain_c = false;            // DW_AT_language is C: no lambdas, no names to qualify
  std::vector<FileAddressRange> ranges;
  bool parsed = false;
  std::string parse_error;
  std::vector<Scope> functions;
  std::vector<std::pair<FileAddressRange, std::size_t>> function_ranges;  // sorted by low
  std::vector<std::string> source_files;  // DW_AT_call_file / DW_AT_decl_file table (dwarf_srcfiles)
  std::vector<LineRow> rows;              // sorted by address
  std::vector<std::string> line_files;
  std::unordered_map<std::uint64_t, CallSiteInfo> call_sites;  // by return pc
  // (DIE, its parent) for every namespace, class and function DIE the walk met, sorted: the scopes that qualify a
  // function whose DWARF has a name but no linkage name (members of some class templates, lambdas' operator()).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> parents;

  ListUnit list_unit() const { return {version, base_address, addr_base}; }
};

}  // namespace

std::string demangle(const std::string& mangled) {
  if (mangled.size() < 2 || mangled[0] != '_' || mangled[1] != 'Z') return mangled;
  int status = 0;
  // __cxa_demangle returns a malloc'ed buffer that we own.
  char* text = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status != 0 || !text) return mangled;
  std::string result(text);
  std::free(text);
  return result;
}

struct DwarfIndex::Impl {
  const ElfImage* image = nullptr;
  Session session;
  std::vector<CompileUnit> units;
  std::vector<std::pair<FileAddressRange, std::size_t>> unit_ranges;  // sorted by low
  std::size_t parsed_count = 0;
  DwarfLists lists;
  std::span<const std::byte> debug_aranges, debug_info, debug_line;

  Dwarf_Debug debug() const { return session.debug(); }
  std::string where(std::string_view what) const { return image->path() + ": " + std::string(what); }

  Result<void> index_units();
  Result<void> index_units_from_headers();
  Result<void> read_unit_attributes(CompileUnit& unit, Dwarf_Die cu_die);
  CompileUnit* unit_for(std::uint64_t pc);
  Result<void> parse_unit(CompileUnit& unit);

  Result<std::vector<FileAddressRange>> pc_ranges(Dwarf_Die die, const CompileUnit& unit);
  Result<LocationAttribute> location_attribute(Dwarf_Die die, Dwarf_Half name, const CompileUnit& unit);
  Result<void> names_through_origins(Dwarf_Die die, std::string& name, std::string& linkage_name,
                                     std::uint64_t* name_die = nullptr);
  // What frames print for a function: its demangled linkage name, else its name qualified by the namespaces,
  // classes and functions around the DIE that gave it ("ns::Class<T>::member", "ns::f(int)::{lambda}::operator()").
  std::string display_name(const std::string& linkage_name, const std::string& name, std::uint64_t name_die);
  std::string scope_prefix(std::uint64_t die, unsigned depth);  // "ns::Class::" for the scope `die`, cached
  std::unordered_map<std::uint64_t, std::string> scope_prefixes;
  std::optional<std::uint64_t> parent_of(std::uint64_t die) const;
  Result<Die> origin_of(Dwarf_Die die);
  std::string type_name_of(Dwarf_Die die, std::uint64_t& size_bytes, bool& is_scalar, bool& is_pointer);
  // Calls visit(child, tag) -> Result<void> for each child of `die` in order, each one counted against `budget`,
  // until a visit fails. `depth`, that of `die`, is checked against kMaxDieDepth.
  template <class Visit>
  Result<void> for_each_child(Dwarf_Die die, unsigned depth, std::size_t& budget, Visit visit);
  Result<void> walk_top(Dwarf_Die die, CompileUnit& unit, unsigned depth, std::size_t& budget);
  Result<void> walk_definition(Dwarf_Die die, Dwarf_Half tag, CompileUnit& unit, unsigned depth, std::size_t& budget);
  Result<void> collect_local_types(Dwarf_Die die, unsigned depth, std::size_t& budget,
                                   std::vector<std::uint64_t>& types);
  Result<void> walk_nested(std::vector<std::uint64_t>& offsets, CompileUnit& unit, unsigned depth,
                           std::size_t& budget);
  Result<void> walk_scope(Dwarf_Die die, Scope& scope, std::size_t function_index, CompileUnit& unit, unsigned depth,
                          std::size_t& budget,
                          std::vector<std::uint64_t>& nested_definitions);
  Result<Scope> make_scope(Dwarf_Die die, Dwarf_Half tag, CompileUnit& unit, std::vector<FileAddressRange> ranges);
  Result<std::optional<VariableInfo>> make_variable(Dwarf_Die die, Dwarf_Half tag, const CompileUnit& unit);
  Result<void> add_call_site(Dwarf_Die die, std::size_t function_index, CompileUnit& unit);
  Result<void> load_lines(Dwarf_Die cu_die, CompileUnit& unit);
  // One row of a line table, but for `file`: libdwarf's number for it is left in `file_number`.
  Result<LineRow> line_row(Dwarf_Line line, Dwarf_Unsigned& file_number);
  std::optional<DwarfLine> line_in(const CompileUnit& unit, std::uint64_t pc) const;
};

Result<std::vector<FileAddressRange>> DwarfIndex::Impl::pc_ranges(Dwarf_Die die, const CompileUnit& unit) {
  std::vector<FileAddressRange> ranges;
  Dwarf_Addr low = 0;
  FS_TRY(has_low, dwarf_call(debug(), "reading DW_AT_low_pc", dwarf_lowpc, die, &low));
  if (*has_low) {
    Dwarf_Addr high = 0;
    Dwarf_Half form = 0;
    Dwarf_Form_Class form_class = DW_FORM_CLASS_UNKNOWN;
    FS_TRY(has_high, dwarf_call(debug(), "reading DW_AT_high_pc", dwarf_highpc_b, die, &high, &form, &form_class));
    if (*has_high) {
      // DWARF 4+: a constant-class high_pc is the size, not an address (2.17.2).
      if (form_class == DW_FORM_CLASS_CONSTANT) high += low;
      if (high > low) ranges.push_back({low, high});
      return ranges;
    }
    // A CU may carry DW_AT_low_pc 0 as the base for its DW_AT_ranges (2.17.3).
  }
  FS_TRY(attr, attribute(debug(), die, DW_AT_ranges));
  if (!*attr) return ranges;
  FS_TRY(form, form_of(debug(), (*attr)->get()));
  if (*form != DW_FORM_sec_offset && *form != DW_FORM_data4 && *form != DW_FORM_data8)
    return fail(where("DW_AT_ranges form "), hex(*form), " is not supported");
  FS_TRY(offset, unsigned_attribute(debug(), die, DW_AT_ranges));
  return lists.ranges(offset->value_or(0), unit.list_unit());
}

Result<LocationAttribute> DwarfIndex::Impl::location_attribute(Dwarf_Die die, Dwarf_Half name,
                                                               const CompileUnit& unit) {
  LocationAttribute location;
  FS_TRY(attr, attribute(debug(), die, name));
  if (!*attr) return location;
  FS_TRY(form, form_of(debug(), (*attr)->get()));
  location.present = true;
  if (*form == DW_FORM_exprloc || *form == DW_FORM_block1 || *form == DW_FORM_block2 || *form == DW_FORM_block4 ||
      *form == DW_FORM_block) {
    FS_TRY(expression, block_attribute(debug(), (*attr)->get(), *form));
    location.expression = std::move(*expression);
    return location;
  }
  if (*form == DW_FORM_sec_offset || *form == DW_FORM_data4 || *form == DW_FORM_data8) {
    FS_TRY(offset, unsigned_attribute(debug(), die, name));
    FS_TRY(list, lists.locations(offset->value_or(0), unit.list_unit()));
    location.is_list = true;
    location.list = std::move(*list);
    return location;
  }
  return fail(where("location form "), hex(*form), " is not supported");
}

Result<Die> DwarfIndex::Impl::origin_of(Dwarf_Die die) {
  for (Dwarf_Half name : {Dwarf_Half{DW_AT_abstract_origin}, Dwarf_Half{DW_AT_specification}}) {
    FS_TRY(offset, reference_attribute(debug(), die, name));
    if (*offset) return die_at(debug(), **offset);
  }
  return Die();
}

Result<void> DwarfIndex::Impl::names_through_origins(Dwarf_Die die, std::string& name, std::string& linkage_name,
                                                     std::uint64_t* name_die) {
  Die holder;
  Dwarf_Die current = die;
  for (unsigned hop = 0; hop <= kMaxReferenceHops && current; ++hop) {
    if (name.empty()) {
      FS_TRY(found, string_attribute(debug(), current, DW_AT_name));
      if (*found) {
        name = **found;
        if (name_die) {
          FS_TRY(offset, offset_of(debug(), current));
          *name_die = *offset;
        }
      }
    }
    if (linkage_name.empty()) {
      FS_TRY(found, string_attribute(debug(), current, DW_AT_linkage_name));
      if (!*found) {
        FS_TRY(old, string_attribute(debug(), current, DW_AT_MIPS_linkage_name));
        found = std::move(old);
      }
      if (*found) linkage_name = **found;
    }
    if (!name.empty() && !linkage_name.empty()) break;
    FS_TRY(next, origin_of(current));
    holder = std::move(*next);
    current = holder.get();
  }
  return {};
}

std::optional<std::uint64_t> DwarfIndex::Impl::parent_of(std::uint64_t die) const {
  // The unit holding `die`: the last one starting at or before it (units are in .debug_info order).
  auto after = std::upper_bound(units.begin(), units.end(), die,
                                [](std::uint64_t offset, const CompileUnit& unit) { return offset < unit.die_offset; });
  if (after == units.begin()) return std::nullopt;
  const auto& parents = (after - 1)->parents;
  auto found = std::lower_bound(parents.begin(), parents.end(), std::pair<std::uint64_t, std::uint64_t>{die, 0});
  if (found == parents.end() || found->first != die) return std::nullopt;
  return found->second;
}

std::string DwarfIndex::Impl::display_name(const std::string& linkage_name, const std::string& name,
                                           std::uint64_t name_die) {
  // The assembler names a function written in assembly by its symbol, mangled for a C++ name (fiber::yield).
  const std::string& symbol = !linkage_name.empty() ? linkage_name : name;
  if (symbol.starts_with("_Z")) return demangle(symbol);
  if (symbol.empty()) return "??";
  if (!linkage_name.empty() || !name_die) return symbol;
  auto parent = parent_of(name_die);
  return parent ? scope_prefix(*parent, 0) + name : name;
}

std::string DwarfIndex::Impl::scope_prefix(std::uint64_t die, unsigned depth) {
  auto cached = scope_prefixes.find(die);
  if (cached != scope_prefixes.end()) return cached->second;
  // Hostile DWARF could make a function's name lead back inside itself: a bounded depth ends any loop.
  if (depth > kMaxScopeDepth) return {};
  std::string prefix;
  auto scope = die_at(debug(), die);
  Dwarf_Half tag = 0;
  if (scope && dwarf_call_status(debug(), dwarf_tag, scope->get(), &tag) == DW_DLV_OK) {
    const auto parent = parent_of(die);
    std::string name, linkage_name;
    std::uint64_t name_die = 0;
    if (tag == DW_TAG_subprogram) {
      // A function around a local class or lambda: as it would print itself, with its parameter types.
      if (names_through_origins(scope->get(), name, linkage_name, &name_die)) {
        const auto name_parent = linkage_name.empty() && name_die ? parent_of(name_die) : std::nullopt;
        prefix = !linkage_name.empty() ? demangle(linkage_name)
                 : name_parent         ? scope_prefix(*name_parent, depth + 1) + name
                                       : name;
      }
    } else if (tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
               tag == DW_TAG_union_type) {
      auto own = string_attribute(debug(), scope->get(), DW_AT_name);
      if (own && *own) name = **own;
      // gcc's lambda closures are unnamed classes inside the function that writes them.
      const bool in_function = parent && [&] {
        auto parent_die = die_at(debug(), *parent);
        Dwarf_Half parent_tag = 0;
        return parent_die && dwarf_call_status(debug(), dwarf_tag, parent_die->get(), &parent_tag) == DW_DLV_OK &&
               parent_tag == DW_TAG_subprogram;
      }();
      if (name.empty())
        name = tag == DW_TAG_namespace ? "(anonymous namespace)" : in_function ? "{lambda}" : "{unnamed}";
      prefix = (parent ? scope_prefix(*parent, depth + 1) : std::string()) + name;
    }
    if (!prefix.empty()) prefix += "::";
  }
  scope_prefixes.emplace(die, prefix);
  return prefix;
}

std::string DwarfIndex::Impl::type_name_of(Dwarf_Die die, std::uint64_t& size_bytes, bool& is_scalar,
                                          bool& is_pointer) {
  // Simple names only (base types, pointers, typedef names): cheap, and enough for an argument list.
  size_bytes = 0;
  is_scalar = false;
  is_pointer = false;
  std::string prefix, suffix;
  Die holder;
  auto type_offset = reference_attribute(debug(), die, DW_AT_type);
  if (!type_offset || !*type_offset) return "void";
  auto next = die_at(debug(), **type_offset);
  if (!next) return "?";
  holder = std::move(*next);
  bool size_known = false;
  std::optional<std::string> typedef_name;  // shown instead of what it names; the chain is still followed for size
  for (unsigned hop = 0; hop <= kMaxReferenceHops && holder; ++hop) {
    Dwarf_Half tag = 0;
    if (dwarf_call_status(debug(), dwarf_tag, holder.get(), &tag) != DW_DLV_OK) return "?";
    if (!size_known) {
      if (auto size = unsigned_attribute(debug(), holder.get(), DW_AT_byte_size); size && *size) {
        size_bytes = **size;
        size_known = true;
      } else if (tag == DW_TAG_pointer_type || tag == DW_TAG_reference_type || tag == DW_TAG_rvalue_reference_type) {
        size_bytes = 8;
        size_known = true;
      }
    }
    if (tag == DW_TAG_base_type || tag == DW_TAG_pointer_type || tag == DW_TAG_reference_type ||
        tag == DW_TAG_rvalue_reference_type || tag == DW_TAG_enumeration_type || tag == DW_TAG_ptr_to_member_type)
      is_scalar = is_scalar || suffix.empty();
    // A typedef of a pointer ("typedef int (*parker)(int)") is still printed as an address, as gdb does.
    if ((tag == DW_TAG_pointer_type || tag == DW_TAG_reference_type || tag == DW_TAG_rvalue_reference_type) &&
        suffix.empty())
      is_pointer = true;
    auto name = string_attribute(debug(), holder.get(), DW_AT_name);
    const std::string own_name = name && *name ? **name : "";
    switch (tag) {
      case DW_TAG_pointer_type: suffix = "*" + suffix; break;
      case DW_TAG_reference_type: suffix = "&" + suffix; break;
      case DW_TAG_rvalue_reference_type: suffix = "&&" + suffix; break;
      case DW_TAG_const_type: prefix = "const " + prefix; break;
      case DW_TAG_volatile_type: prefix = "volatile " + prefix; break;
      case DW_TAG_array_type: suffix += "[]"; break;
      case DW_TAG_subroutine_type: return typedef_name.value_or(prefix + "function" + suffix);
      case DW_TAG_typedef: break;
      default:
        if (typedef_name) return *typedef_name;
        return prefix + (own_name.empty() ? "?" : own_name) + suffix;
    }
    if (tag == DW_TAG_typedef && !typedef_name) typedef_name = prefix + own_name + suffix;
    if (typedef_name && (is_scalar || !suffix.empty())) return *typedef_name;
    auto inner = reference_attribute(debug(), holder.get(), DW_AT_type);
    if (!inner || !*inner) return typedef_name.value_or(prefix + "void" + suffix);
    auto die_next = die_at(debug(), **inner);
    if (!die_next) return "?";
    holder = std::move(*die_next);
  }
  return prefix + "?" + suffix;
}

Result<std::optional<VariableInfo>> DwarfIndex::Impl::make_variable(Dwarf_Die die, Dwarf_Half tag,
                                                                    const CompileUnit& unit) {
  FS_TRY(declaration, unsigned_attribute(debug(), die, DW_AT_declaration));
  if (*declaration && **declaration) return std::optional<VariableInfo>();
  VariableInfo variable;
  variable.is_parameter = tag == DW_TAG_formal_parameter;
  std::string unused_linkage;
  FS_TRY(names, names_through_origins(die, variable.name, unused_linkage));
  // The type lives on the abstract origin for inlined and out-of-line instances.
  Die origin_holder;
  Dwarf_Die typed = die;
  for (unsigned hop = 0; hop < kMaxReferenceHops; ++hop) {
    FS_TRY(has_type, reference_attribute(debug(), typed, DW_AT_type));
    if (*has_type) break;
    FS_TRY(origin, origin_of(typed));
    if (!*origin) break;
    origin_holder = std::move(*origin);
    typed = origin_holder.get();
  }
  variable.type_name = type_name_of(typed, variable.size_bytes, variable.is_scalar, variable.is_pointer);
  FS_TRY(location, location_attribute(die, DW_AT_location, unit));
  variable.location = std::move(*location);
  if (!variable.location.present) {
    // A constant folded away: DW_AT_const_value becomes an equivalent expression (constu; stack_value).
    FS_TRY(constant, unsigned_attribute(debug(), die, DW_AT_const_value));
    if (*constant) {
      variable.location.present = true;
      std::vector<std::byte>& bytes = variable.location.expression;
      bytes.push_back(std::byte{DW_OP_constu});
      std::uint64_t value = **constant;
      do {
        std::uint8_t byte = value & 0x7f;
        value >>= 7;
        if (value) byte |= 0x80;
        bytes.push_back(std::byte{byte});
      } while (value);
      bytes.push_back(std::byte{DW_OP_stack_value});
    }
  }
  return std::optional<VariableInfo>(std::move(variable));
}

Result<void> DwarfIndex::Impl::add_call_site(Dwarf_Die die, std::size_t function_index, CompileUnit& unit) {
  // DWARF 5 uses DW_AT_call_return_pc; the GNU extension puts the return address in DW_AT_low_pc.
  Dwarf_Addr return_pc = 0;
  {
    FS_TRY(attr, attribute(debug(), die, DW_AT_call_return_pc));
    if (*attr) {
      FS_TRY_DISCARD(dwarf_call(debug(), "reading DW_AT_call_return_pc", dwarf_formaddr, (*attr)->get(), &return_pc));
    } else {
      FS_TRY(found, dwarf_call(debug(), "reading a call site's low_pc", dwarf_lowpc, die, &return_pc));
      if (!*found) return {};
    }
  }
  CallSiteInfo site;
  site.function_index = function_index;
  // What the site calls (GNU call sites name it with DW_AT_abstract_origin and DW_AT_GNU_call_site_target).
  FS_TRY(origin, reference_attribute(debug(), die, DW_AT_call_origin));
  if (!*origin) {
    FS_TRY(gnu_origin, reference_attribute(debug(), die, DW_AT_abstract_origin));
    origin = std::move(gnu_origin);
  }
  site.origin_offset = origin->value_or(0);
  FS_TRY(target, location_attribute(die, DW_AT_call_target, unit));
  if (!target->present) {
    FS_TRY(gnu_target, location_attribute(die, DW_AT_GNU_call_site_target, unit));
    target = std::move(gnu_target);
  }
  if (target->present && !target->is_list) site.target = std::move(target->expression);
  FS_TRY(first, first_child(debug(), die, "reading call site parameters"));
  Die child = std::move(*first);
  for (std::size_t n = 0; child && n < 256; ++n) {
    FS_TRY(tag, tag_of(debug(), child.get()));
    if (*tag == DW_TAG_call_site_parameter || *tag == DW_TAG_GNU_call_site_parameter) {
      FS_TRY(location, location_attribute(child.get(), DW_AT_location, unit));
      FS_TRY(value, location_attribute(child.get(), DW_AT_call_value, unit));
      if (!value->present) {
        FS_TRY(gnu_value, location_attribute(child.get(), DW_AT_GNU_call_site_value, unit));
        value = std::move(gnu_value);
      }
      if (location->present && !location->is_list && value->present && !value->is_list)
        site.parameters.push_back({std::move(location->expression), std::move(value->expression)});
    }
    FS_TRY(next, next_sibling(debug(), child.get(), "reading call site parameters"));
    child = std::move(*next);
  }
  unit.call_sites[return_pc] = std::move(site);
  return {};
}

Result<Scope> DwarfIndex::Impl::make_scope(Dwarf_Die die, Dwarf_Half tag, CompileUnit& unit,
                                           std::vector<FileAddressRange> ranges) {
  Scope scope;
  scope.ranges = std::move(ranges);
  scope.kind = tag == DW_TAG_subprogram ? Scope::Kind::function
               : tag == DW_TAG_inlined_subroutine ? Scope::Kind::inlined
                                                  : Scope::Kind::block;
  scope.entry_pc = scope.ranges.empty() ? 0 : scope.ranges.front().low;
  for (const auto& range : scope.ranges) scope.entry_pc = std::min(scope.entry_pc, range.low);
  if (scope.kind == Scope::Kind::block) return scope;
  FS_TRY(names, names_through_origins(die, scope.name, scope.linkage_name, &scope.name_die));
  if (scope.kind == Scope::Kind::function) {
    FS_TRY(frame_base, location_attribute(die, DW_AT_frame_base, unit));
    scope.frame_base = std::move(*frame_base);
  } else {
    FS_TRY(file, unsigned_attribute(debug(), die, DW_AT_call_file));
    FS_TRY(line, unsigned_attribute(debug(), die, DW_AT_call_line));
    scope.call_line = static_cast<unsigned>(line->value_or(0));
    if (*file) {
      // DWARF 5 file numbers index the table directly; DWARF 2-4 count from 1 (6.2.4).
      std::uint64_t index = **file;
      if (unit.version < 5) index = index == 0 ? ~std::uint64_t{0} : index - 1;
      if (index < unit.source_files.size()) scope.call_file = unit.source_files[index];
    }
  }
  return scope;
}

template <class Visit>
Result<void> DwarfIndex::Impl::for_each_child(Dwarf_Die die, unsigned depth, std::size_t& budget, Visit visit) {
  if (depth > kMaxDieDepth) return fail(where("DIE tree deeper than "), std::to_string(kMaxDieDepth));
  FS_TRY(first, first_child(debug(), die, "reading DIE children"));
  Die child = std::move(*first);
  while (child) {
    if (budget-- == 0) return fail(where("more than "), std::to_string(kMaxDiesPerUnit), " DIEs in one unit");
    FS_TRY(tag, tag_of(debug(), child.get()));
    FS_TRY_DISCARD(visit(child.get(), *tag));
    FS_TRY(next, next_sibling(debug(), child.get(), "reading DIE siblings"));
    child = std::move(*next);
  }
  return {};
}

Result<void> DwarfIndex::Impl::walk_scope(Dwarf_Die die, Scope& scope, std::size_t function_index, CompileUnit& unit,
                                          unsigned depth, std::size_t& budget,
                                          std::vector<std::uint64_t>& nested_definitions) {
  return for_each_child(die, depth, budget, [&](Dwarf_Die child, Dwarf_Half tag) -> Result<void> {
    switch (tag) {
      case DW_TAG_formal_parameter:
      case DW_TAG_variable: {
        FS_TRY(variable, make_variable(child, tag, unit));
        if (*variable) scope.variables.push_back(std::move(**variable));
        break;
      }
      case DW_TAG_lexical_block:
      case DW_TAG_inlined_subroutine: {
        FS_TRY(ranges, pc_ranges(child, unit));
        if (ranges->empty() && tag == DW_TAG_lexical_block) {
          // A block without its own ranges covers its parent's: its contents belong to the parent scope.
          FS_TRY(ok, walk_scope(child, scope, function_index, unit, depth + 1, budget, nested_definitions));
          break;
        }
        if (ranges->empty()) break;  // an inlined copy with no code
        FS_TRY(nested, make_scope(child, tag, unit, std::move(*ranges)));
        scope.children.push_back(std::move(*nested));
        FS_TRY(ok, walk_scope(child, scope.children.back(), function_index, unit, depth + 1, budget,
                              nested_definitions));
        break;
      }
      case DW_TAG_call_site:
      case DW_TAG_GNU_call_site: {
        FS_TRY(ok, add_call_site(child, function_index, unit));
        break;
      }
      case DW_TAG_subprogram:
      case DW_TAG_class_type:
      case DW_TAG_structure_type:
      case DW_TAG_union_type: {
        // A lambda's closure type and its operator() are defined inside the function that writes the lambda
        // (gcc), as are local classes' members: functions of their own, indexed once this one is done.
        FS_TRY(offset, offset_of(debug(), child));
        nested_definitions.push_back(*offset);
        break;
      }
      default:
        break;  // imported modules, labels, nested types without code: not needed for frames
    }
    return {};
  });
}

Result<void> DwarfIndex::Impl::walk_top(Dwarf_Die die, CompileUnit& unit, unsigned depth, std::size_t& budget) {
  FS_TRY(parent, offset_of(debug(), die));
  return for_each_child(die, depth, budget, [&](Dwarf_Die child, Dwarf_Half tag) -> Result<void> {
    if (tag == DW_TAG_subprogram || tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
        tag == DW_TAG_structure_type || tag == DW_TAG_union_type) {
      FS_TRY(offset, offset_of(debug(), child));
      unit.parents.emplace_back(*offset, *parent);
    }
    return walk_definition(child, tag, unit, depth, budget);
  });
}

// A function with code becomes one of the unit's functions; namespaces and classes are searched for more.
Result<void> DwarfIndex::Impl::walk_definition(Dwarf_Die die, Dwarf_Half tag, CompileUnit& unit, unsigned depth,
                                               std::size_t& budget) {
  if (tag == DW_TAG_subprogram) {
    FS_TRY(ranges, pc_ranges(die, unit));
    if (ranges->empty()) {
      // An abstract instance (code only in its inlined and out-of-line copies) holds the definitions of the lambdas
      // and local classes those copies use: kept as parents, they name the lambdas' operator().
      // (C has no lambdas, and libc's debug info is full of abstract instances: skipping them there saves 15%.)
      if (unit.plain_c) return {};
      FS_TRY(inline_kind, unsigned_attribute(debug(), die, DW_AT_inline));
      if (!*inline_kind) return {};
      std::vector<std::uint64_t> local_types;
      FS_TRY(collected, collect_local_types(die, depth + 1, budget, local_types));
      FS_TRY(function_offset, offset_of(debug(), die));
      for (std::uint64_t offset : local_types) unit.parents.emplace_back(offset, *function_offset);
      return walk_nested(local_types, unit, depth + 1, budget);
    }
    FS_TRY(function, make_scope(die, tag, unit, std::move(*ranges)));
    unit.functions.push_back(std::move(*function));
    const std::size_t index = unit.functions.size() - 1;
    // Only this function's own scopes grow below, so the reference into `functions` stays valid; definitions
    // nested in its body are indexed after it.
    std::vector<std::uint64_t> nested;
    FS_TRY(body, walk_scope(die, unit.functions[index], index, unit, depth + 1, budget, nested));
    FS_TRY(function_offset, offset_of(debug(), die));
    for (std::uint64_t offset : nested) unit.parents.emplace_back(offset, *function_offset);
    return walk_nested(nested, unit, depth + 1, budget);
  }
  if (tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
      tag == DW_TAG_union_type) {
    // Clang (and gcc for some members) puts function definitions inside their namespace or class.
    return walk_top(die, unit, depth + 1, budget);
  }
  return {};
}

Result<void> DwarfIndex::Impl::collect_local_types(Dwarf_Die die, unsigned depth, std::size_t& budget,
                                                   std::vector<std::uint64_t>& types) {
  return for_each_child(die, depth, budget, [&](Dwarf_Die child, Dwarf_Half tag) -> Result<void> {
    if (tag == DW_TAG_lexical_block) return collect_local_types(child, depth + 1, budget, types);
    if (tag == DW_TAG_class_type || tag == DW_TAG_structure_type || tag == DW_TAG_union_type) {
      FS_TRY(offset, offset_of(debug(), child));
      types.push_back(*offset);
    }
    return {};
  });
}

Result<void> DwarfIndex::Impl::walk_nested(std::vector<std::uint64_t>& offsets, CompileUnit& unit, unsigned depth,
                                           std::size_t& budget) {
  for (std::uint64_t offset : offsets) {
    FS_TRY(die, die_at(debug(), offset));
    FS_TRY(tag, tag_of(debug(), die->get()));
    FS_TRY_DISCARD(walk_definition(die->get(), *tag, unit, depth, budget));
  }
  return {};
}

Result<void> DwarfIndex::Impl::load_lines(Dwarf_Die cu_die, CompileUnit& unit) {
  FS_TRY(line_offset, unsigned_attribute(debug(), cu_die, DW_AT_stmt_list));
  if (!*line_offset) return {};
  FS_TRY_DISCARD(check_line_table_counts(debug_line, **line_offset));
  Dwarf_Unsigned version = 0;
  Dwarf_Small table_count = 0;
  Dwarf_Line_Context raw_context = nullptr;
  FS_TRY(has_lines, dwarf_call(debug(), "reading the line table", dwarf_srclines_b, cu_die, &version, &table_count,
                               &raw_context));
  if (!*has_lines) return {};
  const LineContext context(raw_context);
  FS_TRY_DISCARD(check_file_directories(debug(), context.get(), version));
  FS_TRY(files, source_files(debug(), cu_die));
  unit.source_files = std::move(*files);
  Dwarf_Line* lines = nullptr;
  Dwarf_Signed count = 0;
  FS_TRY(has_rows, dwarf_call(debug(), "reading line rows", dwarf_srclines_from_linecontext, context.get(), &lines,
                              &count));
  if (!*has_rows || count <= 0) return {};
  if (static_cast<std::uint64_t>(count) > kMaxLineRows) return fail(where("line table has too many rows"));
  // DWARF 5: libdwarf misnumbers the rows before a sequence's first DW_LNS_set_file (line_program_files.h), so
  // the file numbers come from the program itself and name entries of the unit's file table (0-based in DWARF 5).
  std::vector<std::uint64_t> program_files;
  if (version == 5) {
    auto read = line_program_files(debug_line, **line_offset);
    const auto named = [&](std::uint64_t file) { return file < unit.source_files.size(); };
    if (read && read->size() == static_cast<std::size_t>(count) && std::all_of(read->begin(), read->end(), named))
      program_files = std::move(*read);
  }
  std::unordered_map<Dwarf_Unsigned, std::uint32_t> file_slots;
  unit.rows.reserve(static_cast<std::size_t>(count));
  for (Dwarf_Signed i = 0; i < count; ++i) {
    Dwarf_Unsigned file_number = 0;
    FS_TRY(row, line_row(lines[i], file_number));
    const bool numbered_here = !program_files.empty();
    if (numbered_here) file_number = program_files[static_cast<std::size_t>(i)];
    auto slot = file_slots.find(file_number);
    if (slot == file_slots.end()) {
      // One path per distinct file, not per row: libdwarf joins and allocates it on each call.
      unit.line_files.push_back(numbered_here ? unit.source_files[file_number] : line_file(debug(), lines[i]));
      slot = file_slots.emplace(file_number, static_cast<std::uint32_t>(unit.line_files.size() - 1)).first;
    }
    row->file = slot->second;
    unit.rows.push_back(*row);
  }
  // Sequences may come in any order; an end_sequence row sorts before a row that starts at the same address.
  std::stable_sort(unit.rows.begin(), unit.rows.end(), [](const LineRow& a, const LineRow& b) {
    if (a.address != b.address) return a.address < b.address;
    return a.end_sequence && !b.end_sequence;
  });
  return {};
}

Result<LineRow> DwarfIndex::Impl::line_row(Dwarf_Line line, Dwarf_Unsigned& file_number) {
  Dwarf_Addr address = 0;
  Dwarf_Unsigned number = 0;
  Dwarf_Bool end_sequence = false;
  FS_TRY_DISCARD(dwarf_call(debug(), "reading a line address", dwarf_lineaddr, line, &address));
  FS_TRY_DISCARD(dwarf_call(debug(), "reading a line number", dwarf_lineno, line, &number));
  FS_TRY_DISCARD(dwarf_call(debug(), "reading a line's file", dwarf_line_srcfileno, line, &file_number));
  FS_TRY_DISCARD(dwarf_call(debug(), "reading a line row", dwarf_lineendsequence, line, &end_sequence));
  return LineRow{address, static_cast<unsigned>(number), 0, end_sequence != 0};
}

std::optional<DwarfLine> DwarfIndex::Impl::line_in(const CompileUnit& unit, std::uint64_t pc) const {
  auto above = std::upper_bound(unit.rows.begin(), unit.rows.end(), pc,
                                [](std::uint64_t a, const LineRow& row) { return a < row.address; });
  if (above == unit.rows.begin()) return std::nullopt;
  const LineRow& row = *std::prev(above);
  if (row.end_sequence) return std::nullopt;
  // Several rows may share an address (views); the last one before `above` is the most specific.
  return DwarfLine{unit.line_files[row.file], row.line};
}

Result<void> DwarfIndex::Impl::read_unit_attributes(CompileUnit& unit, Dwarf_Die cu_die) {
  unit.attributes_read = true;
  FS_TRY(version, unit_version(debug(), cu_die));
  unit.version = *version;
  Dwarf_Addr low = 0;
  FS_TRY(has_low, dwarf_call(debug(), "reading a CU's low_pc", dwarf_lowpc, cu_die, &low));
  unit.base_address = *has_low ? low : 0;
  FS_TRY(addr_base, unsigned_attribute(debug(), cu_die, DW_AT_addr_base));
  unit.addr_base = addr_base->value_or(0);
  FS_TRY(language, unsigned_attribute(debug(), cu_die, DW_AT_language));
  const std::uint64_t lang = language->value_or(0);
  constexpr std::uint64_t kLangC17 = 0x2c;  // DWARF 6's DW_LANG_C17, newer than this libdwarf
  unit.plain_c = lang == DW_LANG_C89 || lang == DW_LANG_C || lang == DW_LANG_C99 || lang == DW_LANG_C11 ||
                 lang == kLangC17;
  return {};
}

Result<void> DwarfIndex::Impl::index_units() {
  auto from_aranges = read_aranges(debug_aranges, debug_info, image->path());
  // Go's linker writes no .debug_aranges sets: in a cgo binary the table names gcc's units only. It is trusted
  // only when it names every unit.
  if (from_aranges && !from_aranges->empty() && from_aranges->size() == count_unit_headers(debug_info)) {
    for (ArangesUnit& covered : *from_aranges) {
      CompileUnit unit;
      unit.die_offset = covered.die_offset;
      unit.version = covered.version;
      unit.ranges = std::move(covered.ranges);
      units.push_back(std::move(unit));
    }
  } else {
    // No usable .debug_aranges (clang omits it by default, it misses units, or it is corrupt): visit every CU DIE.
    FS_TRY_DISCARD(index_units_from_headers());
  }
  for (std::size_t i = 0; i < units.size(); ++i)
    for (const auto& range : units[i].ranges) unit_ranges.push_back({range, i});
  std::sort(unit_ranges.begin(), unit_ranges.end(),
            [](const auto& a, const auto& b) { return a.first.low < b.first.low; });
  return {};
}

Result<void> DwarfIndex::Impl::index_units_from_headers() {
  for (std::size_t n = 0;; ++n) {
    if (n >= kMaxCompileUnits) return fail(where("more than "), std::to_string(kMaxCompileUnits), " compile units");
    Dwarf_Unsigned header_length = 0, type_offset = 0, next_offset = 0;
    Dwarf_Half version = 0, address_size = 0, length_size = 0, extension_size = 0, unit_type = 0;
    Dwarf_Off abbrev_offset = 0;
    Dwarf_Sig8 signature;
    FS_TRY(has_unit, dwarf_call(debug(), where("reading compile unit headers"), dwarf_next_cu_header_d, debug(), true,
                                &header_length, &version, &abbrev_offset, &address_size, &length_size,
                                &extension_size, &signature, &type_offset, &next_offset, &unit_type));
    if (!*has_unit) break;
    // The unit's DIE is the sibling of "no DIE" in the unit dwarf_next_cu_header_d moved to.
    FS_TRY(cu_die, next_sibling(debug(), nullptr, where("reading a compile unit DIE")));
    if (!*cu_die) continue;
    if (address_size != 8) continue;  // not x86-64 code
    CompileUnit unit;
    FS_TRY(offset, offset_of(debug(), cu_die->get()));
    unit.die_offset = *offset;
    FS_TRY_DISCARD(read_unit_attributes(unit, cu_die->get()));
    auto ranges = pc_ranges(cu_die->get(), unit);
    // A unit whose ranges cannot be read is left out of the index rather than failing the whole file.
    if (!ranges || ranges->empty()) continue;
    unit.ranges = std::move(*ranges);
    units.push_back(std::move(unit));
  }
  return {};
}

CompileUnit* DwarfIndex::Impl::unit_for(std::uint64_t pc) {
  auto above = std::upper_bound(unit_ranges.begin(), unit_ranges.end(), pc,
                                [](std::uint64_t a, const auto& entry) { return a < entry.first.low; });
  // Ranges of different units should not overlap, but a few steps back tolerate sloppy producers.
  for (std::size_t scanned = 0; above != unit_ranges.begin() && scanned < 8; ++scanned) {
    --above;
    if (above->first.contains(pc)) return &units[above->second];
  }
  return nullptr;
}

Result<void> DwarfIndex::Impl::parse_unit(CompileUnit& unit) {
  if (unit.parsed) {
    if (!unit.parse_error.empty()) return fail(unit.parse_error);
    return {};
  }
  unit.parsed = true;
  ++parsed_count;
  auto parse = [&]() -> Result<void> {
    FS_TRY(cu_die, die_at(debug(), unit.die_offset));
    if (!unit.attributes_read) {
      FS_TRY(attributes, read_unit_attributes(unit, cu_die->get()));
    }
    FS_TRY(lines, load_lines(cu_die->get(), unit));
    std::size_t budget = kMaxDiesPerUnit;
    return walk_top(cu_die->get(), unit, 0, budget);
  };
  auto parsed = parse();
  std::sort(unit.parents.begin(), unit.parents.end());
  unit.parents.shrink_to_fit();
  for (std::size_t i = 0; i < unit.functions.size(); ++i)
    for (const auto& range : unit.functions[i].ranges) unit.function_ranges.push_back({range, i});
  std::sort(unit.function_ranges.begin(), unit.function_ranges.end(),
            [](const auto& a, const auto& b) { return a.first.low < b.first.low; });
  if (auto& ok = parsed; !ok) {
    // Keep what was read (a truncated unit still names its first functions) and remember why the rest is missing.
    unit.parse_error = where("compile unit at .debug_info offset " + hex(unit.die_offset)) + ": " + ok.error().message;
    return fail(unit.parse_error);
  }
  return {};
}

static const Scope* function_containing(const CompileUnit& unit, std::uint64_t pc) {
  auto above = std::upper_bound(unit.function_ranges.begin(), unit.function_ranges.end(), pc,
                                [](std::uint64_t a, const auto& entry) { return a < entry.first.low; });
  for (std::size_t scanned = 0; above != unit.function_ranges.begin() && scanned < 8; ++scanned) {
    --above;
    if (above->first.contains(pc)) return &unit.functions[above->second];
  }
  return nullptr;
}

static std::vector<DwarfVariable> variables_at(const std::vector<const Scope*>& scopes, std::uint64_t pc) {
  std::vector<DwarfVariable> out;
  // Parameters first (they belong to the function or inlined scope itself), then locals from outer to inner blocks.
  for (int pass = 0; pass < 2; ++pass)
    for (const Scope* scope : scopes)
      for (const VariableInfo& variable : scope->variables) {
        if (variable.is_parameter != (pass == 0)) continue;
        out.push_back(DwarfVariable{variable.name, variable.type_name, variable.size_bytes, variable.is_parameter,
                                    variable.is_scalar, variable.location.at(pc), variable.is_pointer});
      }
  return out;
}

Result<std::unique_ptr<DwarfIndex>> DwarfIndex::open(const ElfImage& image) {
  std::unique_ptr<DwarfIndex> index(new DwarfIndex());
  Impl& impl = *index->impl_;
  impl.image = &image;
  if (!image.has_dwarf()) return fail(image.path(), ": no DWARF debug information (.debug_info)");
  auto section_bytes = [&](std::string_view name) {
    auto section = image.section(name);
    return section ? section->bytes : std::span<const std::byte>();
  };
  const ListSections list_sections{section_bytes(".debug_ranges"), section_bytes(".debug_rnglists"),
                                   section_bytes(".debug_loc"), section_bytes(".debug_loclists"),
                                   section_bytes(".debug_addr")};
  impl.lists = DwarfLists(list_sections, image.path());
  impl.debug_aranges = section_bytes(".debug_aranges");
  impl.debug_info = section_bytes(".debug_info");
  impl.debug_line = section_bytes(".debug_line");
  FS_TRY_DISCARD(with_context(check_list_table_headers(list_sections.debug_rnglists, ".debug_rnglists"), image.path()));
  FS_TRY_DISCARD(with_context(check_list_table_headers(list_sections.debug_loclists, ".debug_loclists"), image.path()));
  FS_TRY(has_dwarf, impl.session.open(image.path()));
  if (!*has_dwarf) return fail(image.path(), ": no DWARF debug information");
  FS_TRY_DISCARD(impl.index_units());
  return index;
}

Result<std::vector<DwarfFrame>> DwarfIndex::frames_at(std::uint64_t pc) {
  std::vector<DwarfFrame> frames;
  CompileUnit* unit = impl_->unit_for(pc);
  if (!unit) return frames;
  if (auto ok = impl_->parse_unit(*unit); !ok && unit->functions.empty()) return std::unexpected(ok.error());
  const Scope* function = function_containing(*unit, pc);
  if (!function && !unit->parse_error.empty()) return fail(unit->parse_error);
  if (!function) return frames;
  // The chain of scopes containing pc, outermost first, cut into frames at each inlined subroutine.
  std::vector<std::vector<const Scope*>> frame_scopes{{function}};
  for (const Scope* scope = function; scope;) {
    const Scope* inner = nullptr;
    for (const Scope& child : scope->children)
      if (child.contains(pc)) {
        inner = &child;
        break;
      }
    if (inner && inner->kind == Scope::Kind::inlined) frame_scopes.push_back({inner});
    else if (inner) frame_scopes.back().push_back(inner);
    scope = inner;
  }
  const auto innermost_line = impl_->line_in(*unit, pc);
  const std::vector<std::byte> frame_base = function->frame_base.at(pc);
  for (std::size_t i = frame_scopes.size(); i-- > 0;) {
    const Scope& head = *frame_scopes[i].front();
    DwarfFrame frame;
    frame.linkage_name = head.linkage_name;
    frame.function = impl_->display_name(head.linkage_name, head.name, head.name_die);
    frame.inlined = head.kind == Scope::Kind::inlined;
    frame.entry_pc = head.entry_pc;
    for (const auto& range : head.ranges)
      if (range.contains(pc)) frame.entry_pc = range.low;
    if (i + 1 == frame_scopes.size()) {
      if (innermost_line) {
        frame.file = innermost_line->file;
        frame.line = innermost_line->line;
      }
    } else {
      const Scope& callee = *frame_scopes[i + 1].front();
      frame.file = callee.call_file;
      frame.line = callee.call_line;
    }
    frame.frame_base = frame_base;
    frame.variables = variables_at(frame_scopes[i], pc);
    frames.push_back(std::move(frame));
  }
  return frames;
}

Result<std::optional<DwarfLine>> DwarfIndex::line_at(std::uint64_t pc) {
  CompileUnit* unit = impl_->unit_for(pc);
  if (!unit) return std::optional<DwarfLine>();
  if (auto ok = impl_->parse_unit(*unit); !ok && unit->rows.empty()) return std::unexpected(ok.error());
  return impl_->line_in(*unit, pc);
}

Result<std::optional<DwarfCallSite>> DwarfIndex::call_site(std::uint64_t return_pc) {
  // The call instruction ends just before the return address, which may already be past the caller's ranges.
  CompileUnit* unit = impl_->unit_for(return_pc - 1);
  if (!unit) return std::optional<DwarfCallSite>();
  if (auto ok = impl_->parse_unit(*unit); !ok && unit->functions.empty()) return std::unexpected(ok.error());
  auto found = unit->call_sites.find(return_pc);
  if (found == unit->call_sites.end()) return std::optional<DwarfCallSite>();
  DwarfCallSite site;
  site.return_pc = return_pc;
  site.parameters = found->second.parameters;
  site.target = found->second.target;
  if (found->second.origin_offset) {
    // The callee's name through its declaration; a reference we cannot follow leaves the callee unknown.
    if (auto callee = die_at(impl_->debug(), found->second.origin_offset)) {
      std::string name, linkage_name;
      std::uint64_t name_die = 0;
      if (impl_->names_through_origins(callee->get(), name, linkage_name, &name_die))
        site.callee = !linkage_name.empty() ? linkage_name : impl_->display_name({}, name, name_die);
    }
  }
  if (found->second.function_index < unit->functions.size())
    site.caller_frame_base = unit->functions[found->second.function_index].frame_base.at(return_pc - 1);
  return std::optional<DwarfCallSite>(std::move(site));
}

std::size_t DwarfIndex::compile_unit_count() const { return impl_->units.size(); }
std::size_t DwarfIndex::parsed_compile_unit_count() const { return impl_->parsed_count; }

DwarfIndex::DwarfIndex() : impl_(std::make_unique<Impl>()) {}
DwarfIndex::~DwarfIndex() = default;

}  // namespace fiberscope::binary
