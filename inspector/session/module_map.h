// ModuleMap: the CLI's view of a target's modules for one dump — binary::Symbolizer for names, lines and
// argument values, and the modules' CFI (unwind::ModuleCfi) as the unwinder's CfiSource — turned into
// report frames.
//
//   ModuleMap modules(mappings, exe_path);      // opens every mapped file once (before the target is stopped)
//   auto root = modules.symbols().symbol_address("fiberscope_debug_root");
//   unwind::Unwinder unwinder(modules.cfi());
//   auto frames = modules.symbolize(frame, caller, memory, true);   // inlined frames first, with arguments
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "binary/symbolizer.h"
#include "report/dump.h"
#include "target/memory.h"
#include "target/snapshot.h"
#include "unwind/module_cfi.h"
#include "unwind/unwinder.h"

namespace fiberscope::session {

class ModuleMap {
 public:
  // Opens the files among `mappings`. Missing DWARF is a warning only for `exe_path`: system libraries
  // normally ship without it.
  ModuleMap(const std::vector<target::Mapping>& mappings, const std::string& exe_path);
  ModuleMap(const ModuleMap&) = delete;
  ModuleMap& operator=(const ModuleMap&) = delete;

  binary::Symbolizer& symbols() { return symbols_; }
  const unwind::CfiSource& cfi();
  const std::vector<std::string>& warnings() const { return warnings_; }

  // The report frames of one unwound frame: its inlined calls (innermost first), then the function itself.
  // `caller` (may be null) lets entry values be resolved through the caller's call site.
  std::vector<report::Frame> symbolize(const unwind::Frame& frame, const unwind::Frame* caller,
                                       const target::Memory& memory, bool with_args);
  // Function and line of a return address (a spawn site).
  report::CodeLocation locate(std::uint64_t return_address);

 private:
  binary::Symbolizer symbols_;
  std::string exe_path_;
  std::unique_ptr<unwind::ModuleCfiSet> cfi_;  // built on first use: DWARF-only .debug_frame loads lazily
  std::vector<std::string> warnings_;
};

}  // namespace fiberscope::session
