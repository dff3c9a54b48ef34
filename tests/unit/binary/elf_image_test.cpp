#include <catch2/catch.hpp>
#include <elf.h>

#include <cstring>
#include <sstream>

#include "binary/elf_image.h"
#include "binary_test_support.h"

using fiberscope::binary::ElfImage;
using namespace binary_test;

namespace {

std::unique_ptr<ElfImage> open_ok(const std::string& path) {
  auto image = ElfImage::open(path);
  INFO(path << ": " << (image ? "" : image.error().message));
  REQUIRE(image);
  return std::move(*image);
}

// Writes a copy of `source` with one defect made by `edit`, and returns the error opening it gives.
template <class Edit>
std::string open_error_of_corrupt_copy(const std::string& source, const ScratchDirectory& scratch, Edit edit) {
  std::vector<char> bytes = read_file(source);
  REQUIRE(bytes.size() > sizeof(Elf64_Ehdr));
  edit(bytes);
  const std::string path = scratch.file("corrupt");
  write_file(path, bytes);
  auto image = ElfImage::open(path);
  REQUIRE_FALSE(image);
  return image.error().message;
}

Elf64_Ehdr header_of(const std::vector<char>& bytes) {
  Elf64_Ehdr header;
  std::memcpy(&header, bytes.data(), sizeof header);
  return header;
}

Elf64_Shdr section_header(const std::vector<char>& bytes, std::size_t index) {
  const Elf64_Ehdr header = header_of(bytes);
  Elf64_Shdr section;
  std::memcpy(&section, bytes.data() + header.e_shoff + index * sizeof section, sizeof section);
  return section;
}

void put_section_header(std::vector<char>& bytes, std::size_t index, const Elf64_Shdr& section) {
  const Elf64_Ehdr header = header_of(bytes);
  std::memcpy(bytes.data() + header.e_shoff + index * sizeof section, &section, sizeof section);
}

std::size_t section_index(const ElfImage& image, const std::string& name) {
  for (std::size_t i = 0; i < image.sections().size(); ++i)
    if (image.sections()[i].name == name) return i;
  FAIL("no section " << name);
  return 0;
}

}  // namespace

TEST_CASE("a test program's functions and exported data are found in its symbol table") {
  for (const char* name : {"dwarf_sample_O0", "dwarf_sample_O2"}) {
    auto image = open_ok(program(name));
    auto leaf = image->find_symbol("_ZN12dwarf_sample8leaf_addEilPKc");
    REQUIRE(leaf);
    CHECK(leaf->is_function);
    CHECK(leaf->size_bytes > 0);
    // Every pc inside the function maps back to it; just past it does not claim to be inside.
    auto containing = image->symbol_containing(leaf->address + leaf->size_bytes / 2);
    REQUIRE(containing);
    CHECK(containing->name == leaf->name);
    auto root = image->find_symbol("dwarf_sample_root");
    REQUIRE(root);
    CHECK_FALSE(root->is_function);
    CHECK(root->size_bytes == 32);
    CHECK(image->is_shared_object());  // PIE
    CHECK(image->has_dwarf());
    CHECK_FALSE(image->find_symbol("no_such_symbol_anywhere"));
  }
}

TEST_CASE("symbol addresses agree with nm") {
  auto image = open_ok(program("dwarf_sample_O2"));
  std::istringstream nm(run("nm --defined-only " + program("dwarf_sample_O2")));
  std::string address, type, name;
  int compared = 0;
  while (nm >> address >> type >> name) {
    if (type != "T" && type != "t") continue;
    auto symbol = image->find_symbol(name);
    if (!symbol) continue;  // several local symbols may share a name; find_symbol gives one of them
    if (symbol->address != std::stoull(address, nullptr, 16)) continue;
    ++compared;
  }
  CHECK(compared >= 5);
  auto main_symbol = image->find_symbol("main");
  REQUIRE(main_symbol);
  const std::string nm_main = run("nm " + program("dwarf_sample_O2") + " | awk '$3==\"main\"{print $1}'");
  CHECK(main_symbol->address == std::stoull(nm_main, nullptr, 16));
}

TEST_CASE("section bytes match readelf's hex dump of the same section") {
  auto image = open_ok(program("dwarf_sample_O0"));
  auto rodata = image->section(".rodata");
  REQUIRE(rodata);
  REQUIRE(rodata->bytes.size() > 8);
  // readelf -x prints lines like "  0x00002000 01000200 666f7274 ..." : address then up to four hex words.
  std::istringstream dump(run("readelf -x .rodata " + program("dwarf_sample_O0")));
  std::string line, hex_digits;
  while (std::getline(dump, line)) {
    std::istringstream words(line);
    std::string first;
    if (!(words >> first) || first.rfind("0x", 0) != 0) continue;
    for (int i = 0; i < 4; ++i) {
      std::string word;
      if (!(words >> word) || word.size() > 8 || word.find_first_not_of("0123456789abcdef") != std::string::npos) break;
      hex_digits += word;
    }
  }
  std::string ours;
  static const char digits[] = "0123456789abcdef";
  for (std::byte byte : rodata->bytes) {
    ours += digits[std::to_integer<unsigned>(byte) >> 4];
    ours += digits[std::to_integer<unsigned>(byte) & 15];
  }
  CHECK(ours == hex_digits);
  CHECK(rodata->address != 0);
  auto eh_frame = image->section(".eh_frame");
  REQUIRE(eh_frame);
  CHECK_FALSE(eh_frame->bytes.empty());
}

TEST_CASE("the build-id matches readelf -n") {
  auto image = open_ok(program("dwarf_sample_O2"));
  const std::string notes = run("readelf -n " + program("dwarf_sample_O2"));
  auto at = notes.find("Build ID: ");
  REQUIRE(at != std::string::npos);
  std::string expected = notes.substr(at + 10);
  expected = expected.substr(0, expected.find_first_of("\n "));
  REQUIRE(image->build_id());
  CHECK(*image->build_id() == expected);
}

TEST_CASE("PT_LOAD segments and the first load address describe the file's layout") {
  auto image = open_ok(program("dwarf_sample_O0"));
  REQUIRE_FALSE(image->load_segments().empty());
  bool executable = false;
  for (const auto& segment : image->load_segments()) {
    CHECK(segment.file_size_bytes <= segment.mem_size_bytes);
    executable = executable || (segment.flags & PF_X);
  }
  CHECK(executable);
  CHECK(image->first_load_vaddr() == 0);  // a PIE starts at 0
}

TEST_CASE("a stripped copy still resolves .dynsym symbols and says there is no DWARF") {
  ScratchDirectory scratch;
  const std::string stripped = scratch.file("stripped");
  REQUIRE(std::system(("strip -o " + stripped + " " + program("dwarf_sample_O2")).c_str()) == 0);
  auto image = open_ok(stripped);
  CHECK_FALSE(image->has_dwarf());
  CHECK_FALSE(image->section(".symtab"));
  auto root = image->find_symbol("dwarf_sample_root");
  REQUIRE(root);
  auto original = open_ok(program("dwarf_sample_O2"));
  CHECK(root->address == original->find_symbol("dwarf_sample_root")->address);
  CHECK_FALSE(image->find_symbol("_ZN12dwarf_sample8leaf_addEilPKc"));  // was only in .symtab
  CHECK(image->build_id() == original->build_id());
}

TEST_CASE("a separate debug file made by objcopy carries the DWARF and the same build-id") {
  ScratchDirectory scratch;
  const std::string debug = scratch.file("sample.debug");
  REQUIRE(std::system(("objcopy --only-keep-debug " + program("dwarf_sample_O2") + " " + debug).c_str()) == 0);
  auto image = open_ok(debug);
  CHECK(image->has_dwarf());
  CHECK(image->build_id() == open_ok(program("dwarf_sample_O2"))->build_id());
  auto text = image->section(".text");
  REQUIRE(text);
  CHECK(text->bytes.empty());  // SHT_NOBITS in a debug file: no bytes, and no error
}

TEST_CASE("corrupt ELF files give clear errors, one defect each") {
  ScratchDirectory scratch;
  const std::string good = program("dwarf_sample_O0");
  auto reference = open_ok(good);

  SECTION("truncated in the middle") {
    auto message = open_error_of_corrupt_copy(good, scratch,
                                              [](std::vector<char>& bytes) { bytes.resize(bytes.size() / 2); });
    CHECK_THAT(message, Catch::Contains("past the end of the file"));
  }
  SECTION("truncated inside the ELF header") {
    auto message = open_error_of_corrupt_copy(good, scratch, [](std::vector<char>& bytes) { bytes.resize(20); });
    CHECK_THAT(message, Catch::Contains("too short"));
  }
  SECTION("e_shoff points past the end") {
    auto message = open_error_of_corrupt_copy(good, scratch, [](std::vector<char>& bytes) {
      Elf64_Ehdr header = header_of(bytes);
      header.e_shoff = bytes.size() + 0x1000;
      std::memcpy(bytes.data(), &header, sizeof header);
    });
    CHECK_THAT(message, Catch::Contains("e_shoff"));
  }
  SECTION("a section's offset is past the end of the file") {
    const std::size_t index = section_index(*reference, ".rodata");
    auto message = open_error_of_corrupt_copy(good, scratch, [&](std::vector<char>& bytes) {
      Elf64_Shdr section = section_header(bytes, index);
      section.sh_offset = bytes.size() + 0x100;
      put_section_header(bytes, index, section);
    });
    CHECK_THAT(message, Catch::Contains(".rodata") && Catch::Contains("past the end"));
  }
  SECTION("the symbol table links to something that is not a string table") {
    const std::size_t index = section_index(*reference, ".symtab");
    auto message = open_error_of_corrupt_copy(good, scratch, [&](std::vector<char>& bytes) {
      Elf64_Shdr section = section_header(bytes, index);
      section.sh_link = 999;
      put_section_header(bytes, index, section);
    });
    CHECK_THAT(message, Catch::Contains(".symtab") && Catch::Contains("sh_link 999"));
  }
  SECTION("the machine is not x86-64") {
    auto message = open_error_of_corrupt_copy(good, scratch, [](std::vector<char>& bytes) {
      Elf64_Ehdr header = header_of(bytes);
      header.e_machine = EM_AARCH64;
      std::memcpy(bytes.data(), &header, sizeof header);
    });
    CHECK_THAT(message, Catch::Contains("not x86-64"));
  }
  SECTION("not an ELF file at all") {
    auto message = open_error_of_corrupt_copy(good, scratch, [](std::vector<char>& bytes) { bytes[0] = 'X'; });
    CHECK_THAT(message, Catch::Contains("not an ELF file"));
  }
}

TEST_CASE("a missing file is an error naming the path") {
  auto image = ElfImage::open("/nonexistent/fiberscope/binary");
  REQUIRE_FALSE(image);
  CHECK_THAT(image.error().message,
             Catch::Contains("/nonexistent/fiberscope/binary") && Catch::Contains("cannot open"));
}

TEST_CASE("a pc past the end of the nearest sized symbol is named by no symbol, as gdb does") {
  // libsized_symbols: sized_small_export (a few bytes, exported) lies right before sized_hidden_static (static).
  auto full = open_ok(program("libsized_symbols.so"));
  auto stripped = open_ok(program("libsized_symbols_stripped.so"));
  auto small = full->find_symbol("sized_small_export");
  auto hidden = full->find_symbol("sized_hidden_static");
  REQUIRE(small);
  REQUIRE(hidden);
  REQUIRE(small->address + small->size_bytes <= hidden->address);
  const std::uint64_t inside_hidden = hidden->address + hidden->size_bytes / 2;
  auto named = full->symbol_containing(inside_hidden);
  REQUIRE(named);
  CHECK(named->name == "sized_hidden_static");
  // Stripped, only .dynsym is left: sized_small_export is the nearest symbol below, but it ends before the pc.
  CHECK_FALSE(stripped->find_symbol("sized_hidden_static"));
  CHECK_FALSE(stripped->symbol_containing(inside_hidden));
  auto own = stripped->symbol_containing(small->address + small->size_bytes - 1);
  REQUIRE(own);
  CHECK(own->name == "sized_small_export");
}
