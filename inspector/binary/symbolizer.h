// Symbolizer: the modules of a target (from its memory map) and everything symbolic about an address in them.
//
//   Symbolizer symbols(snapshot.mappings);
//   auto root = symbols.symbol_address("fiberscope_debug_root");   // works on stripped binaries (.dynsym)
//   const Symbolization& where = symbols.symbolize(pc);             // innermost frame first, cached per pc
//   auto values = symbols.variables({.pc = pc, .registers = &regs, .memory = &memory, .cfa = cfa});
//
// Each file is opened once (ElfImage, cached by path); its DWARF (DwarfIndex) only when a pc in it is first
// symbolized, from the file itself or from a separate debug file found by build-id under
// <debug dir>/.build-id/xx/yyyy.debug or by .gnu_debuglink. Where DWARF has no answer for a pc in a Go binary,
// its .gopclntab (GoPclntab) gives the function, file:line and inlined frames, as Go's own traceback does (built
// with -ldflags=-w, stripped, or a cgo binary whose DWARF covers only the C code). Otherwise names come from the
// ELF symbol tables (the file's, and the .symtab of its separate debug file, which may carry no DWARF). The
// Symbolization says which.
//
// Pcs: pass a frame's exact pc for the innermost frame (or one interrupted by a signal), and return_address - 1
// for every caller frame, so the call (not the instruction after it) is looked up.
// Not thread-safe: lookups fill caches.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "binary/dwarf_expression.h"
#include "binary/dwarf_index.h"
#include "binary/elf_image.h"
#include "binary/go_pclntab.h"
#include "target/memory.h"
#include "target/registers.h"
#include "target/remote_address.h"
#include "target/snapshot.h"

namespace fiberscope::binary {

// One file mapped in the target.
struct Module {
  std::string path;
  target::AddressRange range;     // from its lowest to its highest mapping
  std::uint64_t load_bias = 0;    // target address = file address + load_bias
  const ElfImage* image = nullptr;  // null if the file could not be opened (see `error`)
  std::string error;
  std::string opened_from;        // where the image was read when not from `path` (Mapping::open_path)
};

struct SymbolizedFrame {
  enum class Source { dwarf, go_pclntab, symbol_table, none };
  std::string module;             // the file's path ("" if no module covers the pc)
  std::string function;           // demangled; empty if unknown
  std::string file;               // empty without DWARF
  unsigned line = 0;
  bool inlined = false;
  std::uint64_t offset = 0;       // pc - start of the function (or of the inlined range)
  Source source = Source::none;
};

struct Symbolization {
  std::vector<SymbolizedFrame> frames;  // innermost first; one frame with Source::none if nothing is known
  std::string note;                     // why information is missing ("no DWARF in /bin/x; names from symbols")
};

// Where the caller of a frame was: lets DW_OP_entry_value be resolved through the caller's DW_TAG_call_site.
struct CallerState {
  std::uint64_t return_address = 0;     // exact (not - 1): call sites are keyed by it
  const target::Registers* registers = nullptr;
  std::optional<std::uint64_t> cfa;
};

struct VariableQuery {
  std::uint64_t pc = 0;                 // as for symbolize(): return_address - 1 for caller frames
  const target::Registers* registers = nullptr;
  const target::Memory* memory = nullptr;
  std::optional<std::uint64_t> cfa;     // the frame's canonical frame address, from the unwinder
  std::optional<CallerState> caller;
};

struct VariableValue {
  std::string name;
  std::string type_name;
  bool is_parameter = false;
  std::string value;                    // formatted for printing; empty when `status` says why there is none
  std::string status;                   // "" (ok), "optimized out", "entry value unknown", "unreadable at 0x..", ...
  std::optional<Location> location;     // the evaluated location, when evaluation succeeded
};

struct FrameVariables {
  std::string function;
  bool inlined = false;
  std::vector<VariableValue> variables;  // parameters first
};

struct SymbolizerOptions {
  std::vector<std::string> debug_directories{"/usr/lib/debug"};  // roots for .build-id/ and debuglink lookups
  // Separate debug files (e.g. libc6-dbg) are compressed and large: the first lookup in libc's costs ~0.1-0.2 s.
  // false: such modules are named from their symbol tables only.
  bool use_separate_debug_files = true;
};

class Symbolizer {
 public:
  // Builds the module list from `mappings`; files are opened here, DWARF later.
  explicit Symbolizer(const std::vector<target::Mapping>& mappings, SymbolizerOptions options = {});
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  const std::vector<Module>& modules() const;
  // The module whose mapped range contains `address`, or null.
  const Module* module_at(std::uint64_t address) const;
  // The image carrying `module`'s DWARF (itself, or its separate debug file, which may hold only a .symtab), loaded
  // on first use; null if none.
  const ElfImage* debug_image(const Module& module);

  // The runtime address of symbol `name` (.symtab, else .dynsym), searching modules in map order.
  Result<target::RemoteAddress> symbol_address(std::string_view name) const;

  // Function, file:line and inlined frames at `pc`; never fails (gaps are explained in `note`). Cached per pc.
  const Symbolization& symbolize(std::uint64_t pc);

  // The Go pclntab of `module`, parsed on first use; null if it is not a Go binary (or the table is unusable: see
  // `error`).
  const GoPclntab* go_pclntab(const Module& module, std::string* error = nullptr);

  // The raw DWARF frames at `pc` (file addresses inside, unbiased), for checks that compare locations.
  Result<std::vector<DwarfFrame>> dwarf_frames(std::uint64_t pc);

  // Parameters and locals of every frame (inlined ones too) at `query.pc`, evaluated and formatted.
  Result<std::vector<FrameVariables>> variables(const VariableQuery& query);

  // Counters for tests and benches.
  std::size_t symbolize_cache_size() const;
  std::size_t dwarf_indexes_loaded() const;

 private:
  // The function whose entry values are asked for: its linkage name (else its name) and entry address.
  struct Callee {
    std::string name;
    std::uint64_t entry_address = 0;
  };
  // DW_OP_entry_value(inner) in a frame of `callee` whose caller is `caller`, through the caller's call site;
  // empty if unknown, or if that site calls some other function.
  std::optional<std::uint64_t> entry_value(const CallerState& caller, const Callee& callee,
                                           const target::Memory* memory, std::span<const std::byte> inner);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Formats `size_bytes` little-endian bytes of a value of type `type_name` for printing ("42", "0x7ffd1000",
// "true", "3.5"); `is_scalar` false prints the bytes in hex; `is_pointer` prints an address whatever the name.
std::string format_value(std::span<const std::byte> bytes, std::string_view type_name, bool is_scalar,
                         bool is_pointer = false);

}  // namespace fiberscope::binary
