#include "binary/dwarf_index.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "base/byte_reader.h"
#include "base/hex.h"

// Propagates the error of a Result-returning call; `var` holds the success value.
namespace fiberscope::binary {
namespace {

// Caps on hostile input: a real binary stays far below them.
constexpr std::size_t kMaxCompileUnits = 1'000'000;
constexpr std::size_t kMaxDiesPerUnit = 4'000'000;
constexpr unsigned kMaxDieDepth = 64;
constexpr unsigned kMaxReferenceHops = 8;  // DW_AT_abstract_origin / DW_AT_specification / type chains
constexpr unsigned kMaxScopeDepth = 32;     // namespaces, classes and functions qualifying one name
constexpr std::size_t kMaxListEntries = 100'000;
constexpr std::size_t kMaxLineRows = 20'000'000;

// ---- libdwarf confinement: status codes become Result, handles become move-only owners. ----

// Turns a libdwarf status into: true (DW_DLV_OK), false (DW_DLV_NO_ENTRY) or our Error (DW_DLV_ERROR).
// The Dwarf_Error is allocated by libdwarf per failure and must be freed, or it leaks until dwarf_finish.
Result<bool> dwarf_status(int status, Dwarf_Debug debug, Dwarf_Error error, std::string_view what) {
  if (status == DW_DLV_OK) return true;
  if (status == DW_DLV_NO_ENTRY) return false;
  std::string message = error ? dwarf_errmsg(error) : "unknown libdwarf error";
  if (error) dwarf_dealloc_error(debug, error);
  return fail(what, ": ", message);
}

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
    if (auto ok = reader.seek(body + static_cast<std::size_t>(length)); !ok) return ok;
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
  Dwarf_Error error = nullptr;
  auto ok = dwarf_status(dwarf_srclines_include_dir_count(context, &directories, &error), debug, error,
                         "reading the line table's directories");
  if (!ok) return std::unexpected(ok.error());
  error = nullptr;
  ok = dwarf_status(dwarf_srclines_files_indexes(context, &first, &count, &end, &error), debug, error,
                    "reading the line table's files");
  if (!ok) return std::unexpected(ok.error());
  const Dwarf_Unsigned highest = version >= 5 ? static_cast<Dwarf_Unsigned>(directories) - 1
                                              : static_cast<Dwarf_Unsigned>(directories);
  for (Dwarf_Signed index = first; index < end && index - first < static_cast<Dwarf_Signed>(kMaxListEntries); ++index) {
    const char* name = nullptr;
    Dwarf_Unsigned directory = 0, modified = 0, length = 0;
    Dwarf_Form_Data16* md5 = nullptr;
    error = nullptr;
    ok = dwarf_status(dwarf_srclines_files_data_b(context, index, &name, &directory, &modified, &length, &md5, &error),
                      debug, error, "reading the line table's files");
    if (!ok) return std::unexpected(ok.error());
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
  if (auto ok = reader.seek(static_cast<std::size_t>(offset)); !ok) return ok;
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
        Result<void> skipped;
        switch (form) {
          case DW_FORM_string:
            while (true) {
              FS_TRY(byte, reader.fixed<std::uint8_t>());
              if (*byte == 0) break;
            }
            break;
          case DW_FORM_line_strp: case DW_FORM_strp: skipped = reader.seek(reader.offset() + (is_64bit ? 8 : 4)); break;
          case DW_FORM_udata: case DW_FORM_strx: { FS_TRY(value, reader.uleb128()); break; }
          case DW_FORM_data1: case DW_FORM_strx1: skipped = reader.seek(reader.offset() + 1); break;
          case DW_FORM_data2: case DW_FORM_strx2: skipped = reader.seek(reader.offset() + 2); break;
          case DW_FORM_strx3: skipped = reader.seek(reader.offset() + 3); break;
          case DW_FORM_data4: case DW_FORM_strx4: skipped = reader.seek(reader.offset() + 4); break;
          case DW_FORM_data8: skipped = reader.seek(reader.offset() + 8); break;
          case DW_FORM_data16: skipped = reader.seek(reader.offset() + 16); break;
          default: return {};
        }
        if (!skipped) return {};  // ran off the section: libdwarf reports that itself
      }
    }
  }
  return {};
}

// A DIE. dwarf_child / dwarf_siblingof_b / dwarf_offdie_b each return a new allocation that the caller owns.
class Die {
 public:
  Die() = default;
  Die(Dwarf_Debug debug, Dwarf_Die die) : debug_(debug), die_(die) {}
  Die(Die&& other) noexcept : debug_(other.debug_), die_(std::exchange(other.die_, nullptr)) {}
  Die& operator=(Die&& other) noexcept {
    if (this != &other) {
      reset();
      debug_ = other.debug_;
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
  Dwarf_Debug debug_ = nullptr;
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

// The session: dwarf_finish frees every allocation libdwarf still holds, so it must run last.
class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (debug_) dwarf_finish(debug_, nullptr);
    if (fd_ >= 0) ::close(fd_);
  }
  Dwarf_Debug debug_ = nullptr;
  int fd_ = -1;
};

struct AddressRange {
  std::uint64_t low = 0;
  std::uint64_t high = 0;  // exclusive
  bool contains(std::uint64_t pc) const { return low <= pc && pc < high; }
};

struct LocationListEntry {
  AddressRange range;
  std::vector<std::byte> expression;
};

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
  LocationAttribute location;
};

struct Scope {
  enum class Kind { function, inlined, block } kind = Kind::function;
  std::vector<AddressRange> ranges;
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
    return std::any_of(ranges.begin(), ranges.end(), [&](const AddressRange& r) { return r.contains(pc); });
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
  std::vector<AddressRange> ranges;
  bool parsed = false;
  std::string parse_error;
  std::vector<Scope> functions;
  std::vector<std::pair<AddressRange, std::size_t>> function_ranges;  // sorted by low
  std::vector<std::string> source_files;  // DW_AT_call_file / DW_AT_decl_file table (dwarf_srcfiles)
  std::vector<LineRow> rows;              // sorted by address
  std::vector<std::string> line_files;
  std::unordered_map<std::uint64_t, CallSiteInfo> call_sites;  // by return pc
  // (DIE, its parent) for every namespace, class and function DIE the walk met, sorted: the scopes that qualify a
  // function whose DWARF has a name but no linkage name (members of some class templates, lambdas' operator()).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> parents;
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
  std::vector<std::pair<AddressRange, std::size_t>> unit_ranges;  // sorted by low
  std::size_t parsed_count = 0;
  std::span<const std::byte> debug_loc, debug_loclists, debug_ranges, debug_rnglists, debug_addr, debug_aranges,
      debug_info, debug_line;

  Dwarf_Debug debug() const { return session.debug_; }
  std::string where(std::string_view what) const { return image->path() + ": " + std::string(what); }

  Result<void> index_units();
  Result<bool> index_units_from_aranges();
  Result<void> read_unit_attributes(CompileUnit& unit, Dwarf_Die cu_die);
  CompileUnit* unit_for(std::uint64_t pc);
  Result<void> parse_unit(CompileUnit& unit);

  // Attribute helpers. All return "absent" as nullopt and a libdwarf failure as an Error.
  Result<std::optional<Attribute>> attribute(Dwarf_Die die, Dwarf_Half name);
  Result<std::optional<std::uint64_t>> unsigned_attribute(Dwarf_Die die, Dwarf_Half name);
  Result<std::optional<std::uint64_t>> reference_attribute(Dwarf_Die die, Dwarf_Half name);
  Result<std::optional<std::string>> string_attribute(Dwarf_Die die, Dwarf_Half name);
  Result<Die> die_at(std::uint64_t offset);
  Result<std::vector<AddressRange>> pc_ranges(Dwarf_Die die, const CompileUnit& unit);
  Result<LocationAttribute> location_attribute(Dwarf_Die die, Dwarf_Half name, const CompileUnit& unit);
  Result<std::vector<AddressRange>> range_list(std::uint64_t offset, const CompileUnit& unit);
  Result<std::vector<LocationListEntry>> location_list(std::uint64_t offset, const CompileUnit& unit);
  Result<std::uint64_t> indexed_address(std::uint64_t index, const CompileUnit& unit);
  struct ListEntry;
  Result<ListEntry> list_entry(ByteReader& reader, const CompileUnit& unit, bool location);
  Result<void> names_through_origins(Dwarf_Die die, std::string& name, std::string& linkage_name,
                                     std::uint64_t* name_die = nullptr);
  // What frames print for a function: its demangled linkage name, else its name qualified by the namespaces,
  // classes and functions around the DIE that gave it ("ns::Class<T>::member", "ns::f(int)::{lambda}::operator()").
  std::string display_name(const std::string& linkage_name, const std::string& name, std::uint64_t name_die);
  std::string scope_prefix(std::uint64_t die, unsigned depth);  // "ns::Class::" for the scope `die`, cached
  std::unordered_map<std::uint64_t, std::string> scope_prefixes;
  std::optional<std::uint64_t> parent_of(std::uint64_t die) const;
  Result<std::uint64_t> offset_of(Dwarf_Die die);
  Result<Die> origin_of(Dwarf_Die die);
  std::string type_name_of(Dwarf_Die die, std::uint64_t& size_bytes, bool& is_scalar);
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
  Result<Scope> make_scope(Dwarf_Die die, Dwarf_Half tag, CompileUnit& unit, std::vector<AddressRange> ranges);
  Result<std::optional<VariableInfo>> make_variable(Dwarf_Die die, Dwarf_Half tag, const CompileUnit& unit);
  Result<void> add_call_site(Dwarf_Die die, std::size_t function_index, CompileUnit& unit);
  Result<void> load_lines(Dwarf_Die cu_die, CompileUnit& unit);
  std::optional<DwarfLine> line_in(const CompileUnit& unit, std::uint64_t pc) const;
};

Result<std::optional<Attribute>> DwarfIndex::Impl::attribute(Dwarf_Die die, Dwarf_Half name) {
  Dwarf_Attribute raw = nullptr;
  Dwarf_Error error = nullptr;
  auto found = dwarf_status(dwarf_attr(die, name, &raw, &error), debug(), error, "reading an attribute");
  if (!found) return std::unexpected(found.error());
  if (!*found) return std::optional<Attribute>();
  return std::optional<Attribute>(Attribute(raw));
}

Result<std::optional<std::uint64_t>> DwarfIndex::Impl::unsigned_attribute(Dwarf_Die die, Dwarf_Half name) {
  auto attr = attribute(die, name);
  if (!attr) return std::unexpected(attr.error());
  if (!*attr) return std::optional<std::uint64_t>();
  Dwarf_Half form = 0;
  Dwarf_Error error = nullptr;
  if (auto ok = dwarf_status(dwarf_whatform((*attr)->get(), &form, &error), debug(), error, "reading a form"); !ok)
    return std::unexpected(ok.error());
  if (form == DW_FORM_sec_offset) {
    Dwarf_Off offset = 0;
    error = nullptr;
    auto ok = dwarf_status(dwarf_global_formref((*attr)->get(), &offset, &error), debug(), error,
                           "reading a section offset");
    if (!ok) return std::unexpected(ok.error());
    return std::optional<std::uint64_t>(offset);
  }
  Dwarf_Unsigned value = 0;
  error = nullptr;
  int status = dwarf_formudata((*attr)->get(), &value, &error);
  if (status == DW_DLV_ERROR) {
    // libdwarf 20210528 refuses DW_FORM_implicit_const in dwarf_formudata; dwarf_formsdata reads it.
    dwarf_dealloc_error(debug(), error);
    Dwarf_Signed signed_value = 0;
    error = nullptr;
    auto ok = dwarf_status(dwarf_formsdata((*attr)->get(), &signed_value, &error), debug(), error,
                           "reading a constant attribute");
    if (!ok) return std::unexpected(ok.error());
    value = static_cast<Dwarf_Unsigned>(signed_value);
  }
  return std::optional<std::uint64_t>(value);
}

Result<std::optional<std::uint64_t>> DwarfIndex::Impl::reference_attribute(Dwarf_Die die, Dwarf_Half name) {
  auto attr = attribute(die, name);
  if (!attr) return std::unexpected(attr.error());
  if (!*attr) return std::optional<std::uint64_t>();
  Dwarf_Off offset = 0;
  Dwarf_Error error = nullptr;
  auto ok = dwarf_status(dwarf_global_formref((*attr)->get(), &offset, &error), debug(), error, "reading a reference");
  if (!ok) return std::unexpected(ok.error());
  return std::optional<std::uint64_t>(offset);
}

Result<std::optional<std::string>> DwarfIndex::Impl::string_attribute(Dwarf_Die die, Dwarf_Half name) {
  auto attr = attribute(die, name);
  if (!attr) return std::unexpected(attr.error());
  if (!*attr) return std::optional<std::string>();
  char* text = nullptr;
  Dwarf_Error error = nullptr;
  auto ok = dwarf_status(dwarf_formstring((*attr)->get(), &text, &error), debug(), error, "reading a string");
  if (!ok) return std::unexpected(ok.error());
  if (!*ok || !text) return std::optional<std::string>();
  return std::optional<std::string>(text);
}

Result<Die> DwarfIndex::Impl::die_at(std::uint64_t offset) {
  Dwarf_Die raw = nullptr;
  Dwarf_Error error = nullptr;
  auto ok = dwarf_status(dwarf_offdie_b(debug(), offset, true, &raw, &error), debug(), error,
                         "reading the DIE at .debug_info offset " + hex(offset));
  if (!ok) return std::unexpected(ok.error());
  if (!*ok) return fail("no DIE at .debug_info offset ", hex(offset));
  return Die(debug(), raw);
}

Result<std::uint64_t> DwarfIndex::Impl::indexed_address(std::uint64_t index, const CompileUnit& unit) {
  ByteReader reader(debug_addr, where(".debug_addr"));
  if (index > debug_addr.size() / 8) return fail(where(".debug_addr index "), std::to_string(index), " out of range");
  if (auto ok = reader.seek(unit.addr_base + index * 8); !ok) return std::unexpected(ok.error());
  return reader.fixed<std::uint64_t>();
}

// One entry of a DWARF 5 range or location list. Both lists encode bounds alike: the location kinds are the range
// kinds with DW_LLE_default_location inserted before DW_LLE_base_address, and a location entry with bounds (or
// the default) is followed by its counted expression.
struct DwarfIndex::Impl::ListEntry {
  enum class Kind : std::uint8_t {
    end,
    base,        // low is the new base address
    offsets,     // [base + low, base + high)
    bounds,      // [low, high)
    everywhere,  // DW_LLE_default_location
  };
  Kind kind = Kind::end;
  std::uint64_t low = 0;
  std::uint64_t high = 0;
  std::span<const std::byte> expression;
};

static_assert(DW_LLE_end_of_list == DW_RLE_end_of_list && DW_LLE_base_addressx == DW_RLE_base_addressx &&
              DW_LLE_startx_endx == DW_RLE_startx_endx && DW_LLE_startx_length == DW_RLE_startx_length &&
              DW_LLE_offset_pair == DW_RLE_offset_pair && DW_LLE_default_location == DW_RLE_base_address &&
              DW_LLE_base_address == DW_RLE_base_address + 1 && DW_LLE_start_end == DW_RLE_start_end + 1 &&
              DW_LLE_start_length == DW_RLE_start_length + 1);

Result<DwarfIndex::Impl::ListEntry> DwarfIndex::Impl::list_entry(ByteReader& reader, const CompileUnit& unit,
                                                                 bool location) {
  const std::string_view section = location ? ".debug_loclists" : ".debug_rnglists";
  FS_TRY(code, reader.fixed<std::uint8_t>());
  unsigned kind = *code;
  ListEntry entry;
  if (location && kind == DW_LLE_default_location) {
    entry.kind = ListEntry::Kind::everywhere;
  } else {
    if (location && kind > DW_LLE_default_location) --kind;  // to the range list's numbering
    switch (kind) {
      case DW_RLE_end_of_list: return entry;
      case DW_RLE_base_addressx: {
        FS_TRY(index, reader.uleb128());
        FS_TRY(address, indexed_address(*index, unit));
        return ListEntry{ListEntry::Kind::base, *address, 0, {}};
      }
      case DW_RLE_base_address: {
        FS_TRY(address, reader.fixed<std::uint64_t>());
        return ListEntry{ListEntry::Kind::base, *address, 0, {}};
      }
      case DW_RLE_startx_endx: {
        FS_TRY(a, reader.uleb128());
        FS_TRY(b, reader.uleb128());
        FS_TRY(low, indexed_address(*a, unit));
        FS_TRY(high, indexed_address(*b, unit));
        entry = {ListEntry::Kind::bounds, *low, *high, {}};
        break;
      }
      case DW_RLE_startx_length: {
        FS_TRY(a, reader.uleb128());
        FS_TRY(length, reader.uleb128());
        FS_TRY(low, indexed_address(*a, unit));
        entry = {ListEntry::Kind::bounds, *low, *low + *length, {}};
        break;
      }
      case DW_RLE_offset_pair: {
        FS_TRY(a, reader.uleb128());
        FS_TRY(b, reader.uleb128());
        entry = {ListEntry::Kind::offsets, *a, *b, {}};
        break;
      }
      case DW_RLE_start_end: {
        FS_TRY(low, reader.fixed<std::uint64_t>());
        FS_TRY(high, reader.fixed<std::uint64_t>());
        entry = {ListEntry::Kind::bounds, *low, *high, {}};
        break;
      }
      case DW_RLE_start_length: {
        FS_TRY(low, reader.fixed<std::uint64_t>());
        FS_TRY(length, reader.uleb128());
        entry = {ListEntry::Kind::bounds, *low, *low + *length, {}};
        break;
      }
      default:
        return fail(where(std::string(section) + ": unknown entry kind "), hex(*code), " at offset ",
                    hex(reader.offset() - 1));
    }
  }
  if (location) {
    FS_TRY(length, reader.uleb128());
    FS_TRY(expression, reader.bytes(*length));
    entry.expression = *expression;
  }
  return entry;
}

Result<std::vector<AddressRange>> DwarfIndex::Impl::range_list(std::uint64_t offset, const CompileUnit& unit) {
  std::vector<AddressRange> ranges;
  std::uint64_t base = unit.base_address;
  auto add = [&](std::uint64_t low, std::uint64_t high) {
    if (high > low) ranges.push_back({low, high});
  };
  if (unit.version < 5) {
    // DWARF 4 .debug_ranges (2.17.3): address pairs, (0,0) ends, (~0, base) selects a new base.
    ByteReader reader(debug_ranges, where(".debug_ranges"));
    if (auto ok = reader.seek(offset); !ok) return std::unexpected(ok.error());
    for (std::size_t n = 0; n < kMaxListEntries; ++n) {
      auto low = reader.fixed<std::uint64_t>();
      if (!low) return std::unexpected(low.error());
      auto high = reader.fixed<std::uint64_t>();
      if (!high) return std::unexpected(high.error());
      if (*low == 0 && *high == 0) return ranges;
      if (*low == ~std::uint64_t{0}) {
        base = *high;
        continue;
      }
      add(base + *low, base + *high);
    }
    return fail(where(".debug_ranges list at "), hex(offset), " has no end");
  }
  // DWARF 5 .debug_rnglists (2.17.3): typed entries.
  ByteReader reader(debug_rnglists, where(".debug_rnglists"));
  if (auto ok = reader.seek(offset); !ok) return std::unexpected(ok.error());
  for (std::size_t n = 0; n < kMaxListEntries; ++n) {
    FS_TRY(entry, list_entry(reader, unit, false));
    switch (entry->kind) {
      case ListEntry::Kind::end: return ranges;
      case ListEntry::Kind::base: base = entry->low; break;
      case ListEntry::Kind::offsets: add(base + entry->low, base + entry->high); break;
      case ListEntry::Kind::bounds: add(entry->low, entry->high); break;
      case ListEntry::Kind::everywhere: break;  // location lists only
    }
  }
  return fail(where(".debug_rnglists list at "), hex(offset), " has no end");
}

Result<std::vector<LocationListEntry>> DwarfIndex::Impl::location_list(std::uint64_t offset, const CompileUnit& unit) {
  std::vector<LocationListEntry> entries;
  std::uint64_t base = unit.base_address;
  auto add = [&](std::uint64_t low, std::uint64_t high, std::span<const std::byte> expression) {
    if (high > low) entries.push_back({{low, high}, std::vector<std::byte>(expression.begin(), expression.end())});
  };
  if (unit.version < 5) {
    // DWARF 4 .debug_loc (2.6.2): pairs relative to the base, then a 2-byte length and the expression.
    ByteReader reader(debug_loc, where(".debug_loc"));
    if (auto ok = reader.seek(offset); !ok) return std::unexpected(ok.error());
    for (std::size_t n = 0; n < kMaxListEntries; ++n) {
      FS_TRY(low, reader.fixed<std::uint64_t>());
      FS_TRY(high, reader.fixed<std::uint64_t>());
      if (*low == 0 && *high == 0) return entries;
      if (*low == ~std::uint64_t{0}) {
        base = *high;
        continue;
      }
      FS_TRY(length, reader.fixed<std::uint16_t>());
      FS_TRY(expression, reader.bytes(*length));
      add(base + *low, base + *high, *expression);
    }
    return fail(where(".debug_loc list at "), hex(offset), " has no end");
  }
  // DWARF 5 .debug_loclists (2.6.2): typed entries, each bounded one followed by its expression.
  ByteReader reader(debug_loclists, where(".debug_loclists"));
  if (auto ok = reader.seek(offset); !ok) return std::unexpected(ok.error());
  for (std::size_t n = 0; n < kMaxListEntries; ++n) {
    FS_TRY(entry, list_entry(reader, unit, true));
    switch (entry->kind) {
      case ListEntry::Kind::end: return entries;
      case ListEntry::Kind::base: base = entry->low; break;
      case ListEntry::Kind::offsets: add(base + entry->low, base + entry->high, entry->expression); break;
      case ListEntry::Kind::bounds: add(entry->low, entry->high, entry->expression); break;
      case ListEntry::Kind::everywhere: add(0, ~std::uint64_t{0}, entry->expression); break;
    }
  }
  return fail(where(".debug_loclists list at "), hex(offset), " has no end");
}

Result<std::vector<AddressRange>> DwarfIndex::Impl::pc_ranges(Dwarf_Die die, const CompileUnit& unit) {
  std::vector<AddressRange> ranges;
  Dwarf_Addr low = 0;
  Dwarf_Error error = nullptr;
  FS_TRY(has_low, dwarf_status(dwarf_lowpc(die, &low, &error), debug(), error, "reading DW_AT_low_pc"));
  if (*has_low) {
    Dwarf_Addr high = 0;
    Dwarf_Half form = 0;
    Dwarf_Form_Class form_class = DW_FORM_CLASS_UNKNOWN;
    error = nullptr;
    FS_TRY(has_high, dwarf_status(dwarf_highpc_b(die, &high, &form, &form_class, &error), debug(), error,
                                  "reading DW_AT_high_pc"));
    if (*has_high) {
      // DWARF 4+: a constant-class high_pc is the size, not an address (2.17.2).
      if (form_class == DW_FORM_CLASS_CONSTANT) high += low;
      if (high > low) ranges.push_back({low, high});
      return ranges;
    }
    // A CU may carry DW_AT_low_pc 0 as the base for its DW_AT_ranges (2.17.3).
  }
  auto attr = attribute(die, DW_AT_ranges);
  if (!attr) return std::unexpected(attr.error());
  if (!*attr) return ranges;
  Dwarf_Half form = 0;
  error = nullptr;
  FS_TRY(has_form, dwarf_status(dwarf_whatform((*attr)->get(), &form, &error), debug(), error, "reading a form"));
  if (form != DW_FORM_sec_offset && form != DW_FORM_data4 && form != DW_FORM_data8)
    return fail(where("DW_AT_ranges form "), hex(form), " is not supported");
  FS_TRY(offset, unsigned_attribute(die, DW_AT_ranges));
  return range_list(offset->value_or(0), unit);
}

Result<LocationAttribute> DwarfIndex::Impl::location_attribute(Dwarf_Die die, Dwarf_Half name,
                                                               const CompileUnit& unit) {
  LocationAttribute location;
  auto attr = attribute(die, name);
  if (!attr) return std::unexpected(attr.error());
  if (!*attr) return location;
  Dwarf_Half form = 0;
  Dwarf_Error error = nullptr;
  FS_TRY(has_form, dwarf_status(dwarf_whatform((*attr)->get(), &form, &error), debug(), error, "reading a form"));
  location.present = true;
  if (form == DW_FORM_exprloc || form == DW_FORM_block1 || form == DW_FORM_block2 || form == DW_FORM_block4 ||
      form == DW_FORM_block) {
    Dwarf_Unsigned length = 0;
    Dwarf_Ptr bytes = nullptr;
    error = nullptr;
    if (form == DW_FORM_exprloc) {
      FS_TRY(ok, dwarf_status(dwarf_formexprloc((*attr)->get(), &length, &bytes, &error), debug(), error,
                              "reading an expression"));
    } else {
      Dwarf_Block* block = nullptr;
      FS_TRY(ok, dwarf_status(dwarf_formblock((*attr)->get(), &block, &error), debug(), error, "reading a block"));
      if (!block) return location;
      length = block->bl_len;
      bytes = block->bl_data;
      // The Dwarf_Block descriptor is allocated per call; its data points into the section.
      std::vector<std::byte> copy(static_cast<const std::byte*>(bytes), static_cast<const std::byte*>(bytes) + length);
      dwarf_dealloc(debug(), block, DW_DLA_BLOCK);
      location.expression = std::move(copy);
      return location;
    }
    const auto* begin = static_cast<const std::byte*>(bytes);
    location.expression.assign(begin, begin + length);
    return location;
  }
  if (form == DW_FORM_sec_offset || form == DW_FORM_data4 || form == DW_FORM_data8) {
    FS_TRY(offset, unsigned_attribute(die, name));
    FS_TRY(list, location_list(offset->value_or(0), unit));
    location.is_list = true;
    location.list = std::move(*list);
    return location;
  }
  return fail(where("location form "), hex(form), " is not supported");
}

Result<Die> DwarfIndex::Impl::origin_of(Dwarf_Die die) {
  for (Dwarf_Half name : {Dwarf_Half{DW_AT_abstract_origin}, Dwarf_Half{DW_AT_specification}}) {
    FS_TRY(offset, reference_attribute(die, name));
    if (*offset) return die_at(**offset);
  }
  return Die();
}

Result<void> DwarfIndex::Impl::names_through_origins(Dwarf_Die die, std::string& name, std::string& linkage_name,
                                                     std::uint64_t* name_die) {
  Die holder;
  Dwarf_Die current = die;
  for (unsigned hop = 0; hop <= kMaxReferenceHops && current; ++hop) {
    if (name.empty()) {
      FS_TRY(found, string_attribute(current, DW_AT_name));
      if (*found) {
        name = **found;
        if (name_die) {
          FS_TRY(offset, offset_of(current));
          *name_die = *offset;
        }
      }
    }
    if (linkage_name.empty()) {
      FS_TRY(found, string_attribute(current, DW_AT_linkage_name));
      if (!*found) {
        FS_TRY(old, string_attribute(current, DW_AT_MIPS_linkage_name));
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

Result<std::uint64_t> DwarfIndex::Impl::offset_of(Dwarf_Die die) {
  Dwarf_Off offset = 0;
  Dwarf_Error error = nullptr;
  FS_TRY(ok, dwarf_status(dwarf_dieoffset(die, &offset, &error), debug(), error, "reading a DIE offset"));
  return std::uint64_t{offset};
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
  auto scope = die_at(die);
  Dwarf_Half tag = 0;
  Dwarf_Error error = nullptr;
  if (scope && dwarf_tag(scope->get(), &tag, &error) == DW_DLV_OK) {
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
      auto own = string_attribute(scope->get(), DW_AT_name);
      if (own && *own) name = **own;
      // gcc's lambda closures are unnamed classes inside the function that writes them.
      const bool in_function = parent && [&] {
        auto parent_die = die_at(*parent);
        Dwarf_Half parent_tag = 0;
        Dwarf_Error parent_error = nullptr;
        return parent_die && dwarf_tag(parent_die->get(), &parent_tag, &parent_error) == DW_DLV_OK &&
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

std::string DwarfIndex::Impl::type_name_of(Dwarf_Die die, std::uint64_t& size_bytes, bool& is_scalar) {
  // Simple names only (base types, pointers, typedef names): cheap, and enough for an argument list.
  size_bytes = 0;
  is_scalar = false;
  std::string prefix, suffix;
  Die holder;
  auto type_offset = reference_attribute(die, DW_AT_type);
  if (!type_offset || !*type_offset) return "void";
  auto next = die_at(**type_offset);
  if (!next) return "?";
  holder = std::move(*next);
  bool size_known = false;
  std::optional<std::string> typedef_name;  // shown instead of what it names; the chain is still followed for size
  for (unsigned hop = 0; hop <= kMaxReferenceHops && holder; ++hop) {
    Dwarf_Half tag = 0;
    Dwarf_Error error = nullptr;
    if (dwarf_tag(holder.get(), &tag, &error) != DW_DLV_OK) {
      if (error) dwarf_dealloc_error(debug(), error);
      return "?";
    }
    if (!size_known) {
      if (auto size = unsigned_attribute(holder.get(), DW_AT_byte_size); size && *size) {
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
    auto name = string_attribute(holder.get(), DW_AT_name);
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
    auto inner = reference_attribute(holder.get(), DW_AT_type);
    if (!inner || !*inner) return typedef_name.value_or(prefix + "void" + suffix);
    auto die_next = die_at(**inner);
    if (!die_next) return "?";
    holder = std::move(*die_next);
  }
  return prefix + "?" + suffix;
}

Result<std::optional<VariableInfo>> DwarfIndex::Impl::make_variable(Dwarf_Die die, Dwarf_Half tag,
                                                                    const CompileUnit& unit) {
  FS_TRY(declaration, unsigned_attribute(die, DW_AT_declaration));
  if (*declaration && **declaration) return std::optional<VariableInfo>();
  VariableInfo variable;
  variable.is_parameter = tag == DW_TAG_formal_parameter;
  std::string unused_linkage;
  FS_TRY(names, names_through_origins(die, variable.name, unused_linkage));
  // The type lives on the abstract origin for inlined and out-of-line instances.
  Die origin_holder;
  Dwarf_Die typed = die;
  for (unsigned hop = 0; hop < kMaxReferenceHops; ++hop) {
    FS_TRY(has_type, reference_attribute(typed, DW_AT_type));
    if (*has_type) break;
    FS_TRY(origin, origin_of(typed));
    if (!*origin) break;
    origin_holder = std::move(*origin);
    typed = origin_holder.get();
  }
  variable.type_name = type_name_of(typed, variable.size_bytes, variable.is_scalar);
  FS_TRY(location, location_attribute(die, DW_AT_location, unit));
  variable.location = std::move(*location);
  if (!variable.location.present) {
    // A constant folded away: DW_AT_const_value becomes an equivalent expression (constu; stack_value).
    FS_TRY(constant, unsigned_attribute(die, DW_AT_const_value));
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
    auto attr = attribute(die, DW_AT_call_return_pc);
    if (!attr) return std::unexpected(attr.error());
    if (*attr) {
      Dwarf_Error error = nullptr;
      FS_TRY(ok, dwarf_status(dwarf_formaddr((*attr)->get(), &return_pc, &error), debug(), error,
                              "reading DW_AT_call_return_pc"));
    } else {
      Dwarf_Error error = nullptr;
      FS_TRY(ok, dwarf_status(dwarf_lowpc(die, &return_pc, &error), debug(), error, "reading a call site's low_pc"));
      if (!*ok) return {};
    }
  }
  CallSiteInfo site;
  site.function_index = function_index;
  // What the site calls (GNU call sites name it with DW_AT_abstract_origin and DW_AT_GNU_call_site_target).
  FS_TRY(origin, reference_attribute(die, DW_AT_call_origin));
  if (!*origin) {
    FS_TRY(gnu_origin, reference_attribute(die, DW_AT_abstract_origin));
    origin = std::move(gnu_origin);
  }
  site.origin_offset = origin->value_or(0);
  FS_TRY(target, location_attribute(die, DW_AT_call_target, unit));
  if (!target->present) {
    FS_TRY(gnu_target, location_attribute(die, DW_AT_GNU_call_site_target, unit));
    target = std::move(gnu_target);
  }
  if (target->present && !target->is_list) site.target = std::move(target->expression);
  Dwarf_Die raw_child = nullptr;
  Dwarf_Error error = nullptr;
  FS_TRY(has_child, dwarf_status(dwarf_child(die, &raw_child, &error), debug(), error, "reading call site parameters"));
  Die child(debug(), *has_child ? raw_child : nullptr);
  for (std::size_t n = 0; child && n < 256; ++n) {
    Dwarf_Half tag = 0;
    error = nullptr;
    FS_TRY(tag_ok, dwarf_status(dwarf_tag(child.get(), &tag, &error), debug(), error, "reading a tag"));
    if (tag == DW_TAG_call_site_parameter || tag == DW_TAG_GNU_call_site_parameter) {
      FS_TRY(location, location_attribute(child.get(), DW_AT_location, unit));
      FS_TRY(value, location_attribute(child.get(), DW_AT_call_value, unit));
      if (!value->present) {
        FS_TRY(gnu_value, location_attribute(child.get(), DW_AT_GNU_call_site_value, unit));
        value = std::move(gnu_value);
      }
      if (location->present && !location->is_list && value->present && !value->is_list)
        site.parameters.push_back({std::move(location->expression), std::move(value->expression)});
    }
    Dwarf_Die raw_next = nullptr;
    error = nullptr;
    FS_TRY(has_next, dwarf_status(dwarf_siblingof_b(debug(), child.get(), true, &raw_next, &error), debug(), error,
                                  "reading call site parameters"));
    child = Die(debug(), *has_next ? raw_next : nullptr);
  }
  unit.call_sites[return_pc] = std::move(site);
  return {};
}

Result<Scope> DwarfIndex::Impl::make_scope(Dwarf_Die die, Dwarf_Half tag, CompileUnit& unit,
                                           std::vector<AddressRange> ranges) {
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
    FS_TRY(file, unsigned_attribute(die, DW_AT_call_file));
    FS_TRY(line, unsigned_attribute(die, DW_AT_call_line));
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
  Dwarf_Die raw_child = nullptr;
  Dwarf_Error error = nullptr;
  FS_TRY(has_child, dwarf_status(dwarf_child(die, &raw_child, &error), debug(), error, "reading DIE children"));
  Die child(debug(), *has_child ? raw_child : nullptr);
  while (child) {
    if (budget-- == 0) return fail(where("more than "), std::to_string(kMaxDiesPerUnit), " DIEs in one unit");
    Dwarf_Half tag = 0;
    error = nullptr;
    FS_TRY(tag_ok, dwarf_status(dwarf_tag(child.get(), &tag, &error), debug(), error, "reading a tag"));
    FS_TRY(visited, visit(child.get(), tag));
    Dwarf_Die raw_next = nullptr;
    error = nullptr;
    FS_TRY(has_next, dwarf_status(dwarf_siblingof_b(debug(), child.get(), true, &raw_next, &error), debug(), error,
                                  "reading DIE siblings"));
    child = Die(debug(), *has_next ? raw_next : nullptr);
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
        Dwarf_Off offset = 0;
        Dwarf_Error error = nullptr;
        FS_TRY(has_offset, dwarf_status(dwarf_dieoffset(child, &offset, &error), debug(), error,
                                        "reading a DIE offset"));
        if (*has_offset) nested_definitions.push_back(offset);
        break;
      }
      default:
        break;  // imported modules, labels, nested types without code: not needed for frames
    }
    return {};
  });
}

Result<void> DwarfIndex::Impl::walk_top(Dwarf_Die die, CompileUnit& unit, unsigned depth, std::size_t& budget) {
  FS_TRY(parent, offset_of(die));
  return for_each_child(die, depth, budget, [&](Dwarf_Die child, Dwarf_Half tag) -> Result<void> {
    if (tag == DW_TAG_subprogram || tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
        tag == DW_TAG_structure_type || tag == DW_TAG_union_type) {
      FS_TRY(offset, offset_of(child));
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
      FS_TRY(inline_kind, unsigned_attribute(die, DW_AT_inline));
      if (!*inline_kind) return {};
      std::vector<std::uint64_t> local_types;
      FS_TRY(collected, collect_local_types(die, depth + 1, budget, local_types));
      FS_TRY(function_offset, offset_of(die));
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
    FS_TRY(function_offset, offset_of(die));
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
      FS_TRY(offset, offset_of(child));
      types.push_back(*offset);
    }
    return {};
  });
}

Result<void> DwarfIndex::Impl::walk_nested(std::vector<std::uint64_t>& offsets, CompileUnit& unit, unsigned depth,
                                           std::size_t& budget) {
  for (std::uint64_t offset : offsets) {
    FS_TRY(die, die_at(offset));
    Dwarf_Half tag = 0;
    Dwarf_Error error = nullptr;
    FS_TRY(tag_ok, dwarf_status(dwarf_tag(die->get(), &tag, &error), debug(), error, "reading a tag"));
    FS_TRY(ok, walk_definition(die->get(), tag, unit, depth, budget));
  }
  return {};
}

Result<void> DwarfIndex::Impl::load_lines(Dwarf_Die cu_die, CompileUnit& unit) {
  FS_TRY(line_offset, unsigned_attribute(cu_die, DW_AT_stmt_list));
  if (!*line_offset) return {};
  if (auto ok = check_line_table_counts(debug_line, **line_offset); !ok) return ok;
  Dwarf_Unsigned version = 0;
  Dwarf_Small table_count = 0;
  Dwarf_Line_Context context = nullptr;
  Dwarf_Error error = nullptr;
  FS_TRY(has_lines, dwarf_status(dwarf_srclines_b(cu_die, &version, &table_count, &context, &error), debug(), error,
                                 "reading the line table"));
  if (!*has_lines) return {};
  // The line context owns the Dwarf_Line array; dwarf_srclines_dealloc_b frees both.
  struct ContextOwner {
    Dwarf_Line_Context context;
    ~ContextOwner() { dwarf_srclines_dealloc_b(context); }
  } owner{context};
  if (auto ok = check_file_directories(debug(), context, version); !ok) return ok;
  // The file table for DW_AT_call_file. dwarf_srcfiles allocates each string and the array; we copy and free.
  {
    char** files = nullptr;
    Dwarf_Signed count = 0;
    error = nullptr;
    FS_TRY(has_files, dwarf_status(dwarf_srcfiles(cu_die, &files, &count, &error), debug(), error,
                                   "reading the source file table"));
    if (*has_files) {
      for (Dwarf_Signed i = 0; i < count; ++i) {
        unit.source_files.emplace_back(files[i] ? files[i] : "?");
        dwarf_dealloc(debug(), files[i], DW_DLA_STRING);
      }
      dwarf_dealloc(debug(), files, DW_DLA_LIST);
    }
  }
  Dwarf_Line* lines = nullptr;
  Dwarf_Signed count = 0;
  error = nullptr;
  FS_TRY(has_rows, dwarf_status(dwarf_srclines_from_linecontext(context, &lines, &count, &error), debug(), error,
                                "reading line rows"));
  if (!*has_rows || count <= 0) return {};
  if (static_cast<std::uint64_t>(count) > kMaxLineRows) return fail(where("line table has too many rows"));
  std::unordered_map<Dwarf_Unsigned, std::uint32_t> file_slots;
  unit.rows.reserve(static_cast<std::size_t>(count));
  for (Dwarf_Signed i = 0; i < count; ++i) {
    LineRow row;
    Dwarf_Addr address = 0;
    Dwarf_Unsigned line = 0, file_number = 0;
    Dwarf_Bool end_sequence = false;
    error = nullptr;
    FS_TRY(a, dwarf_status(dwarf_lineaddr(lines[i], &address, &error), debug(), error, "reading a line address"));
    error = nullptr;
    FS_TRY(b, dwarf_status(dwarf_lineno(lines[i], &line, &error), debug(), error, "reading a line number"));
    error = nullptr;
    FS_TRY(c, dwarf_status(dwarf_line_srcfileno(lines[i], &file_number, &error), debug(), error,
                           "reading a line's file"));
    error = nullptr;
    FS_TRY(d, dwarf_status(dwarf_lineendsequence(lines[i], &end_sequence, &error), debug(), error,
                           "reading a line row"));
    auto slot = file_slots.find(file_number);
    if (slot == file_slots.end()) {
      // dwarf_linesrc allocates the joined path; one call per distinct file, not per row.
      char* name = nullptr;
      error = nullptr;
      std::string text = "?";
      if (dwarf_linesrc(lines[i], &name, &error) == DW_DLV_OK && name) {
        text = name;
        dwarf_dealloc(debug(), name, DW_DLA_STRING);
      } else if (error) {
        dwarf_dealloc_error(debug(), error);
      }
      unit.line_files.push_back(std::move(text));
      slot = file_slots.emplace(file_number, static_cast<std::uint32_t>(unit.line_files.size() - 1)).first;
    }
    row.address = address;
    row.line = static_cast<unsigned>(line);
    row.file = slot->second;
    row.end_sequence = end_sequence;
    unit.rows.push_back(row);
  }
  // Sequences may come in any order; an end_sequence row sorts before a row that starts at the same address.
  std::stable_sort(unit.rows.begin(), unit.rows.end(), [](const LineRow& a, const LineRow& b) {
    if (a.address != b.address) return a.address < b.address;
    return a.end_sequence && !b.end_sequence;
  });
  return {};
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
  Dwarf_Half version = 0, offset_size = 0;
  Dwarf_Error error = nullptr;
  FS_TRY(has_version, dwarf_status(dwarf_get_version_of_die(cu_die, &version, &offset_size), debug(), error,
                                   "reading a CU's version"));
  unit.version = version;
  Dwarf_Addr low = 0;
  error = nullptr;
  FS_TRY(has_low, dwarf_status(dwarf_lowpc(cu_die, &low, &error), debug(), error, "reading a CU's low_pc"));
  unit.base_address = *has_low ? low : 0;
  FS_TRY(addr_base, unsigned_attribute(cu_die, DW_AT_addr_base));
  unit.addr_base = addr_base->value_or(0);
  FS_TRY(language, unsigned_attribute(cu_die, DW_AT_language));
  const std::uint64_t lang = language->value_or(0);
  constexpr std::uint64_t kLangC17 = 0x2c;  // DWARF 6's DW_LANG_C17, newer than this libdwarf
  unit.plain_c = lang == DW_LANG_C89 || lang == DW_LANG_C || lang == DW_LANG_C99 || lang == DW_LANG_C11 ||
                 lang == kLangC17;
  return {};
}

Result<bool> DwarfIndex::Impl::index_units_from_aranges() {
  // .debug_aranges (DWARF 5 6.1.2) maps address ranges to CU header offsets without reading any DIE: opening a
  // large debug file (libc's has ~1800 units) costs a table walk instead of one libdwarf CU visit per unit.
  if (debug_aranges.empty() || debug_info.empty()) return false;
  ByteReader reader(debug_aranges, where(".debug_aranges"));
  std::unordered_map<std::uint64_t, std::size_t> unit_by_header;
  for (std::size_t n = 0; !reader.at_end(); ++n) {
    if (n >= kMaxCompileUnits) return fail(where(".debug_aranges has too many sets"));
    const std::size_t set_start = reader.offset();
    FS_TRY(length32, reader.fixed<std::uint32_t>());
    std::uint64_t length = *length32;
    bool offset64 = false;
    if (*length32 == 0xffffffff) {
      FS_TRY(length64, reader.fixed<std::uint64_t>());
      length = *length64;
      offset64 = true;
    }
    const std::size_t body_start = reader.offset();
    if (length > reader.remaining()) return fail(where(".debug_aranges set at "), hex(set_start), " is truncated");
    const std::size_t set_end = body_start + static_cast<std::size_t>(length);
    FS_TRY(version, reader.fixed<std::uint16_t>());
    std::uint64_t info_offset = 0;
    if (offset64) {
      FS_TRY(value, reader.fixed<std::uint64_t>());
      info_offset = *value;
    } else {
      FS_TRY(value, reader.fixed<std::uint32_t>());
      info_offset = *value;
    }
    FS_TRY(address_size, reader.fixed<std::uint8_t>());
    FS_TRY(segment_size, reader.fixed<std::uint8_t>());
    if (*version != 2 || *address_size != 8 || *segment_size != 0) {
      if (auto ok = reader.seek(set_end); !ok) return std::unexpected(ok.error());
      continue;
    }
    // Tuples start at a multiple of twice the address size from the set's start.
    const std::size_t tuples = set_start + ((reader.offset() - set_start + 15) / 16) * 16;
    if (auto ok = reader.seek(std::min(tuples, set_end)); !ok) return std::unexpected(ok.error());
    // The CU DIE follows the unit header: 4+2+1+1+4 bytes (DWARF 5) or 4+2+4+1 (DWARF 2-4), 8 more each for 64-bit.
    ByteReader header(debug_info, where(".debug_info"));
    if (auto ok = header.seek(info_offset); !ok) return std::unexpected(ok.error());
    FS_TRY(unit_length, header.fixed<std::uint32_t>());
    if (*unit_length == 0xffffffff) {
      FS_TRY(skip, header.fixed<std::uint64_t>());
    }
    FS_TRY(unit_version, header.fixed<std::uint16_t>());
    const bool unit64 = *unit_length == 0xffffffff;
    const std::uint64_t header_size = (unit64 ? 12 : 4) + 2 + (*unit_version >= 5 ? 2 : 1) + (unit64 ? 8 : 4);
    auto [slot, inserted] = unit_by_header.try_emplace(info_offset, units.size());
    if (inserted) {
      CompileUnit unit;
      unit.die_offset = info_offset + header_size;
      unit.version = *unit_version;
      units.push_back(std::move(unit));
    }
    CompileUnit& unit = units[slot->second];
    for (std::size_t t = 0; reader.offset() + 16 <= set_end; ++t) {
      if (t >= kMaxListEntries) return fail(where(".debug_aranges set at "), hex(set_start), " has too many ranges");
      FS_TRY(address, reader.fixed<std::uint64_t>());
      FS_TRY(size, reader.fixed<std::uint64_t>());
      if (*address == 0 && *size == 0) break;
      if (*size != 0 && *address + *size > *address) unit.ranges.push_back({*address, *address + *size});
    }
    if (auto ok = reader.seek(set_end); !ok) return std::unexpected(ok.error());
  }
  std::erase_if(units, [](const CompileUnit& unit) { return unit.ranges.empty(); });
  return !units.empty();
}

// The number of unit headers in .debug_info (following unit lengths only; a last unit whose length overruns the
// section counts: its error is reported when it is read), capped at kMaxCompileUnits.
std::size_t count_unit_headers(std::span<const std::byte> debug_info) {
  ByteReader reader(debug_info, ".debug_info");
  std::size_t count = 0;
  while (count < kMaxCompileUnits && !reader.at_end()) {
    auto length32 = reader.fixed<std::uint32_t>();
    if (!length32) break;
    ++count;
    auto length = *length32 == 0xffffffff ? reader.fixed<std::uint64_t>() : Result<std::uint64_t>(*length32);
    if (!length || !reader.bytes(*length)) break;
  }
  return count;
}

Result<void> DwarfIndex::Impl::index_units() {
  auto from_aranges = index_units_from_aranges();
  // Go's linker writes no .debug_aranges sets: in a cgo binary the table names gcc's units only. It is trusted
  // only when it names every unit.
  if (from_aranges && *from_aranges && units.size() == count_unit_headers(debug_info)) {
    for (std::size_t i = 0; i < units.size(); ++i)
      for (const auto& range : units[i].ranges) unit_ranges.push_back({range, i});
    std::sort(unit_ranges.begin(), unit_ranges.end(),
              [](const auto& a, const auto& b) { return a.first.low < b.first.low; });
    return {};
  }
  // No usable .debug_aranges (clang omits it by default, or it is corrupt): visit every CU DIE instead.
  units.clear();
  for (std::size_t n = 0;; ++n) {
    if (n >= kMaxCompileUnits) return fail(where("more than "), std::to_string(kMaxCompileUnits), " compile units");
    Dwarf_Unsigned header_length = 0, type_offset = 0, next_offset = 0;
    Dwarf_Half version = 0, address_size = 0, length_size = 0, extension_size = 0, unit_type = 0;
    Dwarf_Off abbrev_offset = 0;
    Dwarf_Sig8 signature;
    Dwarf_Error error = nullptr;
    FS_TRY(has_unit,
           dwarf_status(dwarf_next_cu_header_d(debug(), true, &header_length, &version, &abbrev_offset, &address_size,
                                               &length_size, &extension_size, &signature, &type_offset,
                                               &next_offset, &unit_type, &error),
                        debug(), error, where("reading compile unit headers")));
    if (!*has_unit) break;
    Dwarf_Die raw = nullptr;
    error = nullptr;
    FS_TRY(has_die, dwarf_status(dwarf_siblingof_b(debug(), nullptr, true, &raw, &error), debug(), error,
                                 where("reading a compile unit DIE")));
    if (!*has_die) continue;
    Die cu_die(debug(), raw);
    if (address_size != 8) continue;  // not x86-64 code
    CompileUnit unit;
    Dwarf_Off offset = 0;
    error = nullptr;
    FS_TRY(has_offset, dwarf_status(dwarf_dieoffset(cu_die.get(), &offset, &error), debug(), error,
                                    "reading a DIE offset"));
    unit.die_offset = offset;
    FS_TRY(attributes, read_unit_attributes(unit, cu_die.get()));
    auto ranges = pc_ranges(cu_die.get(), unit);
    // A unit whose ranges cannot be read is left out of the index rather than failing the whole file.
    if (!ranges || ranges->empty()) continue;
    unit.ranges = std::move(*ranges);
    units.push_back(std::move(unit));
  }
  for (std::size_t i = 0; i < units.size(); ++i)
    for (const auto& range : units[i].ranges) unit_ranges.push_back({range, i});
  std::sort(unit_ranges.begin(), unit_ranges.end(),
            [](const auto& a, const auto& b) { return a.first.low < b.first.low; });
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
    FS_TRY(cu_die, die_at(unit.die_offset));
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
                                    variable.is_scalar, variable.location.at(pc)});
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
  impl.debug_loc = section_bytes(".debug_loc");
  impl.debug_loclists = section_bytes(".debug_loclists");
  impl.debug_ranges = section_bytes(".debug_ranges");
  impl.debug_rnglists = section_bytes(".debug_rnglists");
  impl.debug_addr = section_bytes(".debug_addr");
  impl.debug_aranges = section_bytes(".debug_aranges");
  impl.debug_info = section_bytes(".debug_info");
  impl.debug_line = section_bytes(".debug_line");
  for (auto [name, bytes] :
       {std::pair{".debug_rnglists", impl.debug_rnglists}, {".debug_loclists", impl.debug_loclists}}) {
    if (auto ok = check_list_table_headers(bytes, name); !ok)
      return std::unexpected(ok.error().with_context(image.path()));
  }
  impl.session.fd_ = ::open(image.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (impl.session.fd_ < 0) return fail(image.path(), ": cannot open for DWARF: ", std::strerror(errno));
  Dwarf_Error error = nullptr;
  // No error handler: every failure comes back as DW_DLV_ERROR (a handler would abort the process).
  auto ok = dwarf_status(dwarf_init_b(impl.session.fd_, DW_DLC_READ, DW_GROUPNUMBER_ANY, nullptr, nullptr,
                                      &impl.session.debug_, &error),
                         nullptr, error, image.path() + ": libdwarf cannot read the DWARF");
  if (!ok) return std::unexpected(ok.error());
  if (!*ok) return fail(image.path(), ": no DWARF debug information");
  if (auto indexed = impl.index_units(); !indexed) return std::unexpected(indexed.error());
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
    if (auto callee = impl_->die_at(found->second.origin_offset)) {
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
