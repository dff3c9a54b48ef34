// DwarfIndex: the DWARF of one ELF file (libdwarf), loaded lazily, answering "what is at this pc".
//
//   auto index = DwarfIndex::open(image);     // reads only the compile-unit headers: a CU address-range index
//   auto frames = index.value()->frames_at(file_pc);   // parses that CU's DIEs and line table on first use
//   for (const DwarfFrame& frame : *frames) ...        // innermost first: inlined subroutines, then the function
//
// Addresses are the file's own (unbiased). For a return address (a caller's frame) pass return_address - 1, so
// a call that ends a function or an inlined range is attributed to the call, not to what follows it.
// Not thread-safe: lookups fill per-CU caches. The ElfImage must outlive the index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "binary/elf_image.h"

namespace fiberscope::binary {

struct DwarfVariable {
  std::string name;
  std::string type_name;             // "int", "const char*", "Point*", a typedef's name; "?" if unknown
  std::uint64_t size_bytes = 0;      // 0 if unknown
  bool is_parameter = false;
  bool is_scalar = false;            // a base type, pointer, reference or enum (through typedefs and qualifiers)
  // The location expression valid at the pc asked for (the matching location-list entry, or the single
  // expression); empty when the variable has no location there (optimized out).
  std::vector<std::byte> location;
  bool is_pointer = false;           // a pointer or reference, also behind typedefs and qualifiers
};

struct DwarfCallSiteParameter {
  std::vector<std::byte> location;   // where the callee finds it on entry, usually DW_OP_regN
  std::vector<std::byte> value;      // DW_AT_call_value: evaluated in the caller's frame at the call
};

// A DW_TAG_call_site (DWARF 5) or DW_TAG_GNU_call_site: what a caller passed, for DW_OP_entry_value.
struct DwarfCallSite {
  std::uint64_t return_pc = 0;
  // What it calls: the linkage name (else the name) of the function DW_AT_call_origin names, or for an indirect
  // call the DW_AT_call_target expression (the callee's address, evaluated in the caller's frame). Both empty:
  // unknown. A parameter's value is only the callee's entry value if the callee is the frame asking: the function
  // called here may have tail-called it.
  std::string callee;
  std::vector<std::byte> target;
  std::vector<DwarfCallSiteParameter> parameters;
  std::vector<std::byte> caller_frame_base;  // DW_AT_frame_base of the function that makes the call
};

struct DwarfFrame {
  std::string function;              // demangled linkage name, else the linkage name, else DW_AT_name
  std::string linkage_name;          // mangled; empty for C functions
  std::string file;                  // innermost frame: the pc's line; outer frames: the call site of the inner one
  unsigned line = 0;
  bool inlined = false;
  std::uint64_t entry_pc = 0;        // start of the function, or of the inlined range that contains the pc
  std::vector<std::byte> frame_base; // DW_AT_frame_base of the concrete function (shared by its inlined frames)
  std::vector<DwarfVariable> variables;  // parameters, then locals in scope at the pc
};

struct DwarfLine {
  std::string file;
  unsigned line = 0;
};

class DwarfIndex {
 public:
  // Indexes the compile units of `image` (which must contain .debug_info). Reads no DIE below the CUs.
  static Result<std::unique_ptr<DwarfIndex>> open(const ElfImage& image);
  ~DwarfIndex();
  DwarfIndex(const DwarfIndex&) = delete;
  DwarfIndex& operator=(const DwarfIndex&) = delete;

  // The frames at `pc`, innermost first; empty if no function's DWARF covers it.
  Result<std::vector<DwarfFrame>> frames_at(std::uint64_t pc);
  // The source line of `pc` from the line table.
  Result<std::optional<DwarfLine>> line_at(std::uint64_t pc);
  // The call site whose return address is `return_pc` (as found in the callee's frame), if described.
  Result<std::optional<DwarfCallSite>> call_site(std::uint64_t return_pc);

  std::size_t compile_unit_count() const;
  std::size_t parsed_compile_unit_count() const;  // how many were loaded so far (laziness is observable)

 private:
  DwarfIndex();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Demangles an Itanium C++ name; returns `mangled` unchanged if it is not one.
std::string demangle(const std::string& mangled);

}  // namespace fiberscope::binary
