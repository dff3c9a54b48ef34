// ModuleMap: the files mapped by a target, opened once each, answering "which module, function, line and
// arguments is this pc" for the dump. It is the CLI's composition of binary/ (ElfImage, DwarfIndex, the DWARF
// expression evaluator) and unwind/ (ModuleCfi, as the unwinder's CfiSource).
//
//   ModuleMap modules(snapshot.mappings);            // opens every mapped executable file; notes what is missing
//   unwind::Unwinder unwinder(modules.cfi());
//   auto frames = modules.symbolize(unwind_frame, memory);   // inlined frames first, each with its arguments
//
// Files that cannot be opened or carry no DWARF are noted in warnings() once ("no DWARF in X: functions from
// symbols, no lines or arguments"), and their frames are named from .symtab/.dynsym.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "binary/dwarf_index.h"
#include "binary/elf_image.h"
#include "report/dump.h"
#include "target/memory.h"
#include "target/snapshot.h"
#include "unwind/module_cfi.h"
#include "unwind/unwinder.h"

namespace fiberscope::cli {

class ModuleMap {
 public:
  // Opens the executable files among `mappings`; warns about missing DWARF only for `exe_path`, since system
  // libraries normally ship without it.
  ModuleMap(const std::vector<target::Mapping>& mappings, const std::string& exe_path);
  ModuleMap(const ModuleMap&) = delete;
  ModuleMap& operator=(const ModuleMap&) = delete;

  const unwind::CfiSource& cfi() const { return cfi_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // The report frames for one unwound frame: its inlined calls (innermost first), then the function itself.
  // `with_args` evaluates parameter locations against the frame's registers and `memory`.
  std::vector<report::Frame> symbolize(const unwind::Frame& frame, const target::Memory& memory, bool with_args);
  // Function and line of a pc that is a return address (spawn sites).
  report::CodeLocation locate(std::uint64_t return_address);

 private:
  struct Module {
    std::string path;
    std::string name;  // file name without directories
    std::unique_ptr<binary::ElfImage> image;
    std::unique_ptr<binary::DwarfIndex> dwarf;  // null without .debug_info
    std::uint64_t load_bias = 0;
    target::AddressRange range;
  };
  const Module* module_at(std::uint64_t address) const;

  std::vector<std::unique_ptr<Module>> modules_;
  unwind::ModuleCfiSet cfi_;
  std::vector<std::string> warnings_;
};

// Formats the raw bytes of a value of DWARF type `type_name` ("int", "char*", "bool"...).
std::string format_value(std::span<const std::byte> bytes, const std::string& type_name);

}  // namespace fiberscope::cli
