#include "session/module_map.h"

#include <iterator>
#include <string_view>

#include "fiberscope/debug_abi.h"

namespace fiberscope::session {
namespace {

using report::Argument;

std::string file_name(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// The symbolizer describes a missing value in words; the report keeps a status a script can switch on.
void set_status(Argument& arg, const std::string& status) {
  if (status.empty()) {
    arg.status = Argument::Status::ok;
  } else if (status.ends_with("optimized out")) {
    arg.status = Argument::Status::optimized_out;
  } else if (status == "entry value unknown") {
    arg.status = Argument::Status::entry_value;
  } else if (status.starts_with("unavailable")) {
    arg.status = Argument::Status::unavailable;
    arg.detail = status;
  } else {
    arg.status = Argument::Status::error;
    arg.detail = status;
  }
}

report::StackKind stack_of(const unwind::Frame& frame) {
  switch (frame.stack_kind) {
    case unwind::StackKind::fiber: return report::StackKind::fiber;
    case unwind::StackKind::system: return report::StackKind::system;
    case unwind::StackKind::unknown: break;
  }
  return report::StackKind::unknown;
}

}  // namespace

ModuleMap::ModuleMap(const std::vector<target::Mapping>& mappings, const std::string& exe_path)
    : symbols_(mappings), exe_path_(exe_path) {
  for (const binary::Module& module : symbols_.modules()) {
    if (!module.opened_from.empty())
      warnings_.push_back(module.path + " was replaced or deleted after the process mapped it: read from " +
                          module.opened_from);
    if (!module.image) {
      if (module.path == exe_path) warnings_.push_back("cannot open " + module.path + ": " + module.error);
      continue;
    }
    if (module.path != exe_path) continue;
    if (const binary::ElfImage* debug = symbols_.debug_image(module); !debug || !debug->has_dwarf())
      warnings_.push_back("no DWARF in " + module.path + ": functions from symbols, no lines or arguments");
  }
}

const unwind::CfiSource& ModuleMap::cfi() {
  if (cfi_) return *cfi_;
  cfi_ = std::make_unique<unwind::ModuleCfiSet>();
  for (const binary::Module& module : symbols_.modules()) {
    if (!module.image || module.range.empty()) continue;
    // A separate debug file may carry .debug_frame where the binary has no .eh_frame; only the main executable's
    // is loaded eagerly, others rarely need it.
    const binary::ElfImage* debug = module.path == exe_path_ ? symbols_.debug_image(module) : nullptr;
    if (auto added = cfi_->add(unwind::ModuleCfi::from_image(*module.image, module.load_bias, module.range, debug));
        !added)
      warnings_.push_back("no unwind information for " + module.path + ": " + added.error().message);
  }
  return *cfi_;
}

std::vector<report::Frame> ModuleMap::symbolize(const unwind::Frame& frame, const unwind::Frame* caller,
                                                const target::Memory& memory, bool with_args) {
  const std::uint64_t lookup = frame.lookup_pc().value();
  const binary::Symbolization& where = symbols_.symbolize(lookup);
  std::vector<binary::FrameVariables> variables;
  bool have_dwarf = false;
  for (const binary::SymbolizedFrame& symbolized : where.frames)
    have_dwarf |= symbolized.source == binary::SymbolizedFrame::Source::dwarf;
  if (with_args && have_dwarf) {
    binary::VariableQuery query{lookup, &frame.registers, &memory, std::nullopt, std::nullopt};
    if (!frame.cfa.is_null()) query.cfa = frame.cfa.value();
    if (caller) {
      binary::CallerState state{caller->pc.value(), &caller->registers, std::nullopt};
      if (!caller->cfa.is_null()) state.cfa = caller->cfa.value();
      query.caller = state;
    }
    if (auto values = symbols_.variables(query)) variables = std::move(*values);
  }

  std::vector<report::Frame> out;
  for (std::size_t i = 0; i < where.frames.size(); ++i) {
    const binary::SymbolizedFrame& symbolized = where.frames[i];
    report::Frame result;
    result.pc = frame.pc.value();
    result.function = symbolized.function;
    // Offsets count from the real pc (a return address for callers), as other debuggers print them.
    result.function_offset = symbolized.offset + (frame.pc.value() - lookup);
    result.module = symbolized.module.empty() ? "" : file_name(symbolized.module);
    result.file = symbolized.file;
    result.line = symbolized.line;
    result.inlined = symbolized.inlined;
    result.stack = stack_of(frame);
    // Variables come per DWARF frame in the same innermost-first order as the symbolization.
    if (with_args && symbolized.source == binary::SymbolizedFrame::Source::dwarf && i < variables.size()) {
      result.args_known = true;
      for (const binary::VariableValue& variable : variables[i].variables) {
        if (!variable.is_parameter) continue;
        Argument arg;
        arg.name = variable.name;
        arg.value = variable.value;
        set_status(arg, variable.status);
        result.args.push_back(std::move(arg));
      }
    }
    out.push_back(std::move(result));
  }
  if (out.empty()) {
    report::Frame unknown;
    unknown.pc = frame.pc.value();
    unknown.stack = stack_of(frame);
    out.push_back(std::move(unknown));
  }
  return out;
}

report::CodeLocation ModuleMap::locate(std::uint64_t return_address) {
  report::CodeLocation location;
  location.pc = return_address;
  if (return_address == 0) return location;
  const binary::Symbolization& where = symbols_.symbolize(return_address - 1);
  if (where.frames.empty()) return location;
  // The spawn call may sit in an inlined function: the innermost frame is where the call is written, unless it is
  // the runtime's own inlined spawn wrapper, whose caller wrote the call.
  auto frame = where.frames.begin();
  const std::string_view wrapper = FIBERSCOPE_SPAWN_WRAPPER_NAME;
  // The ABI gives the DWARF name; frames print it qualified ("fiber::spawn<...>") where the scopes are known.
  auto unqualified = [](std::string_view name) {
    const std::size_t scope_end = name.rfind("::", name.find('<'));
    return scope_end == std::string_view::npos ? name : name.substr(scope_end + 2);
  };
  while (frame->inlined && std::next(frame) != where.frames.end() &&
         (unqualified(frame->function) == wrapper ||
          unqualified(frame->function).starts_with(std::string(wrapper) + "<")))
    ++frame;
  location.function = frame->function;
  location.file = frame->file;
  location.line = frame->line;
  return location;
}

}  // namespace fiberscope::session
