#include "cli/module_map.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/hex.h"
#include "binary/dwarf_expression.h"

namespace fiberscope::cli {
namespace {

using report::Argument;

std::uint64_t little_endian(std::span<const std::byte> bytes) {
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data(), std::min<std::size_t>(bytes.size(), sizeof value));
  return value;
}

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

// Values wider than this are shown as "{...}": the dump shows scalars and pointers, not whole objects.
constexpr std::uint64_t kMaxValueBytes = 8;

// Reads the value a Location names, up to kMaxValueBytes.
Result<std::vector<std::byte>> location_bytes(const binary::Location& location, std::uint64_t size_bytes,
                                              const target::Registers& registers, const target::Memory& memory) {
  const std::uint64_t size = std::min(size_bytes == 0 ? kMaxValueBytes : size_bytes, kMaxValueBytes);
  std::vector<std::byte> bytes(size);
  switch (location.kind) {
    case binary::Location::Kind::memory:
      if (auto ok = memory.read(target::RemoteAddress(location.address), bytes); !ok)
        return std::unexpected(ok.error());
      return bytes;
    case binary::Location::Kind::reg: {
      auto value = registers.get(location.register_number);
      if (!value)
        return fail("register ", target::register_name(location.register_number), " not recovered in this frame");
      std::memcpy(bytes.data(), &*value, bytes.size());
      return bytes;
    }
    case binary::Location::Kind::value:
      std::memcpy(bytes.data(), &location.value, bytes.size());
      return bytes;
    case binary::Location::Kind::implicit:
      bytes.assign(location.bytes.begin(), location.bytes.begin() + std::min<std::size_t>(size, location.bytes.size()));
      return bytes;
    case binary::Location::Kind::pieces: {
      // Assemble the pieces that fit in the displayed width; a missing piece makes the value unavailable.
      std::size_t offset = 0;
      for (const auto& piece : location.pieces) {
        if (offset >= bytes.size()) break;
        auto part = location_bytes(piece.location, piece.size_bytes, registers, memory);
        if (!part) return part;
        const std::size_t take = std::min(part->size(), bytes.size() - offset);
        std::memcpy(bytes.data() + offset, part->data(), take);
        offset += piece.size_bytes;
      }
      return bytes;
    }
    case binary::Location::Kind::optimized_out:
    case binary::Location::Kind::entry_value_unknown: break;
  }
  return fail("no value");
}

}  // namespace

std::string format_value(std::span<const std::byte> bytes, const std::string& type_name) {
  if (bytes.empty()) return "{}";
  const std::uint64_t raw = little_endian(bytes);
  if (contains(type_name, "*") || contains(type_name, "&")) return hex(raw);
  if (type_name == "bool") return raw ? "true" : "false";
  if (type_name == "float" && bytes.size() == 4) {
    float value;
    std::memcpy(&value, bytes.data(), 4);
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
  }
  if (type_name == "double" && bytes.size() == 8) {
    double value;
    std::memcpy(&value, bytes.data(), 8);
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
  }
  const bool is_unsigned = type_name.starts_with("unsigned") || contains(type_name, "size_t") ||
                           type_name.starts_with("uint") || type_name.starts_with("std::uint");
  const bool is_integer = is_unsigned || contains(type_name, "int") || contains(type_name, "long") ||
                          contains(type_name, "short") || contains(type_name, "char");
  if (!is_integer || bytes.size() > 8 || (bytes.size() & (bytes.size() - 1)) != 0) return hex(raw);
  if (is_unsigned) return std::to_string(raw);
  // Sign-extend from the value's width.
  const unsigned bits = static_cast<unsigned>(bytes.size() * 8);
  std::int64_t value = static_cast<std::int64_t>(raw);
  if (bits < 64) value = static_cast<std::int64_t>(raw << (64 - bits)) >> (64 - bits);
  return std::to_string(value);
}

ModuleMap::ModuleMap(const std::vector<target::Mapping>& mappings, const std::string& exe_path) {
  std::map<std::string, std::vector<const target::Mapping*>> by_path;
  std::vector<std::string> order;
  for (const target::Mapping& mapping : mappings) {
    if (mapping.path.empty() || mapping.path.front() == '[') continue;
    auto& list = by_path[mapping.path];
    if (list.empty()) order.push_back(mapping.path);
    list.push_back(&mapping);
  }
  for (const std::string& path : order) {
    const auto& list = by_path[path];
    if (std::none_of(list.begin(), list.end(), [](const target::Mapping* m) { return m->executable; })) continue;
    auto image = binary::ElfImage::open(path);
    if (!image) {
      warnings_.push_back("cannot open " + path + ": " + image.error().message + " (its frames stay unnamed)");
      continue;
    }
    auto module = std::make_unique<Module>();
    module->path = path;
    module->name = path.substr(path.find_last_of('/') + 1);
    const target::Mapping* first = *std::min_element(
        list.begin(), list.end(), [](auto* a, auto* b) { return a->file_offset < b->file_offset; });
    std::uint64_t lo = UINT64_MAX, hi = 0;
    for (const target::Mapping* m : list) {
      lo = std::min(lo, m->range.start.value());
      hi = std::max(hi, m->range.end.value());
    }
    module->range = target::AddressRange{target::RemoteAddress(lo), target::RemoteAddress(hi)};
    if ((*image)->is_shared_object()) module->load_bias = first->range.start.value() - (*image)->first_load_vaddr();
    if ((*image)->has_dwarf()) {
      auto dwarf = binary::DwarfIndex::open(**image);
      if (dwarf) {
        module->dwarf = std::move(*dwarf);
      } else {
        warnings_.push_back("DWARF of " + path + " unusable: " + dwarf.error().message +
                            ": functions from symbols, no lines or arguments");
      }
    } else if (path == exe_path) {
      warnings_.push_back("no DWARF in " + path + ": functions from symbols, no lines or arguments");
    }
    module->image = std::move(*image);
    if (auto added = cfi_.add(unwind::ModuleCfi::from_image(*module->image, module->load_bias, module->range));
        !added)
      warnings_.push_back("no unwind information for " + path + ": " + added.error().message);
    modules_.push_back(std::move(module));
  }
}

const ModuleMap::Module* ModuleMap::module_at(std::uint64_t address) const {
  for (const auto& module : modules_)
    if (module->range.contains(target::RemoteAddress(address))) return module.get();
  return nullptr;
}

std::vector<report::Frame> ModuleMap::symbolize(const unwind::Frame& frame, const target::Memory& memory,
                                                bool with_args) {
  report::Frame base;
  base.pc = frame.pc.value();
  base.stack = frame.stack_kind == unwind::StackKind::fiber    ? report::StackKind::fiber
               : frame.stack_kind == unwind::StackKind::system ? report::StackKind::system
                                                               : report::StackKind::unknown;
  const std::uint64_t lookup = frame.lookup_pc().value();
  const Module* module = module_at(lookup);
  if (!module) return {base};
  base.module = module->name;
  const std::uint64_t file_pc = lookup - module->load_bias;
  // Offsets are shown from the real pc (a return address), as other debuggers do.
  const std::uint64_t file_pc_shown = base.pc - module->load_bias;

  std::vector<report::Frame> out;
  if (module->dwarf) {
    auto dwarf_frames = module->dwarf->frames_at(file_pc);
    if (dwarf_frames && !dwarf_frames->empty()) {
      std::optional<std::uint64_t> frame_base;
      binary::ExpressionContext context;
      context.registers = &frame.registers;
      context.memory = &memory;
      if (!frame.cfa.is_null()) context.cfa = frame.cfa.value();
      context.load_bias = module->load_bias;
      if (with_args && !dwarf_frames->back().frame_base.empty()) {
        auto location = binary::evaluate(dwarf_frames->back().frame_base, context);
        if (location && location->kind == binary::Location::Kind::memory) frame_base = location->address;
        if (location && location->kind == binary::Location::Kind::value) frame_base = location->value;
        if (location && location->kind == binary::Location::Kind::reg)
          frame_base = frame.registers.get(location->register_number);
      }
      context.frame_base = frame_base;
      for (const binary::DwarfFrame& dwarf_frame : *dwarf_frames) {
        report::Frame result = base;
        result.function = dwarf_frame.function;
        result.function_offset = file_pc_shown - dwarf_frame.entry_pc;
        result.file = dwarf_frame.file;
        result.line = dwarf_frame.line;
        result.inlined = dwarf_frame.inlined;
        result.args_known = with_args;
        if (with_args) {
          for (const binary::DwarfVariable& variable : dwarf_frame.variables) {
            if (!variable.is_parameter) continue;
            Argument arg;
            arg.name = variable.name;
            if (variable.location.empty()) {
              arg.status = Argument::Status::optimized_out;
            } else if (auto location = binary::evaluate(variable.location, context); !location) {
              arg.status = Argument::Status::error;
              arg.detail = location.error().message;
            } else if (location->kind == binary::Location::Kind::optimized_out) {
              arg.status = Argument::Status::optimized_out;
            } else if (location->kind == binary::Location::Kind::entry_value_unknown) {
              arg.status = Argument::Status::entry_value;
            } else if (auto bytes = location_bytes(*location, variable.size_bytes, frame.registers, memory);
                       !bytes) {
              arg.status = location->kind == binary::Location::Kind::reg ? Argument::Status::unavailable
                                                                        : Argument::Status::error;
              arg.detail = bytes.error().message;
            } else if (variable.size_bytes > kMaxValueBytes) {
              arg.value = "{...}";
              if (location->kind == binary::Location::Kind::memory) arg.value += " @" + hex(location->address);
            } else {
              arg.value = format_value(*bytes, variable.type_name);
            }
            result.args.push_back(std::move(arg));
          }
        }
        out.push_back(std::move(result));
      }
      return out;
    }
  }
  if (auto symbol = module->image->symbol_containing(file_pc)) {
    base.function = binary::demangle(symbol->name);
    base.function_offset = file_pc_shown - symbol->address;
  } else {
    base.function_offset = file_pc_shown;
  }
  return {base};
}

report::CodeLocation ModuleMap::locate(std::uint64_t return_address) {
  report::CodeLocation location;
  location.pc = return_address;
  if (return_address == 0) return location;
  unwind::Frame frame;
  frame.pc = target::RemoteAddress(return_address);
  frame.pc_is_return_address = true;
  struct NoMemory final : target::Memory {
    Result<void> read(target::RemoteAddress address, std::span<std::byte>) const override {
      return fail("no memory at ", address.to_string());
    }
  } no_memory;
  auto frames = symbolize(frame, no_memory, false);
  // The spawn call may be inlined into its caller: name the function the call is written in.
  const report::Frame& innermost = frames.front();
  location.function = innermost.function;
  location.file = innermost.file;
  location.line = innermost.line;
  return location;
}

}  // namespace fiberscope::cli
