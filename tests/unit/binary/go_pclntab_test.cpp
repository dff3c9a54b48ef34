// GoPclntab against real Go binaries (Debian's Go 1.19, the suite's go_states and go_cgo): the binary's DWARF and
// symbol table are the oracle for the table's functions, files, lines and inlined frames; the stripped variants
// must give the same answers from the table alone.
#include <catch2/catch.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "binary/dwarf_index.h"
#include "binary/elf_image.h"
#include "binary/go_pclntab.h"
#include "binary_test_support.h"

using fiberscope::binary::DwarfIndex;
using fiberscope::binary::ElfImage;
using fiberscope::binary::GoFunction;
using fiberscope::binary::GoPclntab;
using fiberscope::binary::GoPclntabVersion;

namespace {

struct OpenTable {
  std::unique_ptr<ElfImage> image;
  std::unique_ptr<GoPclntab> table;
};

OpenTable open_table(const std::string& name) {
  auto image = ElfImage::open(binary_test::program(name));
  REQUIRE(image);
  auto table = GoPclntab::from_image(**image);
  INFO((table ? "" : table.error().message));
  REQUIRE(table);
  return {std::move(*image), std::move(*table)};
}

std::vector<GoFunction> all_functions(const GoPclntab& table) {
  std::vector<GoFunction> functions;
  for (std::size_t i = 0; i < table.function_count(); ++i) {
    auto function = table.function(i);
    INFO("function " << i << ": " << (function ? "" : function.error().message));
    REQUIRE(function);
    functions.push_back(*function);
  }
  return functions;
}

// Go's linker emits "pkg.name" symbols for every function the table lists (assembly included).
void check_against_symbols(const std::string& program) {
  auto [image, table] = open_table(program);
  CHECK(table->version() == GoPclntabVersion::go1_18);
  CHECK(table->gofunc_address() == image->find_symbol("go.func.*")->address);
  const auto functions = all_functions(*table);
  REQUIRE(functions.size() > 1000);
  std::size_t checked = 0;
  for (const GoFunction& function : functions) {
    // Assembly functions' symbols carry their ABI ("internal/cpu.cpuid.abi0"); a function with both ABIs is listed
    // twice under one name (the ABIInternal wrapper's symbol has the bare name).
    auto symbol = image->find_symbol(function.name);
    if (!symbol || symbol->address != function.entry) {
      if (auto abi0 = image->find_symbol(std::string(function.name) + ".abi0")) symbol = abi0;
    }
    INFO(function.name << " at 0x" << std::hex << function.entry);
    if (!symbol && function.name.starts_with("type..eq.[...]")) {
      // The table abbreviates array lengths in generated names: "type..eq.[5]T" is "type..eq.[...]T" there.
      symbol = image->symbol_containing(function.entry);
      REQUIRE(symbol);
      CHECK(symbol->name.substr(symbol->name.find(']')) == function.name.substr(function.name.find(']')));
    }
    REQUIRE(symbol);
    CHECK(symbol->address == function.entry);
    ++checked;
  }
  CHECK(checked == functions.size());
}

}  // namespace

TEST_CASE("The pclntab of a Go 1.19 binary lists every function at its symbol's address", "[go][pclntab]") {
  check_against_symbols("go_states");
  check_against_symbols("go_cgo");
}

TEST_CASE("The pclntab gives the file:line and inlined frames DWARF gives, at entries and sampled pcs",
          "[go][pclntab]") {
  for (const std::string program : {"go_states", "go_cgo", "go_states_noopt"}) {
    INFO(program);
    auto [image, table] = open_table(program);
    auto index = DwarfIndex::open(*image);
    REQUIRE(index);
    const auto functions = all_functions(*table);
    std::size_t compared = 0, inlined_seen = 0;
    std::map<std::string, std::size_t> disagreements;
    for (std::size_t i = 0; i < functions.size(); i += 7) {
      const GoFunction& function = functions[i];
      // The table's function ends where the next begins; the symbol's size leaves out the padding between them.
      auto symbol = image->symbol_containing(function.entry);
      REQUIRE(symbol);
      const std::uint64_t end = symbol->address == function.entry ? function.entry + symbol->size_bytes : function.end;
      for (std::uint64_t pc = function.entry; pc < end; pc += std::max<std::uint64_t>(1, (end - function.entry) / 5)) {
        auto go_frames = table->frames_at(pc);
        INFO(function.name << " pc 0x" << std::hex << pc << (go_frames ? "" : go_frames.error().message));
        REQUIRE(go_frames);
        REQUIRE(!go_frames->empty());
        auto dwarf_frames = (*index)->frames_at(pc);
        REQUIRE(dwarf_frames);
        if (dwarf_frames->empty()) continue;  // assembly without DWARF subprograms
        ++compared;
        CHECK(go_frames->back().function == function.name);
        CHECK(go_frames->back().entry == function.entry);
        if (go_frames->size() > 1) ++inlined_seen;
        // Same chain of functions, innermost first, with the same file:line at every level.
        std::string go_chain, dwarf_chain;
        for (const auto& frame : *go_frames)
          go_chain += std::string(frame.function) + "@" + std::string(frame.file) + ":" + std::to_string(frame.line) +
                      " ";
        for (const auto& frame : *dwarf_frames) {
          // Known differences: Go's DWARF joins relative file names ("<autogenerated>", "_cgo_gotypes.go") to the
          // compilation directory ".", and the pclntab abbreviates array types in generated names
          // ("type..eq.[...]T" for "[5]T").
          const std::string file = frame.file.starts_with("./") ? frame.file.substr(2) : frame.file;
          std::string name = frame.function;
          if (name.starts_with("type..eq.[") && name.find(']') != std::string::npos)
            name = "type..eq.[...]" + name.substr(name.find(']') + 1);
          dwarf_chain += name + "@" + file + ":" + std::to_string(frame.line) + " ";
        }
        // And Go's DWARF describes no inlined calls in generated wrappers, where the pclntab's inline tree does.
        const bool wrapper_inlining = go_frames->size() > 1 && dwarf_frames->size() == 1 &&
                                      go_frames->back().file == "<autogenerated>" &&
                                      go_frames->back().function == dwarf_frames->back().function;
        if (go_chain != dwarf_chain && !wrapper_inlining) disagreements[go_chain + "| " + dwarf_chain] = pc;
      }
    }
    INFO(compared << " pcs compared, " << inlined_seen << " in inlined code");
    CHECK(compared > 1000);
    for (const auto& [chains, pc] : disagreements) UNSCOPED_INFO("0x" << std::hex << pc << ": " << chains);
    CHECK(disagreements.empty());
    if (program != "go_states_noopt") CHECK(inlined_seen > 50);
  }
}

TEST_CASE("A stripped Go binary's pclntab (gofunc found through moduledata) answers as the DWARF build's does",
          "[go][pclntab]") {
  for (const std::string base : {"go_states", "go_cgo"}) {
    auto [image, table] = open_table(base);
    for (const std::string& variant : {base + "_nodwarf", base + "_stripped"}) {
      INFO(variant);
      auto [variant_image, variant_table] = open_table(variant);
      // cgo's external link keeps gcc's DWARF for the C code under -w: only Go's own units are gone.
      if (base == "go_states") CHECK_FALSE(variant_image->has_dwarf());
      if (variant.ends_with("_stripped")) CHECK_FALSE(variant_image->find_symbol("go.func.*"));
      REQUIRE(variant_table->gofunc_address() != 0);
      const auto functions = all_functions(*table);
      const auto variant_functions = all_functions(*variant_table);
      REQUIRE(functions.size() == variant_functions.size());
      // -w and -s drop sections, not code: the text and the table agree function by function, pc by pc.
      std::size_t inlined_seen = 0;
      for (std::size_t i = 0; i < functions.size(); ++i) {
        INFO(functions[i].name);
        REQUIRE(variant_functions[i].name == functions[i].name);
        REQUIRE(variant_functions[i].entry == functions[i].entry);
        for (std::uint64_t pc = functions[i].entry; pc < functions[i].end; pc += 16) {
          auto expected = table->frames_at(pc);
          auto got = variant_table->frames_at(pc);
          if (!expected) {  // padding after the function's code: no pc-value table covers it
            REQUIRE(!got);
            CHECK(got.error().message == expected.error().message);
            continue;
          }
          INFO((got ? "" : got.error().message));
          REQUIRE(got);
          REQUIRE(got->size() == expected->size());
          if (got->size() > 1) ++inlined_seen;
          for (std::size_t f = 0; f < got->size(); ++f) {
            CHECK((*got)[f].function == (*expected)[f].function);
            CHECK((*got)[f].file == (*expected)[f].file);
            CHECK((*got)[f].line == (*expected)[f].line);
          }
        }
      }
      CHECK(inlined_seen > 50);
    }
  }
}

TEST_CASE("The pclntab's pcsp gives each Go function's frame size as its DWARF CFI does", "[go][pclntab]") {
  // `readelf --debug-dump=frames-interp` prints Go's .debug_frame rows: "pc  cfa" with cfa = rsp+N.
  auto [image, table] = open_table("go_states");
  const std::string rows = binary_test::run("readelf --debug-dump=frames-interp " +
                                            binary_test::program("go_states") + " 2>/dev/null");
  std::size_t compared = 0;
  std::istringstream in(rows);
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long pc = 0;
    int offset = 0;
    if (std::sscanf(line.c_str(), "%llx rsp+%d", &pc, &offset) != 2) continue;
    auto function = table->function_at(pc);
    REQUIRE(function);
    if (!*function) continue;
    auto size = table->frame_size(**function, pc);
    INFO((*function)->name << " pc 0x" << std::hex << pc);
    REQUIRE(size);
    CHECK(*size + 8 == offset);
    if (++compared == 20000) break;
  }
  CHECK(compared > 5000);
}
