// Hostile cores: variants of a real kernel core with one defect each, the hand-made ones of tests/corrupt/cores,
// and a deterministic byte-flipping pass over a core's headers and notes. open_core must give a clear error or a
// partial Snapshot with a warning: never crash, hang, or allocate what a bogus size asks for.
#include <catch2/catch.hpp>

#include <elf.h>
#include <fcntl.h>

#include <fstream>
#include <random>

#include "core_test_support.h"
#include "target/core_file.h"

using namespace fiberscope;
using namespace fiberscope::target;
using namespace fiberscope::test;

namespace {

// A kernel core of `crasher_threads segv`, its bytes, and where its headers and notes are.
struct GoodCore {
  TempDir dir;
  KernelCore kernel;
  std::vector<std::byte> bytes;
  Elf64_Ehdr header{};
  std::vector<Elf64_Phdr> phdrs;

  const Elf64_Phdr* first(std::uint32_t type) const {
    for (const Elf64_Phdr& phdr : phdrs)
      if (phdr.p_type == type) return &phdr;
    return nullptr;
  }
  std::uint64_t phdr_offset(std::size_t index) const { return header.e_phoff + index * sizeof(Elf64_Phdr); }
  std::size_t index_of(const Elf64_Phdr* phdr) const { return static_cast<std::size_t>(phdr - phdrs.data()); }

  // The file offset of the first note of `type` (its header), or 0.
  std::uint64_t note_offset(std::uint32_t type) const {
    const Elf64_Phdr* notes = first(PT_NOTE);
    std::uint64_t at = notes->p_offset, end = notes->p_offset + notes->p_filesz;
    while (at + sizeof(Elf64_Nhdr) <= end) {
      Elf64_Nhdr note;
      std::memcpy(&note, bytes.data() + at, sizeof note);
      if (note.n_type == type) return at;
      at += sizeof note + ((note.n_namesz + 3) & ~3u) + ((note.n_descsz + 3) & ~3u);
    }
    return 0;
  }
};

// Made once per test process: Catch re-enters a test case for each SECTION.
GoodCore& good_core() {
  static std::unique_ptr<GoodCore> good;
  if (good) return *good;
  good = std::make_unique<GoodCore>();
  good->kernel = make_kernel_core("segv", good->dir.path());
  if (!good->kernel.unavailable.empty()) return *good;
  good->bytes = read_file(good->kernel.path);
  std::memcpy(&good->header, good->bytes.data(), sizeof good->header);
  good->phdrs.resize(good->header.e_phnum);
  std::memcpy(good->phdrs.data(), good->bytes.data() + good->header.e_phoff, good->phdrs.size() * sizeof(Elf64_Phdr));
  return *good;
}

template <class T>
void patch(std::vector<std::byte>& bytes, std::uint64_t offset, T value) {
  REQUIRE(offset + sizeof(T) <= bytes.size());
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

bool any_warning_contains(const Snapshot& snapshot, const std::string& text) {
  for (const std::string& warning : snapshot.warnings)
    if (warning.find(text) != std::string::npos) return true;
  return false;
}

std::string warnings_text(const Snapshot& snapshot) {
  std::string text;
  for (const std::string& warning : snapshot.warnings) text += warning + "\n";
  return text;
}

// Reads what a dump would read first (each thread's stack top and the bytes at its pc): each read succeeds or
// fails with a message naming the address — the point is that it neither crashes nor reads out of bounds.
void read_like_a_dump(const Snapshot& snapshot) {
  for (const ThreadState& thread : snapshot.threads) {
    if (!thread.registers) continue;
    std::array<std::byte, 512> buffer{};
    for (std::uint64_t address : {thread.registers->sp(), thread.registers->pc()}) {
      auto read = snapshot.memory->read(RemoteAddress(address), buffer);
      if (!read) CHECK_THAT(read.error().message, Catch::Contains(RemoteAddress(address).to_string()) ||
                                                      Catch::Contains("0x"));
    }
  }
}

// Writes `bytes` as a core next to the good one and opens it.
Result<Snapshot> open_variant(GoodCore& good, const std::vector<std::byte>& bytes, const std::string& name) {
  std::string path = good.dir.path() + "/" + name;
  write_file(path, bytes);
  return open_core(path, {});
}

}  // namespace

TEST_CASE("Variants of a kernel core with one defect each give a clear error or a warning") {
  GoodCore* good = &good_core();
  if (!good->kernel.unavailable.empty()) {
    WARN("skipped: " << good->kernel.unavailable);
    return;
  }
  REQUIRE(good->header.e_type == ET_CORE);
  const Elf64_Phdr* notes = good->first(PT_NOTE);
  const Elf64_Phdr* load = good->first(PT_LOAD);
  REQUIRE(notes);
  REQUIRE(load);
  auto bytes = good->bytes;

  SECTION("zero-length") {
    auto opened = open_variant(*good, {}, "empty");
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("empty file"));
  }
  SECTION("not a core: ET_EXEC") {
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_type), ET_EXEC);
    auto opened = open_variant(*good, bytes, "exec");
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("not a core file") && Catch::Contains("executable"));
  }
  SECTION("not a core: the crashing program itself") {
    auto opened = open_core(test_program("crasher_threads"), {});
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("not a core file"));
  }
  SECTION("wrong machine") {
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
    auto opened = open_variant(*good, bytes, "aarch64");
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("machine 183"));
  }
  SECTION("32-bit class") {
    bytes[EI_CLASS] = std::byte{ELFCLASS32};
    auto opened = open_variant(*good, bytes, "class32");
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("64-bit"));
  }
  SECTION("thousands of program headers claimed in a small file") {
    bytes.resize(4096);
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_phnum), 60000);
    auto opened = open_variant(*good, bytes, "phnum");
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("runs past the end"));
  }
  SECTION("PN_XNUM with a count past the cap") {
    // Section header 0 appended at the end, its sh_info holding the count.
    Elf64_Shdr section0{};
    section0.sh_info = static_cast<Elf64_Word>(kMaxCoreProgramHeaders + 1);
    std::uint64_t shoff = bytes.size();
    bytes.resize(bytes.size() + sizeof section0);
    patch(bytes, shoff, section0);
    patch<Elf64_Off>(bytes, offsetof(Elf64_Ehdr, e_shoff), shoff);
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_shentsize), sizeof(Elf64_Shdr));
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_shnum), 1);
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
    auto opened = open_variant(*good, bytes, "xnum");
    REQUIRE_FALSE(opened);
    CHECK_THAT(opened.error().message, Catch::Contains("cap"));
  }
  SECTION("70000 program headers through PN_XNUM, within the cap, open") {
    // The real table moved to the end and padded with PT_NULL entries.
    std::vector<Elf64_Phdr> table = good->phdrs;
    table.resize(70000, Elf64_Phdr{});
    std::uint64_t phoff = bytes.size();
    bytes.resize(phoff + table.size() * sizeof(Elf64_Phdr) + sizeof(Elf64_Shdr));
    std::memcpy(bytes.data() + phoff, table.data(), table.size() * sizeof(Elf64_Phdr));
    Elf64_Shdr section0{};
    section0.sh_info = static_cast<Elf64_Word>(table.size());
    std::uint64_t shoff = phoff + table.size() * sizeof(Elf64_Phdr);
    patch(bytes, shoff, section0);
    patch<Elf64_Off>(bytes, offsetof(Elf64_Ehdr, e_phoff), phoff);
    patch<Elf64_Off>(bytes, offsetof(Elf64_Ehdr, e_shoff), shoff);
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_shentsize), sizeof(Elf64_Shdr));
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_shnum), 1);
    patch<Elf64_Half>(bytes, offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
    auto opened = open_variant(*good, bytes, "many-phdrs");
    REQUIRE(opened);
    CHECK(opened->threads.size() == 5);
    read_like_a_dump(*opened);
  }
  SECTION("a note whose descsz runs past the end of PT_NOTE") {
    patch<Elf64_Word>(bytes, notes->p_offset + offsetof(Elf64_Nhdr, n_descsz), 0xfffffff0);
    auto opened = open_variant(*good, bytes, "descsz");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "run past the end of the PT_NOTE segment"));
    CHECK(any_warning_contains(*opened, "no thread"));
  }
  SECTION("a note whose namesz runs past the end of PT_NOTE") {
    patch<Elf64_Word>(bytes, notes->p_offset + offsetof(Elf64_Nhdr, n_namesz), 0xffffffff);
    auto opened = open_variant(*good, bytes, "namesz");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "namesz 0xffffffff"));
  }
  SECTION("PT_NOTE running past the end of the file") {
    std::size_t index = good->index_of(notes);
    patch<Elf64_Xword>(bytes, good->phdr_offset(index) + offsetof(Elf64_Phdr, p_filesz), bytes.size());
    auto opened = open_variant(*good, bytes, "note-past-end");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "runs past the end of the core"));
    CHECK(opened->threads.size() == 5);
  }
  SECTION("NT_FILE with a huge count") {
    std::uint64_t file_note = good->note_offset(NT_FILE);
    REQUIRE(file_note);
    patch<std::uint64_t>(bytes, file_note + sizeof(Elf64_Nhdr) + 8, std::uint64_t{1} << 62);  // after "CORE\0..."
    auto opened = open_variant(*good, bytes, "nt-file-count");
    REQUIRE(opened);
    INFO(warnings_text(*opened));
    CHECK(any_warning_contains(*opened, "claims 0x4000000000000000 entries"));
    read_like_a_dump(*opened);
  }
  SECTION("NT_FILE with a page size that is not a power of two") {
    std::uint64_t file_note = good->note_offset(NT_FILE);
    REQUIRE(file_note);
    patch<std::uint64_t>(bytes, file_note + sizeof(Elf64_Nhdr) + 8 + 8, 3);
    auto opened = open_variant(*good, bytes, "nt-file-page");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "not a power of two"));
  }
  SECTION("a PT_LOAD pointing past the end of the file") {
    std::size_t index = good->index_of(load);
    patch<Elf64_Off>(bytes, good->phdr_offset(index) + offsetof(Elf64_Phdr, p_offset), std::uint64_t{1} << 40);
    auto opened = open_variant(*good, bytes, "load-past-end");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "core is truncated"));
    std::array<std::byte, 8> word{};
    auto read = opened->memory->read(RemoteAddress(load->p_vaddr), word);
    REQUIRE_FALSE(read);
    CHECK_THAT(read.error().message, Catch::Contains("past the end of truncated core"));
  }
  SECTION("a PT_LOAD whose file range wraps") {
    std::size_t index = good->index_of(load);
    patch<Elf64_Off>(bytes, good->phdr_offset(index) + offsetof(Elf64_Phdr, p_offset), UINT64_MAX - 16);
    auto opened = open_variant(*good, bytes, "load-offset-wraps");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "wrap"));
  }
  SECTION("a PT_LOAD whose addresses wrap past 2^64") {
    std::size_t index = good->index_of(load);
    patch<Elf64_Addr>(bytes, good->phdr_offset(index) + offsetof(Elf64_Phdr, p_vaddr), 0xfffffffffffff000);
    auto opened = open_variant(*good, bytes, "load-vaddr-wraps");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "wrap past 2^64"));
  }
  SECTION("two PT_LOADs at the same address") {
    std::size_t index = good->index_of(load);
    patch<Elf64_Addr>(bytes, good->phdr_offset(index + 1) + offsetof(Elf64_Phdr, p_vaddr), load->p_vaddr);
    auto opened = open_variant(*good, bytes, "overlap");
    REQUIRE(opened);
    CHECK(any_warning_contains(*opened, "overlap"));
    read_like_a_dump(*opened);
  }
}

TEST_CASE("A kernel core cut at several offsets gives a clear error or a partial snapshot with a warning") {
  GoodCore* good = &good_core();
  if (!good->kernel.unavailable.empty()) {
    WARN("skipped: " << good->kernel.unavailable);
    return;
  }
  const Elf64_Phdr* notes = good->first(PT_NOTE);
  const Elf64_Phdr* load = good->first(PT_LOAD);
  struct Cut {
    std::uint64_t size;
    const char* expected;  // in the error, or in a warning
  };
  std::vector<Cut> cuts{
      {3, "not an ELF file"},
      {40, "truncated inside the ELF header"},
      {good->header.e_phoff + sizeof(Elf64_Phdr) + 10, "runs past the end of the file"},
      {notes->p_offset + 6, "runs past the end of the core"},
      {notes->p_offset + notes->p_filesz / 2, "runs past the end of the core"},
      {load->p_offset + 100, "core is truncated"},
      {good->bytes.size() / 2, "core is truncated"},
      {good->bytes.size() - 1, "core is truncated"},
  };
  for (const Cut& cut : cuts) {
    INFO("cut at " << cut.size << " of " << good->bytes.size() << " bytes");
    std::vector<std::byte> bytes(good->bytes.begin(), good->bytes.begin() + static_cast<std::ptrdiff_t>(cut.size));
    auto opened = open_variant(*good, bytes, "cut-" + std::to_string(cut.size));
    if (!opened) {
      CHECK_THAT(opened.error().message, Catch::Contains(cut.expected));
      continue;
    }
    INFO(warnings_text(*opened));
    CHECK(any_warning_contains(*opened, cut.expected));
    read_like_a_dump(*opened);
  }
}

TEST_CASE("The hand-made corrupt cores of tests/corrupt/cores give the errors and warnings their README names") {
  std::string folder = std::string(FIBERSCOPE_SOURCE_DIR) + "/tests/corrupt/cores/";
  std::ifstream readme(folder + "README.md");
  REQUIRE(readme);
  int checked = 0;
  for (std::string line; std::getline(readme, line);) {
    // | file | outcome | expected text | defect |
    std::vector<std::string> cells;
    std::istringstream row(line);
    for (std::string cell; std::getline(row, cell, '|');) {
      auto first = cell.find_first_not_of(' '), last = cell.find_last_not_of(' ');
      cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
    }
    if (cells.size() < 5 || cells[1].find(".core") == std::string::npos) continue;
    const std::string &file = cells[1], &outcome = cells[2], &expected = cells[3];
    INFO(file << ": " << cells[4]);
    auto opened = open_core(folder + file, {});
    if (outcome == "error") {
      REQUIRE_FALSE(opened);
      CHECK_THAT(opened.error().message, Catch::Contains(expected) && Catch::Contains(file));
    } else {
      REQUIRE(opened);
      INFO(warnings_text(*opened));
      CHECK(any_warning_contains(*opened, expected));
      read_like_a_dump(*opened);
    }
    ++checked;
  }
  CHECK(checked >= 12);
}

TEST_CASE("Flipping bytes of a core's headers and notes never crashes open_core or the reads after it") {
  GoodCore* good = &good_core();
  if (!good->kernel.unavailable.empty()) {
    WARN("skipped: " << good->kernel.unavailable);
    return;
  }
  const Elf64_Phdr* notes = good->first(PT_NOTE);
  std::string path = good->dir.path() + "/flipped";
  write_file(path, good->bytes);
  int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  // Patched in place and restored, so each variant costs one small write.
  std::uint64_t span = notes->p_offset + notes->p_filesz;
  std::mt19937_64 random(20260524);
  int opened_count = 0;
  for (int round = 0; round < 400; ++round) {
    std::uint64_t offset = random() % span;
    std::byte original = good->bytes[offset];
    std::byte flipped = std::byte(static_cast<unsigned char>(random()));
    REQUIRE(::pwrite(fd, &flipped, 1, static_cast<off_t>(offset)) == 1);
    auto opened = open_core(path, {});
    if (opened) {
      ++opened_count;
      read_like_a_dump(*opened);
    } else {
      CHECK_FALSE(opened.error().message.empty());
    }
    REQUIRE(::pwrite(fd, &original, 1, static_cast<off_t>(offset)) == 1);
  }
  ::close(fd);
  CHECK(opened_count > 0);
}
