#include <catch2/catch.hpp>
#include <elf.h>
#include <libdwarf/dwarf.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "binary/symbolizer.h"
#include "binary_test_support.h"
#include "target/memory.h"
#include "target/proc_files.h"
#include "target/process_memory.h"

using namespace fiberscope::binary;
using namespace binary_test;
using fiberscope::target::Mapping;
using fiberscope::target::Reg;
using fiberscope::target::Registers;
using fiberscope::target::RegionMemory;
using fiberscope::target::RemoteAddress;

namespace {

constexpr std::uint64_t kBias = 0x5555'5555'4000;

// The mappings the kernel would make for `path` loaded at `bias`: one per PT_LOAD segment, page-aligned.
std::vector<Mapping> mappings_for(const std::string& path, std::uint64_t bias) {
  auto image = ElfImage::open(path);
  REQUIRE(image);
  std::vector<Mapping> mappings;
  for (const ElfSegment& segment : (*image)->load_segments()) {
    Mapping mapping;
    const std::uint64_t start = (segment.vaddr & ~std::uint64_t{4095}) + bias;
    const std::uint64_t end = ((segment.vaddr + segment.mem_size_bytes + 4095) & ~std::uint64_t{4095}) + bias;
    mapping.range = {RemoteAddress(start), RemoteAddress(end)};
    mapping.file_offset = segment.file_offset & ~std::uint64_t{4095};
    mapping.readable = true;
    mapping.executable = segment.flags & PF_X;
    mapping.path = path;
    mappings.push_back(mapping);
  }
  return mappings;
}

std::uint64_t file_address(const std::string& path, const std::string& name) {
  auto image = ElfImage::open(path);
  REQUIRE(image);
  auto symbol = (*image)->find_symbol(name);
  REQUIRE(symbol);
  return symbol->address;
}

// A child running a test program until it prints READY; killed and reaped at the end of the test.
class RunningProgram {
 public:
  explicit RunningProgram(const std::string& path) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    std::string output;
    char c;
    while (output.find("READY") == std::string::npos && read(fds[0], &c, 1) == 1) output += c;
    close(fds[0]);
    REQUIRE(output.find("READY") != std::string::npos);
  }
  ~RunningProgram() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
};

}  // namespace

TEST_CASE("symbolize names the function, file and line of a pc in a module loaded with a bias") {
  const std::string path = program("dwarf_sample_O2");
  Symbolizer symbols(mappings_for(path, kBias));
  REQUIRE(symbols.modules().size() == 1);
  CHECK(symbols.modules()[0].load_bias == kBias);
  const std::uint64_t leaf = file_address(path, "_ZN12dwarf_sample8leaf_addEilPKc");
  const Symbolization& at = symbols.symbolize(leaf + kBias + 4);
  REQUIRE(at.frames.size() == 1);
  CHECK(at.frames[0].function == "dwarf_sample::leaf_add(int, long, char const*)");
  CHECK(at.frames[0].source == SymbolizedFrame::Source::dwarf);
  CHECK(at.frames[0].module == path);
  CHECK(at.frames[0].offset == 4);
  CHECK_THAT(at.frames[0].file, Catch::EndsWith("dwarf_sample.cpp"));
  CHECK(at.frames[0].line > 0);
  CHECK(at.note.empty());
  CHECK(symbols.dwarf_indexes_loaded() == 1);
}

TEST_CASE("a C++ function written in assembly is named demangled, as the assembler's DWARF gives only its symbol") {
  // fiber::yield is the runtime's entry stub in switch.S: its DW_AT_name is "_ZN5fiber5yieldEv".
  const std::string path = program("fiber_states_O2");
  Symbolizer symbols(mappings_for(path, kBias));
  const Symbolization& at = symbols.symbolize(file_address(path, "_ZN5fiber5yieldEv") + kBias + 4);
  REQUIRE(at.frames.size() == 1);
  CHECK(at.frames[0].function == "fiber::yield()");
  CHECK(at.frames[0].source == SymbolizedFrame::Source::dwarf);
  CHECK_THAT(at.frames[0].file, Catch::EndsWith("switch.S"));
}

TEST_CASE("a function DWARF names without a linkage name is qualified by the scopes around it") {
  // with_lambda's lambda is inlined at -O2: its body is an inlined "operator()" of an unnamed class declared inside
  // dwarf_sample::with_lambda(long). inlined_with_lambda is itself inlined into calls_inlined_with_lambda, so its
  // closure is declared only inside its abstract instance.
  const std::string path = program("dwarf_sample_O2");
  Symbolizer symbols(mappings_for(path, kBias));
  auto image = ElfImage::open(path);
  REQUIRE(image);
  auto inlined_lambda_in = [&](const std::string& symbol) -> std::optional<std::string> {
    auto function = (*image)->find_symbol(symbol);
    REQUIRE(function);
    for (std::uint64_t at = function->address; at < function->address + function->size_bytes; ++at) {
      auto frames = symbols.dwarf_frames(at + kBias);
      REQUIRE(frames);
      for (const auto& frame : *frames)
        if (frame.inlined && frame.function.find("operator()") != std::string::npos) return frame.function;
    }
    return std::nullopt;
  };
  CHECK(inlined_lambda_in("_ZN12dwarf_sample11with_lambdaEl") ==
        "dwarf_sample::with_lambda(long)::{lambda}::operator()");
  // gcc may give this one a linkage name ("...::{lambda(long)#1}::operator()(long) const"): qualified either way.
  const auto in_inlined = inlined_lambda_in("_ZN12dwarf_sample25calls_inlined_with_lambdaEl");
  REQUIRE(in_inlined);
  CHECK_THAT(*in_inlined, Catch::StartsWith("dwarf_sample::inlined_with_lambda(long)::{lambda"));
}

TEST_CASE("repeated pcs are served from the cache") {
  const std::string path = program("dwarf_sample_O2");
  Symbolizer symbols(mappings_for(path, kBias));
  const std::uint64_t pc = file_address(path, "main") + kBias + 1;
  const Symbolization* first = &symbols.symbolize(pc);
  for (int i = 0; i < 1000; ++i) CHECK(&symbols.symbolize(pc) == first);
  CHECK(symbols.symbolize_cache_size() == 1);
}

TEST_CASE("an address outside every module says so instead of guessing") {
  Symbolizer symbols(mappings_for(program("dwarf_sample_O2"), kBias));
  const Symbolization& nowhere = symbols.symbolize(0x10);
  REQUIRE(nowhere.frames.size() == 1);
  CHECK(nowhere.frames[0].source == SymbolizedFrame::Source::none);
  CHECK_THAT(nowhere.note, Catch::Contains("no module"));
}

TEST_CASE("a stripped binary still resolves the exported root through .dynsym and names functions from symbols") {
  ScratchDirectory scratch;
  const std::string stripped = scratch.file("dwarf_sample_stripped");
  REQUIRE(std::system(("strip -o " + stripped + " " + program("dwarf_sample_O2")).c_str()) == 0);
  Symbolizer symbols(mappings_for(stripped, kBias), SymbolizerOptions{{scratch.file("no-debug-here")}});
  auto root = symbols.symbol_address("dwarf_sample_root");
  REQUIRE(root);
  CHECK(root->value() == file_address(program("dwarf_sample_O2"), "dwarf_sample_root") + kBias);
  CHECK_FALSE(symbols.symbol_address("no_such_symbol"));
  // No DWARF and no .symtab: the pc of main is still inside the module; the note explains what is missing.
  const Symbolization& at = symbols.symbolize(file_address(program("dwarf_sample_O2"), "main") + kBias);
  REQUIRE(at.frames.size() == 1);
  CHECK(at.frames[0].source != SymbolizedFrame::Source::dwarf);
  CHECK_THAT(at.note, Catch::Contains("no DWARF"));
}

TEST_CASE("a pc in a static function of a stripped library is unnamed, not the exported symbol before it") {
  const std::string stripped = program("libsized_symbols_stripped.so");
  Symbolizer symbols(mappings_for(stripped, kBias), SymbolizerOptions{{"/nonexistent-debug-root"}});
  const std::uint64_t hidden = file_address(program("libsized_symbols.so"), "sized_hidden_static");
  const Symbolization& at = symbols.symbolize(hidden + 8 + kBias);
  REQUIRE(at.frames.size() == 1);
  CHECK(at.frames[0].function.empty());
  CHECK(at.frames[0].source == SymbolizedFrame::Source::none);
  CHECK(at.frames[0].offset == hidden + 8);  // the offset in the file, for "?? (module +0x...)"
  const Symbolization& exported = symbols.symbolize(file_address(stripped, "sized_call_hidden") + 2 + kBias);
  CHECK(exported.frames[0].function == "sized_call_hidden");
}

TEST_CASE("a separate debug file is found by build-id and supplies DWARF to a stripped binary") {
  ScratchDirectory scratch;
  const std::string original = program("dwarf_sample_O2");
  const std::string stripped = scratch.file("dwarf_sample_stripped");
  REQUIRE(std::system(("strip -o " + stripped + " " + original).c_str()) == 0);
  auto image = ElfImage::open(original);
  REQUIRE(image);
  REQUIRE((*image)->build_id());
  const std::string id = *(*image)->build_id();
  const std::string debug_dir = scratch.file("debug");
  std::filesystem::create_directories(debug_dir + "/.build-id/" + id.substr(0, 2));
  const std::string debug_file = debug_dir + "/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug";
  REQUIRE(std::system(("objcopy --only-keep-debug " + original + " " + debug_file).c_str()) == 0);

  Symbolizer symbols(mappings_for(stripped, kBias), SymbolizerOptions{{debug_dir}});
  const Symbolization& at = symbols.symbolize(file_address(original, "_ZN12dwarf_sample8leaf_addEilPKc") + kBias);
  REQUIRE_FALSE(at.frames.empty());
  CHECK(at.frames[0].source == SymbolizedFrame::Source::dwarf);
  CHECK(at.frames[0].function == "dwarf_sample::leaf_add(int, long, char const*)");
  REQUIRE(symbols.debug_image(symbols.modules()[0]));
  CHECK(symbols.debug_image(symbols.modules()[0])->path() == debug_file);
}

TEST_CASE("variables evaluate register and memory locations into formatted values") {
  const std::string path = program("dwarf_sample_O2");
  Symbolizer symbols(mappings_for(path, kBias));
  // At takes_struct's entry, point is in rdi and count in rsi.
  const std::uint64_t entry = file_address(path, "_ZN12dwarf_sample12takes_structEPNS_5PointEj") + kBias;
  Registers registers;
  registers.set(Reg::rdi, 0x7ffd'2000);
  registers.set(Reg::rsi, 3);
  registers.set(Reg::rsp, 0x7ffd'1ff8);
  RegionMemory memory;
  auto frames = symbols.variables({entry, &registers, &memory, 0x7ffd'2000, std::nullopt});
  REQUIRE(frames);
  REQUIRE(frames->size() == 1);
  std::map<std::string, VariableValue> by_name;
  for (const auto& variable : (*frames)[0].variables) by_name[variable.name] = variable;
  CHECK(by_name.at("point").value == "0x7ffd2000");
  CHECK(by_name.at("point").status.empty());
  CHECK(by_name.at("count").value == "3");
  CHECK(by_name.at("count").is_parameter);
  // sum is either not yet live or known to be the constant it starts as.
  CHECK((by_name.at("sum").status == "optimized out" || by_name.at("sum").value == "0"));
}

TEST_CASE("a value in unreadable memory or a register the frame lacks is reported, not invented") {
  const std::string path = program("dwarf_sample_O0");
  Symbolizer symbols(mappings_for(path, kBias));
  const std::uint64_t pc = file_address(path, "_ZN12dwarf_sample8leaf_addEilPKc") + kBias + 24;
  RegionMemory memory;  // empty: every stack slot is unreadable
  Registers registers;
  auto frames = symbols.variables({pc, &registers, &memory, 0x7ffd'3000, std::nullopt});
  REQUIRE(frames);
  REQUIRE_FALSE(frames->empty());
  for (const auto& variable : (*frames)[0].variables)
    CHECK_THAT(variable.status, Catch::StartsWith("unreadable at 0x7ffd2"));
  // With the slots present, values come out typed.
  std::vector<std::byte> stack(64);
  const std::uint64_t base = 0x7ffd'3000 - 64;
  REQUIRE(memory.add(RemoteAddress(base), stack));
  auto readable = symbols.variables({pc, &registers, &memory, 0x7ffd'3000, std::nullopt});
  REQUIRE(readable);
  for (const auto& variable : (*readable)[0].variables) {
    CHECK(variable.status.empty());
    CHECK((variable.value == "0" || variable.value == "0x0"));
  }
}

// A pc (with the bias) in dwarf_sample_O2's leaf_add where an integer parameter is only known as
// DW_OP_entry_value, and that parameter's name; nullopt if the compiler kept them in registers throughout.
std::optional<std::pair<std::uint64_t, std::string>> leaf_add_entry_value_pc(Symbolizer& symbols) {
  const std::string path = program("dwarf_sample_O2");
  const std::uint64_t leaf = file_address(path, "_ZN12dwarf_sample8leaf_addEilPKc");
  auto image = ElfImage::open(path);
  REQUIRE(image);
  const std::uint64_t leaf_size = (*image)->find_symbol("_ZN12dwarf_sample8leaf_addEilPKc")->size_bytes;
  for (std::uint64_t at = leaf; at < leaf + leaf_size; ++at) {
    auto frames = symbols.dwarf_frames(at + kBias);
    REQUIRE(frames);
    for (const auto& variable : frames->back().variables)
      if (!variable.location.empty() && variable.location[0] == std::byte{DW_OP_entry_value} &&
          variable.name != "label")
        return std::pair{at + kBias, variable.name};
  }
  return std::nullopt;
}

// The return address (without the bias) of the first call to `callee` (a symbol) in dwarf_sample_O2.
std::uint64_t return_address_of_call_to(const std::string& callee) {
  const std::string disassembly = run("objdump -d --no-show-raw-insn " + program("dwarf_sample_O2"));
  for (std::size_t line = 0, end; (end = disassembly.find('\n', line)) != std::string::npos; line = end + 1) {
    const std::string_view text(disassembly.data() + line, end - line);
    if (text.find("call") != std::string_view::npos && text.find("<" + callee + ">") != std::string_view::npos)
      return std::stoull(disassembly.substr(end + 1), nullptr, 16);
  }
  FAIL("no call to " << callee);
  return 0;
}

TEST_CASE("an entry value is resolved through the caller's call site") {
  Symbolizer symbols(mappings_for(program("dwarf_sample_O2"), kBias));
  const auto at = leaf_add_entry_value_pc(symbols);
  if (!at) {
    WARN("skipped: this compiler kept leaf_add's integer parameters in registers throughout, "
         "no entry value to resolve");
    return;
  }
  const auto& [pc, parameter] = *at;
  const std::uint64_t return_pc = return_address_of_call_to("_ZN12dwarf_sample8leaf_addEilPKc");

  Registers registers, caller_registers;
  RegionMemory memory;
  auto unresolved = symbols.variables({pc, &registers, &memory, std::nullopt, std::nullopt});
  REQUIRE(unresolved);
  CallerState caller{return_pc + kBias, &caller_registers, 0x7ffd'4000};
  auto resolved = symbols.variables({pc, &registers, &memory, std::nullopt, caller});
  REQUIRE(resolved);
  const std::map<std::string, std::string> expected{{"first", "42"}, {"second", "1000"}};
  for (std::size_t i = 0; i < resolved->back().variables.size(); ++i) {
    if (resolved->back().variables[i].name != parameter) continue;
    CHECK(unresolved->back().variables[i].status == "entry value unknown");
    CHECK(resolved->back().variables[i].status.empty());
    CHECK(resolved->back().variables[i].value == expected.at(parameter));
  }
}

TEST_CASE("a call site of another function, which tail-called the frame's, gives no entry value") {
  // main calls tail_caller(argc + 20), which jumps to leaf_add(base + 1, 7, ...): leaf_add returns straight to
  // main, whose call site holds tail_caller's argument, not leaf_add's.
  Symbolizer symbols(mappings_for(program("dwarf_sample_O2"), kBias));
  const auto at = leaf_add_entry_value_pc(symbols);
  if (!at) {
    WARN("skipped: this compiler kept leaf_add's integer parameters in registers throughout, "
         "no entry value to resolve");
    return;
  }
  const auto& [pc, parameter] = *at;
  const std::string tail_call = run("objdump -d --no-show-raw-insn --disassemble=_ZN12dwarf_sample11tail_callerEi " +
                                    program("dwarf_sample_O2"));
  REQUIRE_THAT(tail_call, Catch::Contains("jmp") && Catch::Contains("<_ZN12dwarf_sample8leaf_addEilPKc>"));
  const std::uint64_t return_pc = return_address_of_call_to("_ZN12dwarf_sample11tail_callerEi");

  Registers registers, caller_registers;
  caller_registers.set(Reg::rbx, 1);  // main's argc: its site passes tail_caller rbx + 20 in rdi
  RegionMemory memory;
  CallerState caller{return_pc + kBias, &caller_registers, 0x7ffd'4000};
  auto variables = symbols.variables({pc, &registers, &memory, std::nullopt, caller});
  REQUIRE(variables);
  bool checked = false;
  for (const VariableValue& variable : variables->back().variables) {
    if (variable.name != parameter) continue;
    CHECK(variable.status == "entry value unknown");
    CHECK(variable.value.empty());
    checked = true;
  }
  CHECK(checked);
}

TEST_CASE("on a live process the module map gives the runtime address of exported data") {
  const std::string path = program("dwarf_sample_O0");
  RunningProgram running(path);
  auto mappings = fiberscope::target::read_maps(running.pid());
  REQUIRE(mappings);
  Symbolizer symbols(*mappings);
  auto root = symbols.symbol_address("dwarf_sample_root");
  REQUIRE(root);
  fiberscope::target::ProcessMemory memory(running.pid());
  std::array<long, 4> values{};
  auto read = memory.read(*root, std::as_writable_bytes(std::span(values)));
  INFO((read ? "" : read.error().message));
  REQUIRE(read);
  CHECK(values == std::array<long, 4>{1, 2, 3, 4});
  // main's address in the live process symbolizes back to main.
  const Module* module = symbols.module_at(root->value());
  REQUIRE(module);
  const Symbolization& at = symbols.symbolize(file_address(path, "main") + module->load_bias);
  REQUIRE_FALSE(at.frames.empty());
  CHECK(at.frames[0].function == "main");
}

TEST_CASE("format_value prints scalars by type and aggregates as bytes") {
  auto bytes = [](std::uint64_t value, std::size_t size) {
    std::vector<std::byte> out(size);
    std::memcpy(out.data(), &value, size);
    return out;
  };
  CHECK(format_value(bytes(static_cast<std::uint64_t>(-5), 4), "int", true) == "-5");
  CHECK(format_value(bytes(0xffffffff, 4), "unsigned int", true) == "4294967295");
  CHECK(format_value(bytes(0x1000, 8), "const char*", true) == "0x1000");
  CHECK(format_value(bytes(0x55a84120e229, 8), "parker", true, /*is_pointer=*/true) == "0x55a84120e229");
  CHECK(format_value(bytes(1, 1), "bool", true) == "true");
  CHECK(format_value(bytes('A', 1), "char", true) == "65 'A'");
  CHECK(format_value(bytes(0x0000000400000003, 8), "Point", false) == "{03 00 00 00 04 00 00 00}");
}

TEST_CASE("the .symtab of a separate debug file without DWARF names what the stripped library cannot") {
  // As libc6-dbg's file names __restore_rt for libc.so.6: found by build-id, used for its symbol table alone.
  ScratchDirectory scratch;
  const std::string original = program("libsized_symbols.so");
  const std::string stripped = program("libsized_symbols_stripped.so");
  auto image = ElfImage::open(original);
  REQUIRE(image);
  REQUIRE((*image)->build_id());
  const std::string id = *(*image)->build_id();
  const std::string debug_dir = scratch.file("debug");
  std::filesystem::create_directories(debug_dir + "/.build-id/" + id.substr(0, 2));
  const std::string debug_file = debug_dir + "/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug";
  // --only-keep-debug keeps .symtab and the DWARF; --strip-debug then drops the DWARF but keeps .symtab.
  REQUIRE(std::system(("objcopy --only-keep-debug " + original + " " + debug_file + ".full && objcopy --strip-debug " +
                       debug_file + ".full " + debug_file)
                          .c_str()) == 0);
  auto debug = ElfImage::open(debug_file);
  INFO((debug ? "" : debug.error().message));
  REQUIRE(debug);
  REQUIRE_FALSE((*debug)->has_dwarf());
  REQUIRE((*debug)->section(".symtab"));

  Symbolizer symbols(mappings_for(stripped, kBias), SymbolizerOptions{{debug_dir}});
  const std::uint64_t hidden = file_address(original, "sized_hidden_static");
  const Symbolization& at = symbols.symbolize(hidden + 8 + kBias);
  REQUIRE(at.frames.size() == 1);
  CHECK(at.frames[0].function == "sized_hidden_static");
  CHECK(at.frames[0].offset == 8);
  CHECK(at.frames[0].source == SymbolizedFrame::Source::symbol_table);
  CHECK_THAT(at.note, Catch::Contains("no DWARF"));
}
