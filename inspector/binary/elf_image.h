// ElfImage: one ELF file (executable, shared library or separate debug file), opened read-only with libelf.
//
// The file is hostile input: every offset and size is checked against the file before use, and a malformed file
// yields an Error naming the section and offset. Addresses here are the file's own (unbiased) addresses; add a
// module's load bias to get the address in a process.
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

namespace fiberscope::binary {

struct ElfSection {
  std::string name;
  std::uint32_t type = 0;         // SHT_*
  std::uint64_t address = 0;      // sh_addr (0 for non-allocated sections such as .debug_frame)
  std::uint64_t file_offset = 0;
  std::span<const std::byte> bytes;  // empty for SHT_NOBITS; valid while the ElfImage lives
  // SHF_COMPRESSED (e.g. Debian's debug files): section() returns the decompressed bytes, decompressing on first
  // use; sections() lists the raw, compressed ones.
  bool compressed = false;
};

struct ElfSymbol {
  std::string name;               // as stored (mangled)
  std::uint64_t address = 0;
  std::uint64_t size_bytes = 0;
  bool is_function = false;
};

struct ElfSegment {               // a PT_LOAD program header
  std::uint64_t vaddr = 0;
  std::uint64_t mem_size_bytes = 0;
  std::uint64_t file_offset = 0;
  std::uint64_t file_size_bytes = 0;
  std::uint32_t flags = 0;        // PF_R | PF_W | PF_X
};

class ElfImage {
 public:
  // Opens and validates `path` (ELF64, little-endian, x86-64).
  static Result<std::unique_ptr<ElfImage>> open(const std::string& path);
  ~ElfImage();
  ElfImage(const ElfImage&) = delete;
  ElfImage& operator=(const ElfImage&) = delete;

  const std::string& path() const;
  // The section named `name` (".eh_frame", ".debug_frame", ...), if present and within the file.
  std::optional<ElfSection> section(std::string_view name) const;
  // Every section in header order (index 0 is the null section).
  const std::vector<ElfSection>& sections() const;
  const std::vector<ElfSegment>& load_segments() const;
  // The lowest PT_LOAD vaddr rounded down to its alignment: load bias = mapped start - this.
  std::uint64_t first_load_vaddr() const;
  bool is_shared_object() const;  // ET_DYN

  // The symbol called `name` in .symtab, else .dynsym.
  std::optional<ElfSymbol> find_symbol(std::string_view name) const;
  // The function symbol whose [address, address+size) contains `address`, else the nearest one below if its size
  // is 0 (a label); none when `address` lies past the end of the nearest sized symbol.
  std::optional<ElfSymbol> symbol_containing(std::uint64_t address) const;

  std::optional<std::string> build_id() const;   // hex of NT_GNU_BUILD_ID
  std::optional<std::string> debuglink() const;  // .gnu_debuglink file name
  bool has_dwarf() const;                        // a .debug_info section is present

 private:
  ElfImage();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fiberscope::binary
