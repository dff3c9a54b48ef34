// CFI parsing: hand-built CIEs/FDEs (every DW_CFA op, truncation, garbage) and the CFI of real binaries.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "binary/elf_image.h"
#include "cfi_builder.h"
#include "unwind/cfi_program.h"
#include "unwind/cfi_section.h"

using namespace fiberscope;
using namespace fiberscope::unwind;
using fiberscope::unwind::testing::CfiBuilder;
using Kind = RegisterRule::Kind;

namespace {

// def_cfa rsp+8; rip saved at cfa-8: what GCC's CIEs say at a function's entry.
const std::vector<std::uint8_t> kEntryCie = {0x0c, 7, 8, 0x90, 1};

CfiRow row_at(const CfiSection& section, std::uint64_t pc) {
  auto fde = section.find_fde(pc);
  REQUIRE(fde);
  REQUIRE(fde->has_value());
  auto row = compute_row(section, **fde, pc);
  INFO((row ? "" : row.error().message));
  REQUIRE(row);
  return *row;
}

}  // namespace

TEST_CASE("A hand-built CIE and FDE parse with the fields they were given") {
  CfiBuilder cfi;
  const auto cie_offset = cfi.cie(kEntryCie);
  const auto fde_offset = cfi.fde(cie_offset, 0x1000, 0x40, {0x41, 0x0e, 16});
  cfi.terminator();
  const auto section = CfiSection::eh_frame(cfi.bytes(), 0x5000);

  auto cie = section.parse_cie(cie_offset);
  REQUIRE(cie);
  CHECK(cie->code_alignment == 1);
  CHECK(cie->data_alignment == -8);
  CHECK(cie->return_address_register == 16);
  CHECK(cie->has_augmentation_data);
  auto fde = section.parse_fde(fde_offset);
  REQUIRE(fde);
  CHECK(fde->pc_begin == 0x1000);
  CHECK(fde->pc_end == 0x1040);
  CHECK(section.find_fde(0x0fff)->has_value() == false);
  CHECK(section.find_fde(0x1040)->has_value() == false);
  CHECK((*section.find_fde(0x103f))->offset == fde_offset);
}

TEST_CASE("Every DW_CFA operation sets the rule it names, row by row") {
  CfiBuilder cfi;
  const auto cie = cfi.cie(kEntryCie);
  cfi.fde(cie, 0x1000, 0x100, {
      0x41, 0x0e, 16, 0x86, 2,                     // 0x1001: def_cfa_offset 16; rbp at cfa-16
      0x42, 0x0d, 6,                               // 0x1003: def_cfa_register rbp
      0x41, 0x0a,                                  // 0x1004: remember_state
      0x83, 3, 0x07, 12, 0x08, 13,                 //   rbx at cfa-24; r12 undefined; r13 same value
      0x09, 14, 3, 0x14, 15, 2, 0x2e, 32,          //   r14 in rbx; r15 = cfa-16; GNU_args_size 32
      0x02, 0x10, 0x0b, 0xc6,                      // 0x1014: restore_state; restore rbp
      0x03, 0x10, 0x00,                            // 0x1024:
      0x10, 3, 2, 0x77, 0x08,                      //   rbx at [rsp+8] (DW_CFA_expression)
      0x16, 12, 2, 0x77, 0x10,                     //   r12 = rsp+16 (DW_CFA_val_expression)
      0x04, 0x10, 0, 0, 0,                         // 0x1034:
      0x0f, 3, 0x77, 0x08, 0x06,                   //   def_cfa_expression [rsp+8]
      0x01, 0x50, 0x10, 0, 0, 0, 0, 0, 0,          // set_loc 0x1050:
      0x12, 7, 0x7e, 0x11, 6, 2, 0x05, 3, 3,       //   def_cfa_sf rsp+16; rbp at cfa-16 (sf); rbx at cfa-24
      0x15, 13, 0x7f, 0x2f, 14, 1, 0x13, 0x7c,     //   r13 = cfa+8 (val_offset_sf); r14 at cfa+8 (GNU neg); cfa off 32
      0x06, 3,                                     //   restore_extended rbx
  });
  const auto section = CfiSection::eh_frame(cfi.bytes(), 0x5000);

  auto row = row_at(section, 0x1000);
  CHECK(row.cfa.kind == CfaRule::Kind::register_offset);
  CHECK(row.cfa.base_register == 7);
  CHECK(row.cfa.offset == 8);
  CHECK(row.registers[16].kind == Kind::offset);
  CHECK(row.registers[16].offset == -8);
  CHECK(row.start_address == 0x1000);
  CHECK(row.end_address == 0x1001);

  row = row_at(section, 0x1002);
  CHECK(row.cfa.offset == 16);
  CHECK(row.registers[6].kind == Kind::offset);
  CHECK(row.registers[6].offset == -16);

  row = row_at(section, 0x1003);
  CHECK(row.cfa.base_register == 6);
  CHECK(row.cfa.offset == 16);

  row = row_at(section, 0x1013);
  CHECK(row.registers[3].kind == Kind::offset);
  CHECK(row.registers[3].offset == -24);
  CHECK(row.registers[12].kind == Kind::undefined);
  CHECK(row.registers[13].kind == Kind::same_value);
  CHECK(row.registers[14].kind == Kind::register_copy);
  CHECK(row.registers[14].source_register == 3);
  CHECK(row.registers[15].kind == Kind::val_offset);
  CHECK(row.registers[15].offset == -16);
  CHECK(row.args_size == 32);
  CHECK(row.end_address == 0x1014);

  row = row_at(section, 0x1014);  // restore_state brought back the remembered rules, restore dropped rbp's
  CHECK(row.registers[3].kind == Kind::unspecified);
  CHECK(row.registers[12].kind == Kind::unspecified);
  CHECK(row.registers[6].kind == Kind::unspecified);
  CHECK(row.cfa.base_register == 6);

  row = row_at(section, 0x1024);
  CHECK(row.registers[3].kind == Kind::expression);
  CHECK(row.registers[3].expression.size() == 2);
  CHECK(row.registers[12].kind == Kind::val_expression);

  row = row_at(section, 0x1040);
  CHECK(row.cfa.kind == CfaRule::Kind::expression);
  CHECK(row.cfa.expression.size() == 3);
  CHECK(row.end_address == 0x1050);

  row = row_at(section, 0x10ff);
  CHECK(row.cfa.kind == CfaRule::Kind::register_offset);
  CHECK(row.cfa.base_register == 7);
  CHECK(row.cfa.offset == 32);
  CHECK(row.registers[6].offset == -16);
  CHECK(row.registers[3].kind == Kind::unspecified);
  CHECK(row.registers[13].kind == Kind::val_offset);
  CHECK(row.registers[13].offset == 8);
  CHECK(row.registers[14].kind == Kind::offset);
  CHECK(row.registers[14].offset == 8);
  CHECK(row.end_address == 0x1100);
}

TEST_CASE("A .debug_frame section is parsed with absolute addresses and section-offset CIE pointers") {
  CfiBuilder cfi(/*debug_frame=*/true);
  const auto cie = cfi.cie(kEntryCie);
  cfi.fde(cie, 0x2000, 0x10, {0x44, 0x0e, 24});
  const auto section = CfiSection::debug_frame(cfi.bytes());
  auto row = row_at(section, 0x2008);
  CHECK(row.cfa.offset == 24);
  CHECK(row_at(section, 0x2000).cfa.offset == 8);
}

TEST_CASE("restore_state without remember_state and unknown opcodes are errors naming the FDE") {
  CfiBuilder cfi;
  const auto cie = cfi.cie(kEntryCie);
  const auto bad_restore = cfi.fde(cie, 0x1000, 0x10, {0x0b});
  cfi.fde(cie, 0x2000, 0x10, {0x3c});
  const auto section = CfiSection::eh_frame(cfi.bytes(), 0x5000);
  auto fde = section.find_fde(0x1000);
  REQUIRE(fde);
  auto row = compute_row(section, **fde, 0x1000);
  REQUIRE_FALSE(row);
  CHECK_THAT(row.error().message, Catch::Contains("FDE at .eh_frame+" + hex(bad_restore)));
  CHECK_THAT(row.error().message, Catch::Contains("restore_state without remember_state"));
  fde = section.find_fde(0x2000);
  REQUIRE(fde);
  row = compute_row(section, **fde, 0x2000);
  REQUIRE_FALSE(row);
  CHECK_THAT(row.error().message, Catch::Contains("unknown call frame instruction 0x3c"));
}

TEST_CASE("remember_state nested without bound is refused") {
  CfiBuilder cfi;
  const auto cie = cfi.cie(kEntryCie);
  cfi.fde(cie, 0x1000, 0x10, std::vector<std::uint8_t>(kMaxRememberDepth + 1, 0x0a));
  const auto section = CfiSection::eh_frame(cfi.bytes(), 0x5000);
  auto row = compute_row(section, **section.find_fde(0x1000), 0x1000);
  REQUIRE_FALSE(row);
  CHECK_THAT(row.error().message, Catch::Contains("nested deeper"));
}

TEST_CASE("A truncated FDE is reported with the section and offset") {
  CfiBuilder cfi;
  const auto cie = cfi.cie(kEntryCie);
  const auto fde_offset = cfi.fde(cie, 0x1000, 0x10, {0x41, 0x0e, 16});
  SECTION("the length runs past the end of the section") {
    auto bytes = cfi.mutable_bytes();
    bytes.resize(bytes.size() - 2);
    const auto section = CfiSection::eh_frame(bytes, 0x5000);
    auto fde = section.find_fde(0x1000);
    REQUIRE_FALSE(fde);
    CHECK_THAT(fde.error().message, Catch::Contains("truncated entry at .eh_frame+" + hex(fde_offset)));
  }
  SECTION("an instruction's operand is cut off") {
    CfiBuilder cut;
    const auto cut_cie = cut.cie(kEntryCie);
    const auto cut_fde = cut.fde(cut_cie, 0x1000, 0x10, {0x0c, 7});  // def_cfa without its offset
    const auto section = CfiSection::eh_frame(cut.bytes(), 0x5000);
    auto row = compute_row(section, **section.find_fde(0x1000), 0x1000);
    REQUIRE_FALSE(row);
    CHECK_THAT(row.error().message, Catch::Contains("FDE at .eh_frame+" + hex(cut_fde)));
    CHECK_THAT(row.error().message, Catch::Contains("truncated"));
  }
  SECTION("the CIE pointer points before the section") {
    auto bytes = cfi.mutable_bytes();
    bytes[fde_offset + 4] = std::byte{0xff};
    bytes[fde_offset + 5] = std::byte{0xff};
    const auto section = CfiSection::eh_frame(bytes, 0x5000);
    auto fde = section.parse_fde(fde_offset);
    REQUIRE_FALSE(fde);
    CHECK_THAT(fde.error().message, Catch::Contains("FDE at .eh_frame+" + hex(fde_offset)));
  }
  SECTION("the CIE has an unknown augmentation") {
    CfiBuilder odd;
    const auto odd_cie = odd.cie(kEntryCie, "zRQ");
    odd.fde(odd_cie, 0x1000, 0x10, {});
    const auto section = CfiSection::eh_frame(odd.bytes(), 0x5000);
    auto fde = section.find_fde(0x1000);
    REQUIRE_FALSE(fde);
    CHECK_THAT(fde.error().message, Catch::Contains("CIE at .eh_frame+0x0"));
    CHECK_THAT(fde.error().message, Catch::Contains("unknown augmentation 'Q'"));
  }
}

TEST_CASE("Garbage and mutated CFI bytes give errors or rows, never a crash or a hang") {
  CfiBuilder valid;
  const auto cie = valid.cie(kEntryCie);
  valid.fde(cie, 0x1000, 0x100, {0x41, 0x0e, 16, 0x86, 2, 0x42, 0x0d, 6, 0x0a, 0x83, 3, 0x0b, 0x0f, 3, 0x77, 8, 6});
  valid.fde(cie, 0x2000, 0x100, {0x07, 16});
  std::mt19937 random(12345);
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::vector<std::byte> bytes(valid.bytes().begin(), valid.bytes().end());
    if (iteration % 2 == 0) {
      const int flips = 1 + static_cast<int>(random() % 4);
      for (int i = 0; i < flips; ++i) bytes[random() % bytes.size()] = std::byte{static_cast<std::uint8_t>(random())};
    } else {
      bytes.resize(random() % 160);
      for (auto& b : bytes) b = std::byte{static_cast<std::uint8_t>(random())};
    }
    for (bool debug_frame : {false, true}) {
      const auto section = debug_frame ? CfiSection::debug_frame(bytes) : CfiSection::eh_frame(bytes, 0x5000);
      (void)section.all_fdes();
      for (std::uint64_t pc : {0x1000ull, 0x1050ull, 0x20ffull}) {
        auto fde = section.find_fde(pc);
        if (fde && *fde) (void)compute_row(section, **fde, pc);
      }
    }
  }
  SUCCEED("3000 corrupt sections parsed without crashing");
}

// libc has "zR" and signal-frame ("zRS") CIEs, libstdc++ "zPLR" ones with an indirect pcrel personality.
TEST_CASE("The .eh_frame_hdr table of libc and libstdc++ finds the same FDE as a scan, and every row computes") {
  const std::string path = GENERATE(as<std::string>{}, "/lib/x86_64-linux-gnu/libc.so.6",
                                    "/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
  INFO(path);
  auto image = binary::ElfImage::open(path);
  if (!image) {
    WARN("skipped: " << path << " cannot be opened (not Debian x86-64?): " << image.error().message);
    return;
  }
  auto eh = (*image)->section(".eh_frame");
  auto hdr = (*image)->section(".eh_frame_hdr");
  REQUIRE(eh);
  REQUIRE(hdr);
  const auto with_table = CfiSection::eh_frame(eh->bytes, eh->address, hdr->bytes, hdr->address);
  const auto scanned = CfiSection::eh_frame(eh->bytes, eh->address);
  CHECK(with_table.uses_search_table());
  CHECK_FALSE(scanned.uses_search_table());
  auto fdes = scanned.all_fdes();
  REQUIRE(fdes);
  REQUIRE(fdes->size() > 1000);
  std::size_t rows = 0;
  for (const Fde& fde : *fdes) {
    for (std::uint64_t pc : {fde.pc_begin, fde.pc_begin + (fde.pc_end - fde.pc_begin) / 2, fde.pc_end - 1}) {
      auto from_table = with_table.find_fde(pc);
      auto from_scan = scanned.find_fde(pc);
      REQUIRE(from_table);
      REQUIRE(from_scan);
      REQUIRE(from_table->has_value());
      REQUIRE(from_scan->has_value());
      REQUIRE((*from_table)->offset == (*from_scan)->offset);
      auto row = compute_row(with_table, **from_table, pc);
      INFO("pc " << hex(pc) << ": " << (row ? "" : row.error().message));
      REQUIRE(row);
      ++rows;
    }
  }
  CHECK(rows == 3 * fdes->size());
}

TEST_CASE("A program built without unwind tables has its CFI in .debug_frame, covering its functions") {
  const std::string path = std::string(FIBERSCOPE_TEST_BIN_DIR) + "/unwind_call_chains_O2_debug_frame";
  auto image = binary::ElfImage::open(path);
  REQUIRE(image);
  auto debug_frame = (*image)->section(".debug_frame");
  REQUIRE(debug_frame);
  const auto section = CfiSection::debug_frame(debug_frame->bytes);
  for (const char* function : {"level_a", "level_b", "level_c", "blocker", "fault_b"}) {
    auto symbol = (*image)->find_symbol(function);
    REQUIRE(symbol);
    auto fde = section.find_fde(symbol->address);
    INFO(function);
    REQUIRE(fde);
    REQUIRE(fde->has_value());
    CHECK((*fde)->pc_begin == symbol->address);
    CHECK(compute_row(section, **fde, symbol->address + symbol->size_bytes - 1));
  }
}
