// ByteReader (base/) as the core reader uses it, and ELF notes read through it: every read bounds-checked, every
// failure saying what and where, nothing read past the bytes.
#include <catch2/catch.hpp>

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/byte_reader.h"
#include "target/elf_note.h"

using namespace fiberscope;
using namespace fiberscope::target;

namespace {

void append(std::vector<std::byte>& out, const void* data, std::size_t size) {
  const auto* bytes = static_cast<const std::byte*>(data);
  out.insert(out.end(), bytes, bytes + size);
}

// One note as producers write it: header, name with its NUL, padding, descriptor, padding.
void append_note(std::vector<std::byte>& out, const std::string& name, std::uint32_t type,
                 const std::vector<std::byte>& desc, bool pad_desc = true) {
  const Elf64_Nhdr header{static_cast<Elf64_Word>(name.size() + 1), static_cast<Elf64_Word>(desc.size()), type};
  append(out, &header, sizeof header);
  append(out, name.c_str(), name.size() + 1);
  out.resize((out.size() + 3) & ~std::size_t{3});
  append(out, desc.data(), desc.size());
  if (pad_desc) out.resize((out.size() + 3) & ~std::size_t{3});
}

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int value : values) out.push_back(std::byte(static_cast<std::uint8_t>(value)));
  return out;
}

}  // namespace

TEST_CASE("ByteReader reads records, strings and alignment padding, and refuses to read past the end") {
  const auto bytes = bytes_of({'a', 'b', 0, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 'c'});
  ByteReader reader(bytes, "test bytes");
  CHECK(reader.what() == "test bytes");
  auto text = reader.c_string();
  REQUIRE(text);
  CHECK(*text == "ab");
  CHECK(reader.offset() == 3);
  REQUIRE(reader.align(4));
  CHECK(reader.offset() == 4);
  REQUIRE(reader.align(4));  // already aligned: stays
  CHECK(reader.offset() == 4);
  auto word = reader.object<std::uint64_t>();
  REQUIRE(word);
  CHECK(*word == 0x0807060504030201ull);

  auto unterminated = reader.c_string();
  REQUIRE_FALSE(unterminated);
  CHECK(unterminated.error().message == "test bytes: string without a terminating NUL at offset 0xc");
  CHECK(reader.offset() == 12);  // a failed read does not move the cursor
  auto too_big = reader.object<std::uint32_t>();
  REQUIRE_FALSE(too_big);
  CHECK(too_big.error().message == "test bytes: truncated 4-byte record at offset 0xc");
  CHECK_FALSE(reader.align(16));  // the padding would run 3 bytes past the end
  CHECK(reader.offset() == 12);
}

TEST_CASE("ByteReader's reads at an offset leave the cursor alone and reject offsets and sizes past the end") {
  const auto bytes = bytes_of({1, 2, 3, 4, 5, 6, 7, 8});
  ByteReader reader(bytes, "block");
  auto tail = reader.bytes_at(6, 2);
  REQUIRE(tail);
  CHECK(tail->size() == 2);
  CHECK(std::to_integer<int>((*tail)[0]) == 7);
  auto value = reader.object_at<std::uint32_t>(4);
  REQUIRE(value);
  CHECK(*value == 0x08070605u);
  CHECK(reader.offset() == 0);
  CHECK(reader.bytes_at(8, 0));  // the empty span at the end is inside
  CHECK_FALSE(reader.bytes_at(9, 0));
  CHECK_FALSE(reader.bytes_at(4, 5));
  CHECK_FALSE(reader.bytes_at(4, UINT64_MAX));  // offset + size would wrap
  CHECK_FALSE(reader.bytes_at(UINT64_MAX, 1));
  CHECK_FALSE(reader.object_at<std::uint64_t>(1));
}

TEST_CASE("ByteReader decodes LEB128 at both ends of the 64-bit range and refuses wider or truncated values") {
  auto uleb = [](std::initializer_list<int> values) {
    const auto bytes = bytes_of(values);
    return ByteReader(bytes, "uleb").uleb128();
  };
  auto sleb = [](std::initializer_list<int> values) {
    const auto bytes = bytes_of(values);
    return ByteReader(bytes, "sleb").sleb128();
  };
  CHECK(uleb({0xe5, 0x8e, 0x26}) == 624485u);
  CHECK(uleb({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) == UINT64_MAX);
  CHECK(sleb({0x7f}) == -1);
  CHECK(sleb({0xc0, 0xbb, 0x78}) == -123456);
  CHECK(sleb({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}) == INT64_MIN);

  auto too_wide = uleb({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02});
  REQUIRE_FALSE(too_wide);
  CHECK(too_wide.error().message == "uleb: ULEB128 wider than 64 bits at offset 0x0");
  auto eleven = sleb({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00});
  REQUIRE_FALSE(eleven);
  CHECK(eleven.error().message == "sleb: SLEB128 wider than 64 bits at offset 0x0");
  auto truncated = sleb({0x80});
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().message == "sleb: truncated SLEB128 at offset 0x0");
}

TEST_CASE("read_elf_note walks padded notes, accepts a last note without padding, and finds the GNU build-id") {
  std::vector<std::byte> notes;
  append_note(notes, "CORE", NT_PRSTATUS, std::vector<std::byte>(5, std::byte{0x11}));
  append_note(notes, "LINUX", 0x202, {});
  append_note(notes, "GNU", NT_GNU_BUILD_ID, bytes_of({0xde, 0xad, 0xbe, 0xef, 0x01}), /*pad_desc=*/false);

  ByteReader reader(notes, "PT_NOTE segment");
  auto first = read_elf_note(reader);
  REQUIRE(first);
  CHECK(first->type == NT_PRSTATUS);
  CHECK(first->owned_by("CORE"));
  CHECK_FALSE(first->owned_by("COR"));
  CHECK_FALSE(first->owned_by("GNU"));
  CHECK(first->desc.size() == 5);
  CHECK(reader.offset() % 4 == 0);
  auto second = read_elf_note(reader);
  REQUIRE(second);
  CHECK(second->owned_by("LINUX"));
  CHECK(second->desc.empty());
  auto third = read_elf_note(reader);
  REQUIRE(third);
  CHECK(reader.at_end());

  CHECK(find_gnu_build_id(notes) == std::optional<std::string>("deadbeef01"));
}

TEST_CASE("read_elf_note says which sizes run past the end, and find_gnu_build_id stops at a bad note") {
  std::vector<std::byte> notes;
  append_note(notes, "GNU", NT_GNU_BUILD_ID, bytes_of({1, 2, 3, 4}));
  const std::size_t size_field = 4;  // n_descsz
  std::uint32_t huge = 0xfffffff0u;
  std::memcpy(notes.data() + size_field, &huge, sizeof huge);

  ByteReader reader(notes, "PT_NOTE segment");
  auto note = read_elf_note(reader);
  REQUIRE_FALSE(note);
  CHECK(note.error().message == "namesz 0x4 / descsz 0xfffffff0 run past the end of the PT_NOTE segment");
  CHECK(find_gnu_build_id(notes) == std::nullopt);

  const auto header_only = std::span(notes).first(7);
  ByteReader short_reader(header_only, "PT_NOTE segment");
  auto truncated = read_elf_note(short_reader);
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().message == "truncated note header (0x7 bytes left)");
  CHECK(find_gnu_build_id({}) == std::nullopt);
}
