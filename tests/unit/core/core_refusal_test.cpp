// Files a core relies on for the memory it omits, refused when they are not the ones the process ran: the refusal
// is data (CoreFile::files), and session::inspect_core leaves the refused file's module out, whichever check
// refused it (the build-id the core recorded, or, without one, the executable's entry point).
#include <catch2/catch.hpp>

#include <elf.h>

#include <array>
#include <cstring>
#include <filesystem>

#include "core_test_support.h"
#include "session/inspection.h"
#include "target/core_file.h"

using namespace fiberscope;
using namespace fiberscope::target;
using namespace fiberscope::test;

namespace {

// An x86-64 executable that is not crasher_threads: this test binary.
std::string other_executable() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

// Turns every GNU build-id note in the first page of `recorded_exe` that the core holds into a note of another
// type, as if the executable had been linked without one; returns how many it changed.
int hide_recorded_build_id(std::vector<std::byte>& core, const CoreFile& opened) {
  std::uint64_t exe_start = 0;
  for (const Mapping& mapping : opened.snapshot.mappings)
    if (mapping.path == opened.recorded_exe_path && mapping.file_offset == 0) exe_start = mapping.range.start.value();
  REQUIRE(exe_start != 0);
  Elf64_Ehdr header;
  std::memcpy(&header, core.data(), sizeof header);
  int changed = 0;
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr phdr;
    std::memcpy(&phdr, core.data() + header.e_phoff + i * sizeof phdr, sizeof phdr);
    if (phdr.p_type != PT_LOAD || phdr.p_vaddr != exe_start) continue;
    // namesz 4, descsz, type NT_GNU_BUILD_ID, "GNU\0"
    for (std::uint64_t at = phdr.p_offset; at + 16 <= phdr.p_offset + phdr.p_filesz && at + 16 <= core.size();
         at += 4) {
      std::uint32_t words[3];
      std::memcpy(words, core.data() + at, sizeof words);
      if (words[0] != 4 || words[2] != NT_GNU_BUILD_ID || std::memcmp(core.data() + at + 12, "GNU", 4) != 0) continue;
      const std::uint32_t other_type = 0x7f00;
      std::memcpy(core.data() + at + 8, &other_type, sizeof other_type);
      ++changed;
    }
  }
  return changed;
}

// The modules `inspection` opened from `path`.
std::size_t modules_from(const session::Inspection& inspection, const std::string& path) {
  std::size_t count = 0;
  for (const binary::Module& module : inspection.modules->symbols().modules()) count += module.path == path;
  return count;
}

}  // namespace

TEST_CASE("A refused executable is refused as data, and inspect_core opens no module from it, for either check") {
  TempDir dir;
  auto core = make_kernel_core("segv", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  const std::string exe = std::filesystem::canonical(test_program("crasher_threads")).string();
  const std::string other = other_executable();
  auto code = core.run.fields("CODE");
  REQUIRE(code.size() == 2);
  std::array<std::byte, 16> bytes{};

  SECTION("the recorded build-id differs") {
    auto opened = open_core_file(core.path, {.exe_path = other, .sysroot = ""});
    REQUIRE(opened);
    CHECK(opened->recorded_exe_path == exe);
    CHECK(opened->disk_path(exe) == other);
    const CoreBackingFile* file = opened->file(exe);
    REQUIRE(file);
    CHECK(file->disk_path == other);
    REQUIRE(file->refusal);
    CHECK(file->refusal->kind == FileRefusalKind::build_id_mismatch);
    CHECK(file->refusal->other_file());

    auto inspection = session::inspect_core(core.path, {.exe = other, .sysroot = ""});
    REQUIRE(inspection);
    CHECK(modules_from(*inspection, other) == 0);
    CHECK(modules_from(*inspection, exe) == 0);
  }
  SECTION("no build-id was recorded and the entry point differs") {
    auto good = open_core_file(core.path, {});
    REQUIRE(good);
    std::vector<std::byte> bytes_of_core = read_file(core.path);
    REQUIRE(hide_recorded_build_id(bytes_of_core, *good) > 0);
    const std::string patched = dir.path() + "/no-build-id.core";
    write_file(patched, bytes_of_core);

    // The right executable passes the entry point check: its code is read.
    auto right = open_core_file(patched, {});
    REQUIRE(right);
    REQUIRE(right->file(exe));
    CHECK_FALSE(right->file(exe)->refusal);
    CHECK(right->snapshot.memory->read(RemoteAddress(parse_address(code[0])), bytes));

    auto opened = open_core_file(patched, {.exe_path = other, .sysroot = ""});
    REQUIRE(opened);
    const CoreBackingFile* file = opened->file(exe);
    REQUIRE(file);
    REQUIRE(file->refusal);
    CHECK(file->refusal->kind == FileRefusalKind::entry_point_mismatch);
    CHECK(file->refusal->other_file());
    auto read = opened->snapshot.memory->read(RemoteAddress(parse_address(code[0])), bytes);
    REQUIRE_FALSE(read);
    CHECK_THAT(read.error().message, Catch::Contains("entry point"));

    // Before the refusal was data, inspect_core recognised only the build-id warning's words and opened this one.
    auto inspection = session::inspect_core(patched, {.exe = other, .sysroot = ""});
    REQUIRE(inspection);
    CHECK(modules_from(*inspection, other) == 0);
    CHECK(inspection->modules->symbols().module_at(parse_address(code[0])) == nullptr);
  }
  SECTION("a file missing on disk is refused as missing, not as another file") {
    const std::string sysroot = dir.path() + "/empty-sysroot";
    auto opened = open_core_file(core.path, {.exe_path = "", .sysroot = sysroot});
    REQUIRE(opened);
    const CoreBackingFile* file = opened->file(exe);
    REQUIRE(file);
    CHECK(file->disk_path == sysroot + exe);
    REQUIRE(file->refusal);
    CHECK(file->refusal->kind == FileRefusalKind::missing);
    CHECK_FALSE(file->refusal->other_file());
  }
}
