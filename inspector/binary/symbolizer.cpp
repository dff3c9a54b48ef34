#include "binary/symbolizer.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

#include "base/hex.h"

namespace fiberscope::binary {
namespace {

// Values bigger than this are shown by address, not read.
constexpr std::uint64_t kMaxValueBytes = 64;

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::vector<std::byte> little_endian(std::uint64_t value, std::uint64_t size_bytes) {
  std::vector<std::byte> bytes(std::min<std::uint64_t>(size_bytes, 8));
  std::memcpy(bytes.data(), &value, bytes.size());
  return bytes;
}

}  // namespace

std::string format_value(std::span<const std::byte> bytes, std::string_view type_name, bool is_scalar,
                         bool is_pointer) {
  if (!is_scalar || bytes.empty() || bytes.size() > 8) {
    std::string text = "{";
    static const char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < bytes.size() && i < 16; ++i) {
      const auto byte = std::to_integer<unsigned>(bytes[i]);
      if (i) text += ' ';
      text += digits[byte >> 4];
      text += digits[byte & 15];
    }
    if (bytes.size() > 16) text += " ...";
    return text + "}";
  }
  std::uint64_t raw = 0;
  std::memcpy(&raw, bytes.data(), bytes.size());
  if (is_pointer || ends_with(type_name, "*") || ends_with(type_name, "&")) return hex(raw);
  if (type_name == "bool" || type_name == "_Bool") return raw ? "true" : "false";
  if (type_name == "float" && bytes.size() == 4) {
    float value;
    std::memcpy(&value, bytes.data(), 4);
    return std::to_string(value);
  }
  if (type_name == "double" && bytes.size() == 8) {
    double value;
    std::memcpy(&value, bytes.data(), 8);
    return std::to_string(value);
  }
  // Signedness is guessed from the name: DWARF's DW_AT_encoding is not carried this far (kept cheap).
  const bool is_unsigned = type_name.find("unsigned") != std::string_view::npos ||
                           type_name.find("size_t") != std::string_view::npos ||
                           type_name.find("uint") != std::string_view::npos;
  std::string text;
  if (is_unsigned) {
    text = std::to_string(raw);
  } else {
    const unsigned shift = static_cast<unsigned>(64 - 8 * bytes.size());
    const auto value = static_cast<std::int64_t>(raw << shift) >> shift;  // sign-extend from the value's width
    text = std::to_string(value);
  }
  if (bytes.size() == 1 && ends_with(type_name, "char") && raw >= 0x20 && raw < 0x7f)
    text += std::string(" '") + static_cast<char>(raw) + "'";
  return text;
}

struct Symbolizer::Impl {
  SymbolizerOptions options;
  std::vector<Module> modules;  // sorted by range.start
  std::map<std::string, std::unique_ptr<ElfImage>> images;  // by path: every file opened once
  struct DwarfState {
    bool looked_up = false;
    const ElfImage* debug_image = nullptr;
    std::unique_ptr<DwarfIndex> index;
    std::string error;  // why there is no index
  };
  std::vector<DwarfState> dwarf;  // parallel to modules
  struct GoTableState {
    bool looked_up = false;
    std::unique_ptr<GoPclntab> table;
    std::string error;  // why there is no table
  };
  std::vector<GoTableState> go_tables;  // parallel to modules
  std::unordered_map<std::uint64_t, Symbolization> by_pc;
  // DWARF frames (with their variables' location expressions) by target pc: every fiber parked at the same call
  // chain asks for the same few pcs, and parsing them out of the CU costs far more than evaluating them.
  std::unordered_map<std::uint64_t, Result<std::vector<DwarfFrame>>> frames_by_pc;
  std::size_t indexes_loaded = 0;

  const ElfImage* open_image(const std::string& path, std::string* error) {
    auto found = images.find(path);
    if (found != images.end()) return found->second.get();
    auto image = ElfImage::open(path);
    if (!image) {
      if (error) *error = image.error().message;
      return nullptr;
    }
    return images.emplace(path, std::move(*image)).first->second.get();
  }

  std::size_t index_of(const Module& module) const { return static_cast<std::size_t>(&module - modules.data()); }
  // The symbol tables: the file's own, else the separate debug file's (a stripped file keeps only .dynsym).
  std::optional<ElfSymbol> symbol_containing(const Module& module, std::uint64_t file_pc) {
    std::optional<ElfSymbol> symbol;
    if (module.image) symbol = module.image->symbol_containing(file_pc);
    const ElfImage* debug = dwarf[index_of(module)].debug_image;
    if (debug && debug != module.image) {
      auto debug_symbol = debug->symbol_containing(file_pc);
      if (debug_symbol && (!symbol || debug_symbol->address > symbol->address)) symbol = debug_symbol;
    }
    return symbol;
  }
  const ElfImage* find_debug_image(const Module& module, std::string& why);
  DwarfIndex* index_for(const Module& module, std::string& why);
  // The call site returning to `return_address` (a target address), cached: entry values of every fiber parked
  // under the same caller ask for it again.
  std::unordered_map<std::uint64_t, Result<std::optional<DwarfCallSite>>> call_sites_by_return_address;
  const Result<std::optional<DwarfCallSite>>& call_site(DwarfIndex& index, const Module& module,
                                                       std::uint64_t return_address) {
    auto cached = call_sites_by_return_address.find(return_address);
    if (cached != call_sites_by_return_address.end()) return cached->second;
    return call_sites_by_return_address.emplace(return_address, index.call_site(return_address - module.load_bias))
        .first->second;
  }
  // index.frames_at(pc - module.load_bias), cached by pc.
  const Result<std::vector<DwarfFrame>>& frames_at(DwarfIndex& index, const Module& module, std::uint64_t pc) {
    auto cached = frames_by_pc.find(pc);
    if (cached != frames_by_pc.end()) return cached->second;
    return frames_by_pc.emplace(pc, index.frames_at(pc - module.load_bias)).first->second;
  }
};

Symbolizer::Symbolizer(const std::vector<target::Mapping>& mappings, SymbolizerOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  // Group the mappings of each file; the module spans all of them.
  std::map<std::string, std::vector<const target::Mapping*>> by_path;
  for (const target::Mapping& mapping : mappings) {
    if (mapping.path.empty() || mapping.path.front() == '[') continue;  // anonymous, [stack], [vdso]...
    by_path[mapping.path].push_back(&mapping);
  }
  for (auto& [path, parts] : by_path) {
    std::sort(parts.begin(), parts.end(), [](auto* a, auto* b) { return a->range.start < b->range.start; });
    const bool executable = std::any_of(parts.begin(), parts.end(), [](auto* m) { return m->executable; });
    Module module;
    module.path = path;
    module.range = {parts.front()->range.start, parts.back()->range.end};
    for (const target::Mapping* part : parts)
      if (!part->open_path.empty()) module.opened_from = part->open_path;
    module.image = impl_->open_image(module.opened_from.empty() ? path : module.opened_from, &module.error);
    if (!module.image && !executable) continue;  // data files (locale archives, fonts): not code, not ours
    if (module.image) {
      // A mapping at file offset X shows the PT_LOAD segment that contains X; the distance between where it is
      // and where the segment says it should be is the load bias (0 for a non-PIE executable).
      bool found = false;
      for (const target::Mapping* mapping : parts) {
        for (const ElfSegment& segment : module.image->load_segments()) {
          const std::uint64_t page_start = segment.file_offset & ~std::uint64_t{4095};
          if (mapping->file_offset < page_start ||
              mapping->file_offset >= segment.file_offset + std::max<std::uint64_t>(segment.file_size_bytes, 1))
            continue;
          const std::uint64_t file_vaddr = segment.vaddr + mapping->file_offset - segment.file_offset;
          module.load_bias = mapping->range.start.value() - file_vaddr;
          found = true;
          break;
        }
        if (found) break;
      }
      if (!found) {
        module.error = path + ": no mapping matches a PT_LOAD segment; load bias unknown";
        if (module.image->is_shared_object()) module.image = nullptr;
      }
    }
    impl_->modules.push_back(std::move(module));
  }
  std::sort(impl_->modules.begin(), impl_->modules.end(),
            [](const Module& a, const Module& b) { return a.range.start < b.range.start; });
  impl_->dwarf.resize(impl_->modules.size());
  impl_->go_tables.resize(impl_->modules.size());
}

Symbolizer::~Symbolizer() = default;

const std::vector<Module>& Symbolizer::modules() const { return impl_->modules; }

const Module* Symbolizer::module_at(std::uint64_t address) const {
  const auto& modules = impl_->modules;
  auto above = std::upper_bound(modules.begin(), modules.end(), address,
                                [](std::uint64_t a, const Module& m) { return a < m.range.start.value(); });
  if (above == modules.begin()) return nullptr;
  const Module& candidate = *std::prev(above);
  return candidate.range.contains(target::RemoteAddress(address)) ? &candidate : nullptr;
}

const ElfImage* Symbolizer::Impl::find_debug_image(const Module& module, std::string& why) {
  if (!module.image) {
    why = module.error;
    return nullptr;
  }
  if (module.image->has_dwarf()) return module.image;
  if (!options.use_separate_debug_files) {
    why = "no DWARF in " + module.path + " (separate debug files not used)";
    return nullptr;
  }
  const auto build_id = module.image->build_id();
  std::vector<std::string> candidates;
  if (build_id && build_id->size() > 2)
    for (const std::string& root : options.debug_directories)
      candidates.push_back(root + "/.build-id/" + build_id->substr(0, 2) + "/" + build_id->substr(2) + ".debug");
  if (auto link = module.image->debuglink(); link && link->find('/') == std::string::npos) {
    const std::string dir = directory_of(module.path);
    candidates.push_back(dir + "/" + *link);
    candidates.push_back(dir + "/.debug/" + *link);
    for (const std::string& root : options.debug_directories) candidates.push_back(root + dir + "/" + *link);
  }
  for (const std::string& candidate : candidates) {
    if (candidate == module.path) continue;
    const ElfImage* image = open_image(candidate, nullptr);
    // A debug file with only a .symtab still names what the stripped file cannot (static functions, __restore_rt).
    if (!image || (!image->has_dwarf() && !image->section(".symtab"))) continue;
    // A debug file for another build would give confidently wrong answers: the build-ids must agree.
    if (build_id && image->build_id() && *image->build_id() != *build_id) continue;
    return image;
  }
  why = "no DWARF in " + module.path + (candidates.empty() ? "" : " nor in a separate debug file");
  return nullptr;
}

DwarfIndex* Symbolizer::Impl::index_for(const Module& module, std::string& why) {
  DwarfState& state = dwarf[index_of(module)];
  if (!state.looked_up) {
    state.looked_up = true;
    state.debug_image = find_debug_image(module, state.error);
    if (state.debug_image && !state.debug_image->has_dwarf())
      state.error = "no DWARF in " + module.path + " nor in its debug file " + state.debug_image->path();
    if (state.debug_image && state.debug_image->has_dwarf()) {
      auto index = DwarfIndex::open(*state.debug_image);
      if (index) {
        state.index = std::move(*index);
        ++indexes_loaded;
      } else {
        state.error = index.error().message;
      }
    }
  }
  why = state.error;
  return state.index.get();
}

const ElfImage* Symbolizer::debug_image(const Module& module) {
  std::string why;
  impl_->index_for(module, why);
  return impl_->dwarf[impl_->index_of(module)].debug_image;
}

Result<target::RemoteAddress> Symbolizer::symbol_address(std::string_view name) const {
  for (const Module& module : impl_->modules) {
    if (!module.image) continue;
    auto symbol = module.image->find_symbol(name);
    if (!symbol) continue;
    auto address = target::RemoteAddress(symbol->address).checked_add(module.load_bias);
    if (!address) return fail("symbol ", name, " in ", module.path, ": address wraps with the load bias");
    return *address;
  }
  return fail("symbol ", name, " not found in any of ", std::to_string(impl_->modules.size()), " mapped modules");
}

const GoPclntab* Symbolizer::go_pclntab(const Module& module, std::string* error) {
  Impl::GoTableState& state = impl_->go_tables[impl_->index_of(module)];
  if (!state.looked_up) {
    state.looked_up = true;
    if (!module.image) {
      state.error = module.error;
    } else if (auto table = GoPclntab::from_image(*module.image)) {
      state.table = std::move(*table);
    } else {
      state.error = table.error().message;
    }
  }
  if (error) *error = state.error;
  return state.table.get();
}

const Symbolization& Symbolizer::symbolize(std::uint64_t pc) {
  auto cached = impl_->by_pc.find(pc);
  if (cached != impl_->by_pc.end()) return cached->second;
  Symbolization result;
  const Module* module = module_at(pc);
  if (!module) {
    result.frames.push_back(SymbolizedFrame{});
    result.note = "no module mapped at " + hex(pc);
    return impl_->by_pc.emplace(pc, std::move(result)).first->second;
  }
  const std::uint64_t file_pc = pc - module->load_bias;
  std::string why;
  if (DwarfIndex* index = impl_->index_for(*module, why)) {
    const auto& frames = impl_->frames_at(*index, *module, pc);
    if (frames && !frames->empty()) {
      for (const DwarfFrame& frame : *frames) {
        std::string function = frame.function;
        if (!frame.inlined && frame.linkage_name.empty() && frame.function.ends_with("operator()")) {
          // DWARF gives a lambda's body no linkage name ("f(int)::{lambda}::operator()" is what its scopes say);
          // the symbol of the same function names it fully ("f(int)::{lambda()#1}::operator()() const").
          auto symbol = impl_->symbol_containing(*module, file_pc);
          if (symbol && symbol->address == frame.entry_pc) function = demangle(symbol->name);
        }
        result.frames.push_back(SymbolizedFrame{module->path, std::move(function), frame.file, frame.line,
                                                frame.inlined, file_pc - frame.entry_pc,
                                                SymbolizedFrame::Source::dwarf});
      }
      return impl_->by_pc.emplace(pc, std::move(result)).first->second;
    }
    why = frames ? "no DWARF function covers " + hex(file_pc) + " in " + module->path : frames.error().message;
  }
  if (const GoPclntab* table = go_pclntab(*module)) {
    auto frames = table->frames_at(file_pc);
    if (frames && !frames->empty()) {
      for (const GoSourceFrame& frame : *frames) {
        result.frames.push_back(SymbolizedFrame{module->path, std::string(frame.function), std::string(frame.file),
                                                static_cast<unsigned>(std::max(frame.line, 0)), frame.inlined,
                                                file_pc - frame.entry, SymbolizedFrame::Source::go_pclntab});
      }
      result.note = why + "; names, files and lines from .gopclntab (" +
                    go_pclntab_version_name(table->version()) + ")";
      return impl_->by_pc.emplace(pc, std::move(result)).first->second;
    }
    if (!frames) why += (why.empty() ? "" : "; ") + frames.error().message;
  }
  std::optional<ElfSymbol> symbol = impl_->symbol_containing(*module, file_pc);
  SymbolizedFrame frame;
  frame.module = module->path;
  if (symbol) {
    frame.function = demangle(symbol->name);
    frame.offset = file_pc - symbol->address;
    frame.source = SymbolizedFrame::Source::symbol_table;
    result.note = why + "; names from the symbol table";
  } else {
    frame.offset = file_pc;
    result.note = why.empty() ? "no symbol covers " + hex(file_pc) + " in " + module->path : why + "; no symbol either";
  }
  result.frames.push_back(std::move(frame));
  return impl_->by_pc.emplace(pc, std::move(result)).first->second;
}

Result<std::vector<DwarfFrame>> Symbolizer::dwarf_frames(std::uint64_t pc) {
  const Module* module = module_at(pc);
  if (!module) return fail("no module mapped at ", hex(pc));
  std::string why;
  DwarfIndex* index = impl_->index_for(*module, why);
  if (!index) return fail(why);
  return impl_->frames_at(*index, *module, pc);
}

namespace {

// Context for evaluating expressions of one frame.
ExpressionContext frame_context(const target::Registers* registers, const target::Memory* memory,
                                std::optional<std::uint64_t> cfa, std::uint64_t load_bias) {
  ExpressionContext context;
  context.registers = registers;
  context.memory = memory;
  context.cfa = cfa;
  context.load_bias = load_bias;
  return context;
}

// DW_AT_frame_base yields an address (memory location) or names a register holding it (DWARF 5 3.3.5).
std::optional<std::uint64_t> frame_base_of(std::span<const std::byte> expression, const ExpressionContext& context) {
  if (expression.empty()) return std::nullopt;
  auto location = evaluate(expression, context);
  if (!location) return std::nullopt;
  switch (location->kind) {
    case Location::Kind::memory: return location->address;
    case Location::Kind::value: return location->value;
    case Location::Kind::reg:
      return context.registers ? context.registers->get(location->register_number) : std::nullopt;
    default: return std::nullopt;
  }
}

struct ValueBytes {
  std::vector<std::byte> bytes;
  std::string status;
};

ValueBytes bytes_of(const Location& location, std::uint64_t size_bytes, const ExpressionContext& context,
                    unsigned depth = 0) {
  switch (location.kind) {
    case Location::Kind::optimized_out: return {{}, "optimized out"};
    case Location::Kind::entry_value_unknown: return {{}, "entry value unknown"};
    case Location::Kind::value: return {little_endian(location.value, size_bytes), ""};
    case Location::Kind::implicit: {
      std::vector<std::byte> bytes = location.bytes;
      if (bytes.size() > size_bytes) bytes.resize(size_bytes);
      return {bytes, ""};
    }
    case Location::Kind::reg: {
      auto value = context.registers ? context.registers->get(location.register_number) : std::nullopt;
      if (!value)
        return {{}, std::string("unavailable: register ") + target::register_name(location.register_number) +
                        " not recovered in this frame"};
      return {little_endian(*value, size_bytes), ""};
    }
    case Location::Kind::memory: {
      if (!context.memory) return {{}, "no memory to read at " + hex(location.address)};
      std::vector<std::byte> bytes(size_bytes);
      if (!context.memory->read(target::RemoteAddress(location.address), bytes))
        return {{}, "unreadable at " + hex(location.address)};
      return {bytes, ""};
    }
    case Location::Kind::pieces: {
      if (depth > 0) return {{}, "nested pieces"};
      ValueBytes whole;
      for (const Location::Piece& piece : location.pieces) {
        if (whole.bytes.size() + piece.size_bytes > kMaxValueBytes) return {{}, "value too large"};
        ValueBytes part = bytes_of(piece.location, piece.size_bytes, context, depth + 1);
        if (!part.status.empty()) return {{}, part.status == "optimized out" ? "partly optimized out" : part.status};
        part.bytes.resize(piece.size_bytes);
        whole.bytes.insert(whole.bytes.end(), part.bytes.begin(), part.bytes.end());
      }
      return whole;
    }
  }
  return {{}, "unknown location"};
}

}  // namespace

std::optional<std::uint64_t> Symbolizer::entry_value(const CallerState& caller, const Callee& callee,
                                                    const target::Memory* memory, std::span<const std::byte> inner) {
  const Module* caller_module = module_at(caller.return_address - 1);
  if (!caller_module) return std::nullopt;
  std::string unused;
  DwarfIndex* caller_index = impl_->index_for(*caller_module, unused);
  if (!caller_index) return std::nullopt;
  const auto& site = impl_->call_site(*caller_index, *caller_module, caller.return_address);
  if (!site || !*site) return std::nullopt;
  ExpressionContext caller_context = frame_context(caller.registers, memory, caller.cfa, caller_module->load_bias);
  caller_context.frame_base = frame_base_of((*site)->caller_frame_base, caller_context);
  // Only a call of this very function passed its entry values: when the site called another function that
  // tail-called this one (its frame is gone), the site's values are that other function's arguments.
  if (!(*site)->callee.empty()) {
    if ((*site)->callee != callee.name) return std::nullopt;
  } else if (!(*site)->target.empty()) {
    auto target = evaluate((*site)->target, caller_context);
    if (!target) return std::nullopt;
    const std::optional<std::uint64_t> address =
        target->kind == Location::Kind::memory ? std::optional(target->address)
        : target->kind == Location::Kind::value ? std::optional(target->value)
        : target->kind == Location::Kind::reg && caller.registers
            ? std::optional(caller.registers->get(target->register_number))
            : std::nullopt;
    if (address != callee.entry_address) return std::nullopt;
  } else {
    return std::nullopt;
  }
  for (const DwarfCallSiteParameter& parameter : (*site)->parameters) {
    if (!std::equal(parameter.location.begin(), parameter.location.end(), inner.begin(), inner.end())) continue;
    auto value = evaluate(parameter.value, caller_context);
    if (!value) return std::nullopt;
    // DW_AT_call_value computes the value itself: a "memory" result is the value on the stack top.
    if (value->kind == Location::Kind::memory) return value->address;
    if (value->kind == Location::Kind::value) return value->value;
    if (value->kind == Location::Kind::reg && caller.registers) return caller.registers->get(value->register_number);
    return std::nullopt;
  }
  return std::nullopt;
}

Result<std::vector<FrameVariables>> Symbolizer::variables(const VariableQuery& query) {
  const Module* module = module_at(query.pc);
  if (!module) return fail("no module mapped at ", hex(query.pc));
  std::string why;
  DwarfIndex* index = impl_->index_for(*module, why);
  if (!index) return fail(why);
  const auto& frames = impl_->frames_at(*index, *module, query.pc);
  if (!frames) return std::unexpected(frames.error());

  ExpressionContext context = frame_context(query.registers, query.memory, query.cfa, module->load_bias);
  // DW_OP_entry_value: the callee's register on entry is what the caller's call site says it passed. The closure
  // holds one pointer, so std::function keeps it inline: this runs for every frame of every fiber.
  struct EntryValueSource {
    Symbolizer* symbolizer;
    CallerState caller;
    Callee callee;
    const target::Memory* memory;
  };
  std::optional<EntryValueSource> entry_source;
  if (query.caller) {
    // Entry values are those of the concrete function, whichever inlined frame evaluates them.
    auto concrete = std::find_if(frames->begin(), frames->end(), [](const DwarfFrame& f) { return !f.inlined; });
    if (concrete != frames->end()) {
      Callee callee{!concrete->linkage_name.empty() ? concrete->linkage_name : concrete->function,
                    concrete->entry_pc + module->load_bias};
      entry_source = EntryValueSource{this, *query.caller, std::move(callee), query.memory};
      context.entry_value = [source = &*entry_source](std::span<const std::byte> inner) {
        return source->symbolizer->entry_value(source->caller, source->callee, source->memory, inner);
      };
    }
  }

  std::vector<FrameVariables> result;
  result.reserve(frames->size());
  for (const DwarfFrame& frame : *frames) {
    context.frame_base = frame_base_of(frame.frame_base, context);
    FrameVariables out;
    out.function = frame.function;
    out.inlined = frame.inlined;
    out.variables.reserve(frame.variables.size());
    for (const DwarfVariable& variable : frame.variables) {
      VariableValue value;
      value.name = variable.name;
      value.type_name = variable.type_name;
      value.is_parameter = variable.is_parameter;
      if (variable.location.empty()) {
        value.status = "optimized out";
        out.variables.push_back(std::move(value));
        continue;
      }
      auto location = evaluate(variable.location, context);
      if (!location) {
        value.status = location.error().message;
        out.variables.push_back(std::move(value));
        continue;
      }
      value.location = *location;
      const std::uint64_t size = variable.size_bytes ? variable.size_bytes : 8;
      if (location->kind == Location::Kind::memory && size > kMaxValueBytes) {
        value.value = "<" + std::to_string(size) + " bytes at " + hex(location->address) + ">";
      } else {
        ValueBytes bytes = bytes_of(*location, std::min(size, kMaxValueBytes), context);
        value.status = bytes.status;
        if (bytes.status.empty())
          value.value = format_value(bytes.bytes, variable.type_name, variable.is_scalar, variable.is_pointer);
      }
      out.variables.push_back(std::move(value));
    }
    result.push_back(std::move(out));
  }
  return result;
}

std::size_t Symbolizer::symbolize_cache_size() const { return impl_->by_pc.size(); }
std::size_t Symbolizer::dwarf_indexes_loaded() const { return impl_->indexes_loaded; }

}  // namespace fiberscope::binary
