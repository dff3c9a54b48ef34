#include "target/elf_note.h"

#include <elf.h>

#include <cstring>

#include "base/hex.h"

namespace fiberscope::target {

bool ElfNote::owned_by(std::string_view owner) const {
  return name.size() == owner.size() + 1 && std::memcmp(name.data(), owner.data(), owner.size()) == 0 &&
         name.back() == std::byte{0};
}

Result<ElfNote> read_elf_note(ByteReader& reader) {
  auto header = reader.object<Elf64_Nhdr>();
  if (!header) return fail("truncated note header (", hex(reader.remaining()), " bytes left)");
  auto run_past_end = [&] {
    return fail("namesz ", hex(header->n_namesz), " / descsz ", hex(header->n_descsz), " run past the end of the ",
                reader.what());
  };
  auto name = reader.bytes(header->n_namesz);
  // The descriptor starts 4-aligned (gABI "Note Section"; 64-bit producers use 4 too, not 8).
  if (!name || !reader.align(4)) return run_past_end();
  auto desc = reader.bytes(header->n_descsz);
  if (!desc) return run_past_end();
  ElfNote note;
  note.type = header->n_type;
  note.name = *name;
  note.desc = *desc;
  // Some producers omit the last note's padding; nothing follows it to misalign.
  if (!reader.align(4)) (void)reader.seek(reader.size());
  return note;
}

std::optional<std::string> find_gnu_build_id(std::span<const std::byte> notes) {
  ByteReader reader(notes, "notes");
  while (!reader.at_end()) {
    auto note = read_elf_note(reader);
    if (!note) return std::nullopt;
    if (note->type == NT_GNU_BUILD_ID && note->owned_by("GNU") && !note->desc.empty()) return hex_bytes(note->desc);
  }
  return std::nullopt;
}

}  // namespace fiberscope::target
