#include <catch2/catch.hpp>

#include <cstring>
#include <libdwarf/dwarf.h>

#include <map>
#include <sstream>

#include "binary/dwarf_expression.h"
#include "binary/dwarf_index.h"
#include "binary/elf_image.h"
#include "binary/line_program_files.h"
#include "binary_test_support.h"

using namespace fiberscope::binary;
using namespace binary_test;

namespace {

struct Loaded {
  std::unique_ptr<ElfImage> image;
  std::unique_ptr<DwarfIndex> index;
};

Loaded load(const std::string& name) {
  Loaded loaded;
  auto image = ElfImage::open(program(name));
  REQUIRE(image);
  loaded.image = std::move(*image);
  auto index = DwarfIndex::open(*loaded.image);
  INFO((index ? "" : index.error().message));
  REQUIRE(index);
  loaded.index = std::move(*index);
  return loaded;
}

ElfSymbol symbol(const ElfImage& image, const std::string& name) {
  auto found = image.find_symbol(name);
  REQUIRE(found);
  return *found;
}

struct ToolFrame {
  std::string function;
  std::string file;
  unsigned line = 0;
};

// eu-addr2line -a -i -f -C: per address, "0x..." then (function, file:line:column) pairs, innermost first.
std::map<std::uint64_t, std::vector<ToolFrame>> addr2line(const std::string& path,
                                                          const std::vector<std::uint64_t>& pcs) {
  std::string command = "eu-addr2line -a -i -f -C -e " + path;
  for (auto pc : pcs) command += " " + fiberscope::hex(pc);
  std::istringstream output(run(command));
  std::map<std::uint64_t, std::vector<ToolFrame>> result;
  std::string line;
  std::uint64_t current = 0;
  while (std::getline(output, line)) {
    if (line.rfind("0x", 0) == 0) {
      current = std::stoull(line, nullptr, 16);
      result[current];
      continue;
    }
    ToolFrame frame;
    frame.function = line.substr(0, line.find(" inlined at "));
    std::string location;
    std::getline(output, location);
    auto first_colon = location.find(':');
    frame.file = location.substr(0, first_colon);
    if (first_colon != std::string::npos)
      frame.line = static_cast<unsigned>(std::stoul(location.substr(first_colon + 1)));
    result[current].push_back(frame);
  }
  return result;
}

}  // namespace

TEST_CASE("frames at every pc of the sample's functions match eu-addr2line, inlined frames included") {
  for (const char* name : {"dwarf_sample_O0", "dwarf_sample_O2"}) {
    Loaded loaded = load(name);
    std::vector<std::uint64_t> pcs;
    for (const char* function : {"_ZN12dwarf_sample8leaf_addEilPKc", "_ZN12dwarf_sample12uses_inlinesEl",
                                 "_ZN12dwarf_sample12takes_structEPNS_5PointEj", "main"}) {
      const ElfSymbol s = symbol(*loaded.image, function);
      for (std::uint64_t pc = s.address; pc < s.address + s.size_bytes; ++pc) pcs.push_back(pc);
    }
    auto expected = addr2line(program(name), pcs);
    std::size_t inlined_seen = 0;
    for (std::uint64_t pc : pcs) {
      auto frames = loaded.index->frames_at(pc);
      REQUIRE(frames);
      const auto& tool = expected[pc];
      INFO(name << " pc " << fiberscope::hex(pc));
      REQUIRE(frames->size() == tool.size());
      for (std::size_t i = 0; i < tool.size(); ++i) {
        CHECK((*frames)[i].function == tool[i].function);
        CHECK((*frames)[i].file == tool[i].file);
        CHECK((*frames)[i].line == tool[i].line);
        CHECK((*frames)[i].inlined == (i + 1 < tool.size()));
      }
      if (frames->size() > 1) ++inlined_seen;
    }
    if (std::string(name) == "dwarf_sample_O2") CHECK(inlined_seen > 0);
  }
}

TEST_CASE("an inlined helper's frames name the header line and each call site") {
  Loaded loaded = load("dwarf_sample_O2");
  const ElfSymbol uses = symbol(*loaded.image, "_ZN12dwarf_sample12uses_inlinesEl");
  const unsigned square_body = line_of("tests/programs/dwarf/dwarf_helpers.h", "HELPER_SQUARE_BODY");
  const unsigned twice_calls = line_of("tests/programs/dwarf/dwarf_helpers.h", "HELPER_TWICE_CALLS_SQUARE");
  const unsigned outer_calls = line_of("tests/programs/dwarf/dwarf_sample.cpp", "USES_INLINES_CALLS_TWICE");
  REQUIRE(square_body > 0);
  bool found = false;
  for (std::uint64_t pc = uses.address; pc < uses.address + uses.size_bytes && !found; ++pc) {
    auto frames = loaded.index->frames_at(pc);
    REQUIRE(frames);
    if (frames->size() != 3) continue;
    found = true;
    CHECK((*frames)[0].function == "dwarf_sample::inlined_square(long)");
    CHECK((*frames)[0].line == square_body);
    CHECK((*frames)[0].inlined);
    CHECK((*frames)[1].function == "dwarf_sample::inlined_twice(long)");
    CHECK((*frames)[1].line == twice_calls);
    CHECK_THAT((*frames)[1].file, Catch::EndsWith("dwarf_helpers.h"));
    CHECK((*frames)[2].function == "dwarf_sample::uses_inlines(long)");
    CHECK((*frames)[2].line == outer_calls);
    CHECK_THAT((*frames)[2].file, Catch::EndsWith("dwarf_sample.cpp"));
    CHECK_FALSE((*frames)[2].inlined);
    // The inlined square's parameter has a location of its own.
    REQUIRE((*frames)[0].variables.size() == 1);
    CHECK((*frames)[0].variables[0].name == "value");
    CHECK((*frames)[0].variables[0].type_name == "long int");
  }
  CHECK(found);
}

TEST_CASE("parameters have names, simple type names and sizes") {
  Loaded loaded = load("dwarf_sample_O0");
  const ElfSymbol leaf = symbol(*loaded.image, "_ZN12dwarf_sample8leaf_addEilPKc");
  auto frames = loaded.index->frames_at(leaf.address + 8);
  REQUIRE(frames);
  REQUIRE(frames->size() == 1);
  const auto& variables = (*frames)[0].variables;
  REQUIRE(variables.size() == 3);
  CHECK(variables[0].name == "first");
  CHECK(variables[0].type_name == "int");
  CHECK(variables[0].size_bytes == 4);
  CHECK(variables[1].name == "second");
  CHECK(variables[1].type_name == "long int");
  CHECK(variables[2].name == "label");
  CHECK(variables[2].type_name == "const char*");
  CHECK(variables[2].size_bytes == 8);
  for (const auto& variable : variables) {
    CHECK(variable.is_parameter);
    CHECK(variable.is_scalar);
  }
  const ElfSymbol takes = symbol(*loaded.image, "_ZN12dwarf_sample12takes_structEPNS_5PointEj");
  auto takes_frames = loaded.index->frames_at(takes.address + 8);
  REQUIRE(takes_frames);
  REQUIRE_FALSE(takes_frames->empty());
  CHECK((*takes_frames)[0].variables[0].type_name == "Point*");
  CHECK((*takes_frames)[0].variables[1].type_name == "unsigned int");
}

TEST_CASE("at -O0 parameter locations evaluate to the stack slots the prologue stores the argument registers into") {
  Loaded loaded = load("dwarf_sample_O0");
  const ElfSymbol leaf = symbol(*loaded.image, "_ZN12dwarf_sample8leaf_addEilPKc");
  // objdump shows where the prologue spills each argument register: "mov %edi,-0x14(%rbp)".
  const std::string disassembly =
      run("objdump -d --no-show-raw-insn --start-address=" + fiberscope::hex(leaf.address) +
          " --stop-address=" + fiberscope::hex(leaf.address + 32) + " " + program("dwarf_sample_O0"));
  auto slot_of = [&](const std::string& reg) -> long {
    auto at = disassembly.find("mov    %" + reg + ",-0x");
    REQUIRE(at != std::string::npos);
    return std::stol(disassembly.substr(at + 9 + reg.size()), nullptr, 16);  // "-0x14" parses as -20
  };
  const std::map<std::string, long> rbp_offsets = {{"first", slot_of("edi")}, {"second", slot_of("rsi")},
                                                   {"label", slot_of("rdx")}};
  // Past the prologue (push rbp; mov rsp,rbp; spills), where the body starts.
  auto frames = loaded.index->frames_at(leaf.address + 24);
  REQUIRE(frames);
  REQUIRE(frames->size() == 1);
  const std::uint64_t rbp = 0x7ffd'1000;
  ExpressionContext context;
  context.cfa = rbp + 16;  // after push %rbp: CFA = rbp + 16
  auto frame_base = evaluate((*frames)[0].frame_base, context);
  REQUIRE(frame_base);
  REQUIRE(frame_base->kind == Location::Kind::memory);
  context.frame_base = frame_base->address;
  for (const auto& variable : (*frames)[0].variables) {
    auto location = evaluate(variable.location, context);
    REQUIRE(location);
    REQUIRE(location->kind == Location::Kind::memory);
    INFO(variable.name);
    CHECK(static_cast<long>(location->address - rbp) == rbp_offsets.at(variable.name));
  }
}

TEST_CASE("at -O2 parameters live in registers at entry and in location lists later") {
  Loaded loaded = load("dwarf_sample_O2");
  const ElfSymbol main_symbol = symbol(*loaded.image, "main");
  auto at_entry = loaded.index->frames_at(main_symbol.address);
  REQUIRE(at_entry);
  REQUIRE_FALSE(at_entry->empty());
  const auto& argc = at_entry->back().variables.at(0);
  CHECK(argc.name == "argc");
  CHECK(argc.location == std::vector<std::byte>{std::byte{DW_OP_reg5}});
  // Somewhere in main, argc is described by a different expression (moved to a callee-saved register or an
  // entry value): the location list was consulted, not just its first entry.
  bool moved = false;
  for (std::uint64_t pc = main_symbol.address; pc < main_symbol.address + main_symbol.size_bytes; ++pc) {
    auto frames = loaded.index->frames_at(pc);
    REQUIRE(frames);
    if (!frames->empty() && frames->back().variables.at(0).location != argc.location) moved = true;
  }
  CHECK(moved);
}

TEST_CASE("call sites record the constant values a caller passes") {
  Loaded loaded = load("dwarf_sample_O2");
  // The return address of main's call to leaf_add, from objdump: the instruction after the call.
  const std::string disassembly = run("objdump -d --no-show-raw-insn " + program("dwarf_sample_O2"));
  auto call = disassembly.find("<_ZN12dwarf_sample8leaf_addEilPKc>\n");  // the call line, not the label line
  REQUIRE(call != std::string::npos);
  auto next_line = disassembly.find('\n', call) + 1;
  const std::uint64_t return_pc = std::stoull(disassembly.substr(next_line), nullptr, 16);
  auto site = loaded.index->call_site(return_pc);
  REQUIRE(site);
  REQUIRE(*site);
  std::map<unsigned, std::uint64_t> passed;  // by the DW_OP_regN the callee receives it in
  for (const auto& parameter : (*site)->parameters) {
    auto value = evaluate(parameter.value, {});
    REQUIRE(value);
    REQUIRE(parameter.location.size() == 1);
    passed[std::to_integer<unsigned>(parameter.location[0])] = value->address;
  }
  CHECK(passed.at(DW_OP_reg5) == 42);
  CHECK(passed.at(DW_OP_reg4) == 1000);
  CHECK_FALSE((*site)->caller_frame_base.empty());
  auto none = loaded.index->call_site(symbol(*loaded.image, "main").address);
  REQUIRE(none);
  CHECK_FALSE(*none);
}

TEST_CASE("loading is lazy: opening parses no unit, a lookup parses only the unit it needs") {
  Loaded loaded = load("dwarf_sample_O2");
  CHECK(loaded.index->compile_unit_count() >= 1);
  CHECK(loaded.index->parsed_compile_unit_count() == 0);
  auto frames = loaded.index->frames_at(symbol(*loaded.image, "main").address);
  REQUIRE(frames);
  CHECK(loaded.index->parsed_compile_unit_count() == 1);
  auto outside = loaded.index->frames_at(0x1);
  REQUIRE(outside);
  CHECK(outside->empty());
}

TEST_CASE("a file without DWARF is refused with a message saying so") {
  ScratchDirectory scratch;
  const std::string stripped = scratch.file("stripped");
  REQUIRE(std::system(("strip -o " + stripped + " " + program("dwarf_sample_O2")).c_str()) == 0);
  auto image = ElfImage::open(stripped);
  REQUIRE(image);
  auto index = DwarfIndex::open(**image);
  REQUIRE_FALSE(index);
  CHECK_THAT(index.error().message, Catch::Contains("no DWARF"));
}

TEST_CASE("demangle turns Itanium names into C++ and leaves other names alone") {
  CHECK(demangle("_ZN12dwarf_sample8leaf_addEilPKc") == "dwarf_sample::leaf_add(int, long, char const*)");
  CHECK(demangle("main") == "main");
  CHECK(demangle("_Zgarbage") == "_Zgarbage");
}

TEST_CASE("compressed debug sections (as in Debian's -dbg packages) are inflated and give the same frames") {
  ScratchDirectory scratch;
  const std::string compressed = scratch.file("compressed");
  REQUIRE(std::system(("objcopy --compress-debug-sections=zlib " + program("dwarf_sample_O2") + " " +
                       compressed).c_str()) == 0);
  auto image = ElfImage::open(compressed);
  REQUIRE(image);
  bool any_compressed = false;
  for (const auto& section : (*image)->sections()) any_compressed = any_compressed || section.compressed;
  REQUIRE(any_compressed);
  auto index = DwarfIndex::open(**image);
  REQUIRE(index);
  Loaded plain = load("dwarf_sample_O2");
  const ElfSymbol main_symbol = symbol(*plain.image, "main");
  for (std::uint64_t pc = main_symbol.address; pc < main_symbol.address + main_symbol.size_bytes; ++pc) {
    auto expected = plain.index->frames_at(pc);
    auto actual = (*index)->frames_at(pc);
    REQUIRE(expected);
    REQUIRE(actual);
    REQUIRE(actual->size() == expected->size());
    for (std::size_t i = 0; i < actual->size(); ++i) {
      CHECK((*actual)[i].function == (*expected)[i].function);
      CHECK((*actual)[i].line == (*expected)[i].line);
      CHECK((*actual)[i].variables.size() == (*expected)[i].variables.size());
      for (std::size_t v = 0; v < (*actual)[i].variables.size(); ++v)
        CHECK((*actual)[i].variables[v].location == (*expected)[i].variables[v].location);
    }
  }
}

TEST_CASE("a DWARF 5 line program starting in file 1 (a header) names that file, as eu-addr2line does") {
  // libdwarf 20210528 numbers the rows before the first DW_LNS_set_file as file 0 (header_first.c).
  const Loaded loaded = load("lines_header_first_dwarf5");
  const ElfSymbol work = symbol(*loaded.image, "header_first_work");
  REQUIRE(work.size_bytes > 0);
  const unsigned body_line = line_of("tests/programs/lines/header_first.h", "header_first_work body");
  REQUIRE(body_line > 0);
  std::vector<std::uint64_t> pcs;
  for (std::uint64_t pc = work.address; pc < work.address + work.size_bytes; ++pc) pcs.push_back(pc);
  const auto expected = addr2line(program("lines_header_first_dwarf5"), pcs);
  bool saw_body = false;
  for (std::uint64_t pc : pcs) {
    auto frames = loaded.index->frames_at(pc);
    REQUIRE(frames);
    REQUIRE_FALSE(frames->empty());
    INFO("pc " << fiberscope::hex(pc) << " file " << frames->back().file << ":" << frames->back().line);
    CHECK(frames->back().file.ends_with("header_first.h"));
    const auto tool = expected.find(pc);
    if (tool != expected.end() && !tool->second.empty()) {
      CHECK(tool->second.back().file.ends_with("header_first.h"));
      CHECK(tool->second.back().line == frames->back().line);
    }
    saw_body |= frames->back().line == body_line;
  }
  CHECK(saw_body);
}

TEST_CASE("the DWARF 5 line program's file registers start at 1, and every truncation of it is an error") {
  const Loaded loaded = load("lines_header_first_dwarf5");
  auto section = loaded.image->section(".debug_line");
  REQUIRE(section);
  auto files = line_program_files(section->bytes, 0);
  INFO((files ? "" : files.error().message));
  REQUIRE(files);
  REQUIRE_FALSE(files->empty());
  CHECK(files->front() == 1);  // header_first_work's rows, before any DW_LNS_set_file
  // Cutting the section anywhere inside the first unit leaves a unit that claims more bytes than remain.
  std::uint32_t unit_length = 0;  // copied: the section need not be 4-byte aligned in the file
  std::memcpy(&unit_length, section->bytes.data(), sizeof unit_length);
  const std::uint64_t unit_size = 4 + std::uint64_t{unit_length};
  for (std::uint64_t cut = 0; cut < std::min<std::uint64_t>(unit_size, section->bytes.size()); ++cut)
    CHECK_FALSE(line_program_files(section->bytes.first(cut), 0));
  CHECK_FALSE(line_program_files(section->bytes, section->bytes.size() + 5));
}
