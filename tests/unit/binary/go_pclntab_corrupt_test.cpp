// GoPclntab on hand-built tables: the valid one answers exactly, and each corrupt copy (one defect each) fails with
// one exact message that says what and where, never a crash, a hang or a wrong answer.
#include <catch2/catch.hpp>

#include <string>

#include "base/hex.h"
#include "binary/go_pclntab.h"
#include "go_pclntab_builder.h"

using fiberscope::binary::GoAddressedBytes;
using fiberscope::binary::GoPclntab;
using fiberscope::binary::GoPclntabVersion;
using namespace go_pclntab_builder;

namespace {

fiberscope::Result<GoPclntab> parse(const Table& table) {
  return GoPclntab::parse(table.bytes, kTableAddress, 0, kGofunc, {GoAddressedBytes{kGofunc, table.data}});
}

std::string frames_text(const GoPclntab& table, std::uint64_t pc) {
  auto frames = table.frames_at(pc);
  if (!frames) return "error: " + frames.error().message;
  std::string text;
  for (const auto& frame : *frames)
    text += std::string(frame.function) + " " + std::string(frame.file) + ":" + std::to_string(frame.line) +
            (frame.inlined ? " (inlined)" : "") + "; ";
  return text;
}

// The error of the first failing step: parsing, then frames at `pc`.
std::string error_at(const Table& table, std::uint64_t pc) {
  auto parsed = parse(table);
  if (!parsed) return parsed.error().message;
  return frames_text(*parsed, pc);
}

}  // namespace

TEST_CASE("A hand-built pclntab gives its functions, frame sizes, lines and inlined frames", "[go][pclntab]") {
  const Table built = build();
  auto table = parse(built);
  INFO((table ? "" : table.error().message));
  REQUIRE(table);
  CHECK(table->version() == GoPclntabVersion::go1_18);
  CHECK(table->function_count() == 2);
  CHECK(table->min_pc() == kText);
  CHECK(table->max_pc() == kText + 0x60);
  CHECK(frames_text(*table, kText) == "main.outer a.go:10; ");
  CHECK(frames_text(*table, kText + 0x14) == "main.inner b.go:10 (inlined); main.outer a.go:10; ");
  CHECK(frames_text(*table, kText + 0x30) == "main.outer a.go:12; ");
  CHECK(frames_text(*table, kText + 0x44) == "main.inner b.go:20; ");
  CHECK(frames_text(*table, kText + 0x60).empty());  // past the text: no function
  auto outer = table->function_at(kText + 3);
  REQUIRE(outer);
  REQUIRE(*outer);
  CHECK(*table->frame_size(**outer, kText + 3) == 0);
  CHECK(*table->frame_size(**outer, kText + 4) == 0x18);
  CHECK(*table->pcdata(**outer, fiberscope::binary::kGoPcdataStackMapIndex, kText + 4) == -1);  // offset 0: none
  CHECK(*table->pcdata(**outer, 7, kText + 4) == -1);  // past npcdata
  CHECK(**table->funcdata_address(**outer, fiberscope::binary::kGoFuncdataInlTree) == kGofunc);
  CHECK_FALSE(*table->funcdata_address(**outer, fiberscope::binary::kGoFuncdataArgsPointerMaps));  // ~0: none
  CHECK_FALSE(*table->funcdata_address(**outer, 9));  // past nfuncdata
}

TEST_CASE("Corrupt pclntabs fail with one exact message each", "[go][pclntab]") {
  SECTION("an unknown magic") {
    Table table = build();
    table.put<std::uint32_t>(0, 0x12345678);
    CHECK(error_at(table, kText) == ".gopclntab: unknown magic 0x12345678 at offset 0x0");
  }
  SECTION("Go 1.2-1.15's table") {
    Table table = build();
    table.put<std::uint32_t>(0, 0xfffffffb);
    CHECK(error_at(table, kText) == ".gopclntab: magic 0xfffffffb is Go 1.2-1.15's table, not read");
  }
  SECTION("a 32-bit table") {
    Table table = build();
    table.put<std::uint8_t>(7, 4);
    CHECK(error_at(table, kText) == ".gopclntab header: pointer size 4 at offset 0x7 (x86-64 has 8)");
  }
  SECTION("a header cut short") {
    Table table = build();
    table.bytes.resize(0x30);
    CHECK(error_at(table, kText) == ".gopclntab header: truncated operand at offset 0x30");
  }
  SECTION("a sub-table offset past the end") {
    Table table = build();
    table.put<std::uint64_t>(table.funcname_offset_field, 0x100000);
    CHECK(error_at(table, kText) ==
          ".gopclntab header: funcnametab offset 0x100000 out of order or past the end (size " +
              fiberscope::hex(table.bytes.size()) + ")");
  }
  SECTION("more functions than the function table holds") {
    Table table = build();
    table.put<std::uint64_t>(table.function_count_field, 1'000'000'000);
    auto parsed = parse(table);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().message.starts_with(".gopclntab header: 1000000000 functions do not fit the function table"));
  }
  SECTION("a function record past the end") {
    Table table = build();
    table.put<std::uint32_t>(table.functab + 4, 0x7fffffff);
    CHECK(error_at(table, kText) == "error: .gopclntab function 0: _func offset 0x7fffffff past the end of the "
                                    "function table (size 0x84)");
  }
  SECTION("a record whose entry disagrees with the function table") {
    Table table = build();
    table.put<std::uint32_t>(table.outer_record, 0x20);
    CHECK(error_at(table, kText).ends_with(": entry 0x401020 disagrees with the function table's 0x401000"));
  }
  SECTION("a name offset past the name table") {
    Table table = build();
    table.put<std::int32_t>(table.outer_record + 4, 5000);
    CHECK(error_at(table, kText).ends_with(".gopclntab funcnametab: seek past the end to at offset 0x1388"));
  }
  SECTION("a pc-value table that runs off the end of pctab") {
    Table table = build();
    table.bytes[table.inner_pcln_table + 1] = std::byte{1};     // line 20 for one byte only,
    table.bytes[table.inner_pcln_table + 2] = std::byte{0x80};  // then a varint cut by the end of pctab
    CHECK(error_at(table, kText + 0x44) == "error: .gopclntab pc-value table at pctab+0x1f of main.inner: "
                                           ".gopclntab pctab: truncated ULEB128 at offset 0x21");
  }
  SECTION("an inline tree whose parent pc points back into the inlined call") {
    Table table = build();
    const std::int32_t inside = 0x14;
    std::memcpy(table.data.data() + table.inline_parent_pc, &inside, 4);
    CHECK(error_at(table, kText + 0x14) == "error: .gopclntab inline tree of main.outer: deeper than 256 calls");
  }
  SECTION("an inline tree entry outside the binary's data") {
    Table table = build();
    table.data.resize(12);
    CHECK(error_at(table, kText + 0x14) ==
          "error: Go funcdata: 20 bytes at 0x600000 are in no section of the binary");
  }
  SECTION("an inline parent pc outside the function") {
    Table table = build();
    const std::int32_t outside = 0x1000;
    std::memcpy(table.data.data() + table.inline_parent_pc, &outside, 4);
    CHECK(error_at(table, kText + 0x14) ==
          "error: .gopclntab inline tree of main.outer: entry 0 has parent pc offset 4096 outside the function");
  }
}
