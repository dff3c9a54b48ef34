// libFuzzer target: ElfImage::open on arbitrary bytes, then everything a caller asks an image (sections, symbols,
// build-id, debuglink). Seeds: small executables of the suite (corpus/elf_image/).
#include <cstddef>
#include <cstdint>

#include "binary/elf_image.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fiberscope;
  fuzz::MemoryFile file(data, size);
  auto image = binary::ElfImage::open(file.path());
  if (!image) return 0;
  const binary::ElfImage& elf = **image;
  std::uint64_t sink = elf.first_load_vaddr() + (elf.is_shared_object() ? 1 : 0) + (elf.has_dwarf() ? 1 : 0);
  for (const auto& section : elf.sections()) {
    // Touch every byte the image claims to own: ASan reports any span that points outside the file.
    for (std::byte b : section.bytes) sink += static_cast<std::uint64_t>(b);
    if (auto named = elf.section(section.name)) sink += named->bytes.size();  // decompresses SHF_COMPRESSED
  }
  for (const auto& segment : elf.load_segments()) sink += segment.file_size_bytes;
  for (const char* name : {"main", "fiberscope_debug_root", "_start"}) {
    if (auto symbol = elf.find_symbol(name)) sink += symbol->address;
  }
  for (std::uint64_t address : {std::uint64_t{0}, std::uint64_t{0x401000}, std::uint64_t{0x1139}, ~std::uint64_t{0}}) {
    if (auto symbol = elf.symbol_containing(address)) sink += symbol->size_bytes + symbol->name.size();
  }
  if (auto id = elf.build_id()) sink += id->size();
  if (auto link = elf.debuglink()) sink += link->size();
  return sink == 0x5eed ? 0 : 0;  // keeps `sink` live without a branch the fuzzer could chase
}
