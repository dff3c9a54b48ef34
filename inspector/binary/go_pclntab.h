// GoPclntab: a Go binary's own symbol and line table (.gopclntab), the one Go's runtime uses for its tracebacks.
// It survives `-ldflags=-w` and `-s -w`, so it names functions, files and lines, inlined frames and frame sizes
// where the binary has no DWARF.
//
//   auto table = GoPclntab::from_image(image);             // Result<std::unique_ptr<GoPclntab>>
//   auto frames = (*table)->frames_at(file_pc);            // innermost first, inlined frames included
//   auto function = (*table)->function_at(file_pc);        // then frame_size(), pcdata(), funcdata_address()
//
// Layouts follow runtime/symtab.go: pcHeader, functab, _func, pc-value tables (zig-zag varint deltas), the inline
// tree (FUNCDATA_InlTree indexed by PCDATA_InlTreeIndex). Go 1.18-1.19 (magic 0xfffffff0) is what Debian ships;
// 1.16-1.17 (0xfffffffa) and 1.20 (0xfffffff1) differ in a few fields and are read too. The bytes are hostile:
// every offset is checked and errors say what and where (".gopclntab: _func of function 12 at offset 0x1a40: ...").
// Addresses are the file's own (unbiased) addresses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "binary/elf_image.h"

namespace fiberscope::binary {

enum class GoPclntabVersion : std::uint8_t { go1_16, go1_18, go1_20 };

// "Go 1.16-1.17", "Go 1.18-1.19", "Go 1.20+".
const char* go_pclntab_version_name(GoPclntabVersion version);

// Indexes of pc-value tables and of funcdata (runtime/symtab.go, _PCDATA_* and _FUNCDATA_*).
inline constexpr std::uint32_t kGoPcdataUnsafePoint = 0;
inline constexpr std::uint32_t kGoPcdataStackMapIndex = 1;
inline constexpr std::uint32_t kGoPcdataInlTreeIndex = 2;
inline constexpr std::uint32_t kGoFuncdataArgsPointerMaps = 0;
inline constexpr std::uint32_t kGoFuncdataLocalsPointerMaps = 1;
inline constexpr std::uint32_t kGoFuncdataInlTree = 3;
// funcFlag bits: the function is the top of its stack (goexit, mstart, rt0_go); it writes SP with values the pcsp
// table cannot describe (mcall, systemstack, asmcgocall, morestack: stack switches); it is written in assembly.
inline constexpr std::uint8_t kGoFuncFlagTopFrame = 1 << 0;
inline constexpr std::uint8_t kGoFuncFlagSpWrite = 1 << 1;
inline constexpr std::uint8_t kGoFuncFlagAsm = 1 << 2;

// One function of the table (a _func record), with its name resolved.
struct GoFunction {
  std::size_t index = 0;            // in the function table
  std::uint64_t entry = 0;          // file address of its first instruction
  std::uint64_t end = 0;            // the next function's entry (or the end of the text)
  std::string_view name;            // points into the table's bytes
  std::int32_t args_size_bytes = 0;
  std::uint8_t func_id = 0;         // runtime's funcID (funcID_goexit, funcID_mstart, ...)
  std::uint8_t flag = 0;            // funcFlag (TOPFRAME, SPWRITE, ASM)
  // Where the _func record and its pc-value tables are; for pcdata()/funcdata_address().
  std::uint64_t record_offset = 0;  // in the function table (pclntable)
  std::uint32_t pcsp = 0, pcfile = 0, pcln = 0;
  std::uint32_t pcdata_count = 0;
  std::uint8_t funcdata_count = 0;
  std::uint32_t cu_offset = 0;
};

// A frame of Go source at a pc: the function (or an inlined call in it) and its position.
struct GoSourceFrame {
  std::string_view function;
  std::string_view file;            // empty if the table has no file for the pc
  std::int32_t line = 0;
  bool inlined = false;
  std::uint64_t entry = 0;          // the concrete function's entry (inlined frames have none of their own)
};

// Bytes of the binary at a file address (for funcdata, which lives outside the table in .rodata).
struct GoAddressedBytes {
  std::uint64_t address = 0;
  std::span<const std::byte> bytes;
};

class GoPclntab {
 public:
  // Parses the table in `bytes`, loaded at file address `address`. `text_address` is the address of the text
  // when the header does not carry it (1.16) or carries 0 (PIE before relocation); `gofunc_address` the base of
  // funcdata offsets (moduledata.gofunc, 1.18+; 0 when unknown: funcdata is then unavailable); `data` the
  // sections funcdata may point into. The spans must outlive the table.
  static Result<GoPclntab> parse(std::span<const std::byte> bytes, std::uint64_t address,
                                 std::uint64_t text_address = 0, std::uint64_t gofunc_address = 0,
                                 std::vector<GoAddressedBytes> data = {});
  // Finds the table of `image` (.gopclntab, else the runtime.pclntab symbol's section), the text and
  // moduledata.gofunc; an Error if the image is not a Go binary or the table is malformed. `image` must outlive it.
  static Result<std::unique_ptr<GoPclntab>> from_image(const ElfImage& image);

  GoPclntabVersion version() const { return version_; }
  std::uint64_t text_address() const { return text_address_; }
  std::uint64_t gofunc_address() const { return gofunc_address_; }
  std::size_t function_count() const { return function_count_; }
  // The file address range [first entry, end of the last function).
  std::uint64_t min_pc() const { return min_pc_; }
  std::uint64_t max_pc() const { return max_pc_; }

  // The function at table index `index` (< function_count()).
  Result<GoFunction> function(std::size_t index) const;
  // The function containing file address `pc`; nothing if no function does.
  Result<std::optional<GoFunction>> function_at(std::uint64_t pc) const;

  // The value of the pc-value table at `table_offset` (in pctab) of `function` at `pc`; -1 where the table is
  // absent (offset 0), as the runtime reads it.
  Result<std::int32_t> pc_value(const GoFunction& function, std::uint32_t table_offset, std::uint64_t pc) const;
  // The stack bytes the function has allocated at `pc` (pcsp): its CFA is sp + this + 8.
  Result<std::int32_t> frame_size(const GoFunction& function, std::uint64_t pc) const;
  Result<std::string_view> file_at(const GoFunction& function, std::uint64_t pc) const;
  Result<std::int32_t> line_at(const GoFunction& function, std::uint64_t pc) const;
  // PCDATA table `table` (kGoPcdata*) at `pc`; -1 if the function has no such table.
  Result<std::int32_t> pcdata(const GoFunction& function, std::uint32_t table, std::uint64_t pc) const;
  // The file address of FUNCDATA `index` (kGoFuncdata*); nothing if the function has none.
  Result<std::optional<std::uint64_t>> funcdata_address(const GoFunction& function, std::uint32_t index) const;
  // `size` bytes of the binary at file address `address` (from the data sections given to parse()).
  Result<std::span<const std::byte>> data_at(std::uint64_t address, std::uint64_t size) const;

  // The source frames at `pc`, innermost first: the inlined calls (from the inline tree), then the function.
  // Empty if no function covers `pc`.
  Result<std::vector<GoSourceFrame>> frames_at(std::uint64_t pc) const;

 private:
  GoPclntab() = default;
  Result<std::string_view> name_at(std::int64_t name_offset) const;
  Result<std::uint64_t> entry_of(std::size_t index) const;  // the functab entry's pc

  GoPclntabVersion version_ = GoPclntabVersion::go1_18;
  std::span<const std::byte> bytes_;
  std::uint64_t address_ = 0;
  std::uint64_t text_address_ = 0;
  std::uint64_t gofunc_address_ = 0;
  std::vector<GoAddressedBytes> data_;
  std::size_t function_count_ = 0;
  std::size_t file_count_ = 0;
  std::size_t pointer_size_ = 8;
  std::uint32_t pc_quantum_ = 1;
  // Offsets of the sub-tables from the start of the header.
  std::uint64_t funcname_offset_ = 0, cu_offset_ = 0, filetab_offset_ = 0, pctab_offset_ = 0, pcln_offset_ = 0;
  std::uint64_t min_pc_ = 0, max_pc_ = 0;
};

}  // namespace fiberscope::binary
