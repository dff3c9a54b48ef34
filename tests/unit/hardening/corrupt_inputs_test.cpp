// Every hand-made hostile input of tests/corrupt/ (README.md's table) through its decoder's real entry point: the
// decoder reports the defect in words a user can act on, and nothing crashes, hangs or allocates without bound.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "binary/dwarf_index.h"
#include "binary/elf_image.h"
#include "fake_table.h"
#include "fibers/fiber_table.h"
#include "target/memory.h"
#include "unwind/cfi_program.h"
#include "unwind/cfi_section.h"

namespace {

using namespace fiberscope;

const std::string kCorruptDir = std::string(FIBERSCOPE_SOURCE_DIR) + "/tests/corrupt";

struct CorruptInput {
  std::string file;
  std::string decoder;
  std::string expected;
  std::string defect;
};

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(' ');
  const auto last = text.find_last_not_of(' ');
  return first == std::string::npos ? "" : text.substr(first, last - first + 1);
}

// The rows of README.md's table: | file | decoder | expected text | defect |.
std::vector<CorruptInput> corrupt_inputs() {
  std::ifstream readme(kCorruptDir + "/README.md");
  std::vector<CorruptInput> rows;
  for (std::string line; std::getline(readme, line);) {
    if (line.rfind("| ", 0) != 0 || line.rfind("| file ", 0) == 0) continue;
    std::vector<std::string> cells;
    std::stringstream stream(line.substr(1));
    for (std::string cell; std::getline(stream, cell, '|');) cells.push_back(trim(cell));
    if (cells.size() >= 4) rows.push_back({cells[0], cells[1], cells[2], cells[3]});
  }
  return rows;
}

std::vector<std::byte> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

// What each decoder said about `path`: every error message it produced, in order.
std::vector<std::string> elf_errors(const std::string& path) {
  auto image = binary::ElfImage::open(path);
  if (image) return {};
  return {image.error().message};
}

void add_unique(std::vector<std::string>& errors, const std::string& message) {
  if (std::find(errors.begin(), errors.end(), message) == errors.end()) errors.push_back(message);
}

std::vector<std::string> dwarf_errors(const std::string& path) {
  auto image = binary::ElfImage::open(path);
  if (!image) return {"ElfImage: " + image.error().message};
  auto index = binary::DwarfIndex::open(**image);
  if (!index) return {index.error().message};
  std::vector<std::string> errors;
  for (const char* name : {"leaf", "middle", "outer", "_start"}) {
    auto symbol = (*image)->find_symbol(name);
    if (!symbol) continue;
    for (std::uint64_t pc = symbol->address; pc < symbol->address + symbol->size_bytes; pc += 4) {
      if (auto frames = (*index)->frames_at(pc); !frames) add_unique(errors, frames.error().message);
      if (auto line = (*index)->line_at(pc); !line) add_unique(errors, line.error().message);
    }
  }
  return errors;
}

constexpr std::uint64_t kSeedEhFrameAddress = 0x4002a0;

std::vector<std::string> cfi_errors(const std::string& path) {
  const auto bytes = read_bytes(path);
  const auto section = unwind::CfiSection::eh_frame(bytes, kSeedEhFrameAddress);
  auto fdes = section.all_fdes();
  if (!fdes) return {fdes.error().message};
  std::vector<std::string> errors;
  for (const auto& fde : *fdes) {
    for (std::uint64_t pc = fde.pc_begin; pc < fde.pc_end && pc - fde.pc_begin < 0x400; ++pc) {
      if (auto row = unwind::compute_row(section, fde, pc); !row) {
        errors.push_back(row.error().message);
        break;
      }
    }
  }
  return errors;
}

std::vector<std::string> fiber_table_errors(const std::string& path) {
  target::RegionMemory memory;
  REQUIRE(memory.add(target::RemoteAddress(fibers::testing::kImageBase), read_bytes(path)));
  auto table = fibers::read_fiber_table(memory, target::RemoteAddress(fibers::testing::kImageBase));
  if (!table) return {table.error().message};
  std::vector<std::string> errors;
  for (const auto& error : table->errors) errors.push_back(error.message);
  return errors;
}

std::vector<std::string> errors_of(const CorruptInput& input) {
  const std::string path = kCorruptDir + "/" + input.file;
  if (input.decoder == "elf") return elf_errors(path);
  if (input.decoder == "dwarf") return dwarf_errors(path);
  if (input.decoder == "cfi") return cfi_errors(path);
  if (input.decoder == "fiber_table") return fiber_table_errors(path);
  FAIL("README.md names an unknown decoder: " << input.decoder);
  return {};
}

}  // namespace

TEST_CASE("every corrupt input of tests/corrupt is rejected by its decoder with the expected words") {
  const auto inputs = corrupt_inputs();
  REQUIRE(inputs.size() >= 16);
  for (const auto& input : inputs) {
    INFO(input.file << " (" << input.defect << ")");
    REQUIRE(std::filesystem::exists(kCorruptDir + "/" + input.file));
    const auto errors = errors_of(input);
    std::string all;
    for (const auto& error : errors) all += error + "\n";
    INFO("errors:\n" << all);
    CHECK_THAT(all, Catch::Contains(input.expected));
  }
}

TEST_CASE("the valid inputs the corrupt ones are made from decode without errors") {
  CHECK(elf_errors(kCorruptDir + "/../fuzz/corpus/elf_image/O2.elf").empty());
  CHECK(dwarf_errors(kCorruptDir + "/../fuzz/corpus/elf_image/O2.elf").empty());
  CHECK(cfi_errors(kCorruptDir + "/cfi/eh_frame-valid.bin").empty());
  CHECK(fiber_table_errors(kCorruptDir + "/fiber_tables/valid.bin").empty());
  target::RegionMemory memory;
  REQUIRE(memory.add(target::RemoteAddress(fibers::testing::kImageBase),
                     read_bytes(kCorruptDir + "/fiber_tables/valid.bin")));
  auto table = fibers::read_fiber_table(memory, target::RemoteAddress(fibers::testing::kImageBase));
  REQUIRE(table);
  CHECK(table->fibers.size() == 4);
  CHECK(table->workers.size() == 2);
  REQUIRE(table->fiber_by_id(3) != nullptr);
  CHECK(table->fiber_by_id(3)->transitions.size() == 2);
}

TEST_CASE("the committed fiber table images are the ones the image builder makes today") {
  // Catches a debug-ABI change that left the corrupt images (and the fuzzer's seed) describing an old layout.
  CHECK(read_bytes(kCorruptDir + "/fiber_tables/valid.bin") == fibers::testing::valid_fiber_table_image());
}

TEST_CASE("a compressed section claiming more than deflate can produce is not inflated") {
  // elf/compressed-size-lie.elf: .debug_info's Elf64_Chdr says 512 MiB for a few hundred compressed bytes. libelf
  // would allocate the claim; the image refuses it and the section reads as empty, so DWARF fails cleanly.
  auto image = binary::ElfImage::open(kCorruptDir + "/elf/compressed-size-lie.elf");
  REQUIRE(image);
  auto info = (*image)->section(".debug_info");
  REQUIRE(info);
  CHECK(info->bytes.empty());
  auto index = binary::DwarfIndex::open(**image);
  if (index) CHECK((*index)->frames_at(0x401000).value_or(std::vector<binary::DwarfFrame>{}).empty());
}
