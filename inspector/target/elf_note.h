// ElfNote: one ELF note (an Elf64_Nhdr, then the name and the descriptor, each padded to 4 bytes) read from
// untrusted bytes: a core's PT_NOTE segments, the PT_NOTE segments and SHT_NOTE sections of executables.
//
//   ByteReader reader(segment, "PT_NOTE segment");
//   while (!reader.at_end()) {
//     auto note = read_elf_note(reader);  // "namesz 0xffffffff / descsz 0x150 run past the end of the PT_NOTE segment"
//     if (!note) break;
//     if (note->owned_by("CORE") && note->type == NT_PRSTATUS) use(note->desc);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_reader.h"
#include "base/result.h"

namespace fiberscope::target {

struct ElfNote {
  std::uint32_t type = 0;            // n_type: its meaning depends on the name (NT_PRSTATUS for "CORE")
  std::span<const std::byte> name;   // n_namesz bytes, with the NUL the producer wrote
  std::span<const std::byte> desc;   // n_descsz bytes

  // True when the name is `owner` and its NUL ("CORE", "GNU"), as the kernel and linkers write it.
  bool owned_by(std::string_view owner) const;
};

// Reads the note at the reader's offset and moves past it and its padding (the last note's padding may be cut off).
// Fails, with the reader somewhere inside the note, when the header, name or descriptor runs past the end.
Result<ElfNote> read_elf_note(ByteReader& reader);

// The NT_GNU_BUILD_ID of `notes` as lower-case hex, or nothing; stops quietly at the first malformed note.
std::optional<std::string> find_gnu_build_id(std::span<const std::byte> notes);

}  // namespace fiberscope::target
