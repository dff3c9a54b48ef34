#include "binary/elf_image.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "base/hex.h"
#include "target/elf_note.h"
#include "target/regular_file.h"

namespace fiberscope::binary {
namespace {

// Caps on counts read from the file: a real binary is far below them, a hostile one cannot make us allocate more.
constexpr std::size_t kMaxSections = 65'536;
constexpr std::size_t kMaxSegments = 4'096;
constexpr std::size_t kMaxSymbols = 8'000'000;

bool range_within(std::uint64_t offset, std::uint64_t size, std::uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

std::string elf_error_text() {
  const char* text = elf_errmsg(-1);
  return text ? text : "unknown libelf error";
}

// libelf needs elf_version() once per process before anything else.
bool libelf_ready() {
  static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
  return ready;
}

struct SymbolEntry {
  std::string_view name;  // points into the mapped string table
  std::uint64_t address = 0;
  std::uint64_t size_bytes = 0;
  bool is_function = false;
  bool from_symtab = false;
};

}  // namespace

struct ElfImage::Impl {
  std::string path;
  const std::byte* file = nullptr;  // the whole file, mapped read-only
  std::uint64_t file_size_bytes = 0;
  Elf* elf = nullptr;
  bool shared_object = false;
  std::vector<ElfSection> sections;
  std::vector<ElfSegment> segments;
  std::uint64_t first_load_vaddr = 0;
  std::vector<SymbolEntry> symbols;            // all named symbols, .symtab first
  std::vector<std::size_t> functions_by_address;  // indices into symbols, sorted by address
  std::unordered_map<std::string_view, std::size_t> symbol_by_name;  // first (i.e. .symtab) wins
  std::optional<std::string> build_id;
  std::optional<std::string> debuglink;
  // Decompressed copies of SHF_COMPRESSED sections, by section index; filled on first use (owned by libelf).
  std::unordered_map<std::size_t, std::span<const std::byte>> decompressed;

  ~Impl() {
    if (elf) elf_end(elf);
    if (file) munmap(const_cast<std::byte*>(file), file_size_bytes);
  }

  std::string where(std::string_view what) const { return path + ": " + std::string(what); }

  Result<void> load();
  Result<void> load_sections();
  Result<void> load_segments();
  Result<void> load_symbols(std::string_view table_name);
  void load_notes();
  void load_debuglink();
  std::span<const std::byte> decompress(std::size_t index);
};

// Caps the size a compressed section may claim: a hostile header must not make us allocate gigabytes.
constexpr std::uint64_t kMaxDecompressedBytes = std::uint64_t{1} << 30;
// zlib's deflate cannot compress better than about 1032:1 (RFC 1951's longest match per shortest code), so a
// section claiming more than that many bytes per compressed byte is lying, and libelf would allocate its claim.
constexpr std::uint64_t kMaxDeflateRatio = 1032;

std::span<const std::byte> ElfImage::Impl::decompress(std::size_t index) {
  if (auto found = decompressed.find(index); found != decompressed.end()) return found->second;
  std::span<const std::byte> result;
  const ElfSection& raw = sections[index];
  Elf64_Chdr header;
  if (raw.bytes.size() >= sizeof header) {
    std::memcpy(&header, raw.bytes.data(), sizeof header);
    Elf_Scn* scn = elf_getscn(elf, index);
    // elf_compress(.., 0, 0) inflates into a buffer libelf owns until elf_end; our mapping stays untouched.
    const std::uint64_t plausible_bytes = (raw.bytes.size() - sizeof header) * kMaxDeflateRatio;
    if (header.ch_size <= kMaxDecompressedBytes && header.ch_size <= plausible_bytes && scn &&
        elf_compress(scn, 0, 0) == 1) {
      if (Elf_Data* data = elf_getdata(scn, nullptr); data && data->d_buf && data->d_size == header.ch_size)
        result = std::span<const std::byte>(static_cast<const std::byte*>(data->d_buf), data->d_size);
    }
  }
  decompressed.emplace(index, result);
  return result;
}

Result<void> ElfImage::Impl::load() {
  GElf_Ehdr header;
  if (!gelf_getehdr(elf, &header)) return fail(where("not a valid ELF header: "), elf_error_text());
  if (header.e_ident[EI_CLASS] != ELFCLASS64) return fail(where("not a 64-bit ELF file"));
  if (header.e_ident[EI_DATA] != ELFDATA2LSB) return fail(where("not a little-endian ELF file"));
  if (header.e_machine != EM_X86_64)
    return fail(where("ELF machine is "), std::to_string(header.e_machine), ", not x86-64 (62)");
  if (header.e_type != ET_EXEC && header.e_type != ET_DYN && header.e_type != ET_REL)
    return fail(where("ELF type "), std::to_string(header.e_type), " is not an executable or shared object");
  shared_object = header.e_type == ET_DYN;
  if (header.e_shnum != 0 && header.e_shoff != 0) {
    // A section header table that does not fit is the classic truncated/corrupt file; say so before libelf
    // reports a vaguer error.
    if (header.e_shentsize != sizeof(Elf64_Shdr))
      return fail(where("e_shentsize "), std::to_string(header.e_shentsize), " is not ",
                  std::to_string(sizeof(Elf64_Shdr)));
    if (!range_within(header.e_shoff, std::uint64_t{header.e_shnum} * sizeof(Elf64_Shdr), file_size_bytes))
      return fail(where("section header table at e_shoff "), hex(header.e_shoff), " (", std::to_string(header.e_shnum),
                  " entries) extends past the end of the file (", std::to_string(file_size_bytes), " bytes)");
  }
  if (header.e_phnum != 0 &&
      !range_within(header.e_phoff, std::uint64_t{header.e_phnum} * sizeof(Elf64_Phdr), file_size_bytes))
    return fail(where("program header table at e_phoff "), hex(header.e_phoff), " extends past the end of the file");
  FS_TRY_DISCARD(load_segments());
  FS_TRY_DISCARD(load_sections());
  FS_TRY_DISCARD(load_symbols(".symtab"));
  FS_TRY_DISCARD(load_symbols(".dynsym"));
  std::sort(functions_by_address.begin(), functions_by_address.end(), [&](std::size_t a, std::size_t b) {
    if (symbols[a].address != symbols[b].address) return symbols[a].address < symbols[b].address;
    // Among aliases, lookups scan backwards: put the .symtab entry and the largest extent last so they win.
    if (symbols[a].from_symtab != symbols[b].from_symtab) return symbols[b].from_symtab;
    return symbols[a].size_bytes < symbols[b].size_bytes;
  });
  load_notes();
  load_debuglink();
  return {};
}

Result<void> ElfImage::Impl::load_segments() {
  std::size_t count = 0;
  if (elf_getphdrnum(elf, &count) != 0) return fail(where("cannot read program headers: "), elf_error_text());
  if (count > kMaxSegments) return fail(where("too many program headers: "), std::to_string(count));
  std::optional<std::uint64_t> lowest;
  for (std::size_t i = 0; i < count; ++i) {
    GElf_Phdr phdr;
    if (!gelf_getphdr(elf, static_cast<int>(i), &phdr))
      return fail(where("cannot read program header "), std::to_string(i), ": ", elf_error_text());
    if (phdr.p_type != PT_LOAD) continue;
    // A segment with no file bytes may point anywhere: objcopy --strip-debug leaves the offsets of a debug file's
    // emptied segments past its end.
    if (phdr.p_filesz > phdr.p_memsz ||
        (phdr.p_filesz != 0 && !range_within(phdr.p_offset, phdr.p_filesz, file_size_bytes)) ||
        phdr.p_vaddr + phdr.p_memsz < phdr.p_vaddr)
      return fail(where("PT_LOAD segment "), std::to_string(i), " at offset ", hex(phdr.p_offset), " size ",
                  hex(phdr.p_filesz), " is outside the file or inconsistent");
    segments.push_back(ElfSegment{phdr.p_vaddr, phdr.p_memsz, phdr.p_offset, phdr.p_filesz, phdr.p_flags});
    std::uint64_t align = phdr.p_align > 1 && (phdr.p_align & (phdr.p_align - 1)) == 0 ? phdr.p_align : 1;
    // Alignments beyond a page do not change where the kernel maps the first page of the segment.
    align = std::min<std::uint64_t>(align, 4096);
    std::uint64_t start = phdr.p_vaddr & ~(align - 1);
    if (!lowest || start < *lowest) lowest = start;
  }
  first_load_vaddr = lowest.value_or(0);
  return {};
}

Result<void> ElfImage::Impl::load_sections() {
  std::size_t count = 0;
  if (elf_getshdrnum(elf, &count) != 0) return fail(where("cannot count sections: "), elf_error_text());
  if (count > kMaxSections) return fail(where("too many sections: "), std::to_string(count));
  if (count == 0) return {};
  std::size_t names_index = 0;
  if (elf_getshdrstrndx(elf, &names_index) != 0)
    return fail(where("cannot find the section name table: "), elf_error_text());
  if (names_index >= count) return fail(where("e_shstrndx "), std::to_string(names_index), " is out of range");
  GElf_Shdr names_header;
  Elf_Scn* names_scn = elf_getscn(elf, names_index);
  if (!names_scn || !gelf_getshdr(names_scn, &names_header))
    return fail(where("cannot read the section name table header: "), elf_error_text());
  if (names_header.sh_type != SHT_STRTAB ||
      !range_within(names_header.sh_offset, names_header.sh_size, file_size_bytes))
    return fail(where("section name table at offset "), hex(names_header.sh_offset),
                " is not a string table inside the file");
  const char* names = reinterpret_cast<const char*>(file + names_header.sh_offset);
  const std::uint64_t names_size = names_header.sh_size;

  sections.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    Elf_Scn* scn = elf_getscn(elf, i);
    GElf_Shdr shdr;
    if (!scn || !gelf_getshdr(scn, &shdr))
      return fail(where("cannot read section header "), std::to_string(i), ": ", elf_error_text());
    ElfSection section;
    if (shdr.sh_name < names_size) {
      const char* name = names + shdr.sh_name;
      section.name.assign(name, strnlen(name, names_size - shdr.sh_name));
    } else if (i != 0) {
      return fail(where("section "), std::to_string(i), " name offset ", hex(shdr.sh_name), " is past the name table");
    }
    section.type = shdr.sh_type;
    section.address = shdr.sh_addr;
    section.file_offset = shdr.sh_offset;
    if (shdr.sh_type != SHT_NOBITS && shdr.sh_type != SHT_NULL) {
      if (!range_within(shdr.sh_offset, shdr.sh_size, file_size_bytes))
        return fail(where("section "), section.name, " at offset ", hex(shdr.sh_offset), " size ", hex(shdr.sh_size),
                    " extends past the end of the file (", std::to_string(file_size_bytes), " bytes)");
      section.bytes = std::span<const std::byte>(file + shdr.sh_offset, shdr.sh_size);
    }
    section.compressed = (shdr.sh_flags & SHF_COMPRESSED) != 0;
    sections.push_back(std::move(section));
  }
  return {};
}

Result<void> ElfImage::Impl::load_symbols(std::string_view table_name) {
  auto table = std::find_if(sections.begin(), sections.end(),
                            [&](const ElfSection& s) { return s.name == table_name; });
  if (table == sections.end()) return {};
  const std::size_t table_index = static_cast<std::size_t>(table - sections.begin());
  // A separate debug file keeps the header of .dynsym but not its contents (SHT_NOBITS): nothing to read.
  if (table->type == SHT_NOBITS) return {};
  if (table->type != SHT_SYMTAB && table->type != SHT_DYNSYM)
    return fail(where("section "), table_name, " has type ", std::to_string(table->type), ", not a symbol table");
  GElf_Shdr shdr;
  if (!gelf_getshdr(elf_getscn(elf, table_index), &shdr))
    return fail(where("cannot reread the header of "), table_name, ": ", elf_error_text());
  if (shdr.sh_link == 0 || shdr.sh_link >= sections.size() || sections[shdr.sh_link].type != SHT_STRTAB)
    return fail(where("symbol table "), table_name, " has sh_link ", std::to_string(shdr.sh_link),
                ", which is not a string table");
  if (shdr.sh_entsize != sizeof(Elf64_Sym))
    return fail(where("symbol table "), table_name, " has entry size ", std::to_string(shdr.sh_entsize));
  const std::span<const std::byte> strings = sections[shdr.sh_link].bytes;
  const std::size_t count = table->bytes.size() / sizeof(Elf64_Sym);
  if (count > kMaxSymbols) return fail(where("symbol table "), table_name, " has too many entries");
  const bool from_symtab = table_name == ".symtab";
  for (std::size_t i = 1; i < count; ++i) {
    Elf64_Sym raw;
    std::memcpy(&raw, table->bytes.data() + i * sizeof(Elf64_Sym), sizeof raw);
    const unsigned type = ELF64_ST_TYPE(raw.st_info);
    if (raw.st_name == 0 || raw.st_name >= strings.size()) continue;  // unnamed or hostile: nothing to look up
    if (type == STT_SECTION || type == STT_FILE || type == STT_TLS) continue;
    if (raw.st_shndx == SHN_UNDEF) continue;  // imports name nothing in this file
    const char* name = reinterpret_cast<const char*>(strings.data()) + raw.st_name;
    SymbolEntry entry;
    entry.name = std::string_view(name, strnlen(name, strings.size() - raw.st_name));
    entry.address = raw.st_value;
    entry.size_bytes = raw.st_size;
    entry.is_function = type == STT_FUNC || type == STT_GNU_IFUNC;
    entry.from_symtab = from_symtab;
    symbols.push_back(entry);
    symbol_by_name.emplace(entry.name, symbols.size() - 1);
    if (entry.is_function) functions_by_address.push_back(symbols.size() - 1);
  }
  return {};
}

void ElfImage::Impl::load_notes() {
  // Notes are optional: a malformed note only means no build-id, never a failed open.
  for (const ElfSection& section : sections) {
    if (section.type != SHT_NOTE) continue;
    if (auto found = target::find_gnu_build_id(section.bytes)) {
      build_id = std::move(*found);
      return;
    }
  }
}

void ElfImage::Impl::load_debuglink() {
  for (const ElfSection& section : sections) {
    if (section.name != ".gnu_debuglink" || section.bytes.empty()) continue;
    const char* text = reinterpret_cast<const char*>(section.bytes.data());
    const std::size_t length = strnlen(text, section.bytes.size());
    if (length > 0 && length < section.bytes.size()) debuglink = std::string(text, length);
  }
}

ElfImage::ElfImage() : impl_(std::make_unique<Impl>()) {}
ElfImage::~ElfImage() = default;

Result<std::unique_ptr<ElfImage>> ElfImage::open(const std::string& path) {
  if (!libelf_ready()) return fail("libelf: elf_version failed");
  std::unique_ptr<ElfImage> image(new ElfImage());
  Impl& impl = *image->impl_;
  impl.path = path;
  FS_TRY(opened, target::open_regular_file(path));
  if (opened->size_bytes() < sizeof(Elf64_Ehdr))
    return fail(path, ": file is ", std::to_string(opened->size_bytes()), " bytes, too short for an ELF header");
  const int fd = opened->fd();
  impl.file_size_bytes = opened->size_bytes();
  // Read, not mapped: a mapped library that shrinks (replaced by a package upgrade while a live dump runs) raises
  // SIGBUS wherever libelf or the symbolizer happens to touch it. Anonymous memory filled by pread gives an error
  // here instead, once. Writable because libelf may convert data in place for a foreign byte order.
  void* mapped = mmap(nullptr, impl.file_size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return fail(path, ": cannot allocate ", std::to_string(impl.file_size_bytes), " bytes");
  for (std::uint64_t done = 0; done < impl.file_size_bytes;) {
    ssize_t got = ::pread(fd, static_cast<char*>(mapped) + done, impl.file_size_bytes - done, static_cast<off_t>(done));
    if (got <= 0) {
      int error = got < 0 ? errno : 0;
      munmap(mapped, impl.file_size_bytes);
      return fail(path, ": ", got < 0 ? std::string("read failed: ") + std::strerror(error)
                                      : "shrank while being read (at offset " + std::to_string(done) + ")");
    }
    done += static_cast<std::uint64_t>(got);
  }
  impl.file = static_cast<const std::byte*>(mapped);
  impl.elf = elf_memory(static_cast<char*>(mapped), impl.file_size_bytes);
  if (!impl.elf) return fail(path, ": libelf: ", elf_error_text());
  if (elf_kind(impl.elf) != ELF_K_ELF) return fail(path, ": not an ELF file");
  FS_TRY_DISCARD(impl.load());
  return image;
}

const std::string& ElfImage::path() const { return impl_->path; }

std::optional<ElfSection> ElfImage::section(std::string_view name) const {
  for (std::size_t i = 0; i < impl_->sections.size(); ++i) {
    const ElfSection& section = impl_->sections[i];
    if (section.name != name) continue;
    if (!section.compressed || section.bytes.empty()) return section;
    ElfSection inflated = section;
    inflated.bytes = impl_->decompress(i);  // empty if the compressed data is corrupt
    inflated.compressed = false;
    return inflated;
  }
  return std::nullopt;
}

const std::vector<ElfSection>& ElfImage::sections() const { return impl_->sections; }
const std::vector<ElfSegment>& ElfImage::load_segments() const { return impl_->segments; }
std::uint64_t ElfImage::first_load_vaddr() const { return impl_->first_load_vaddr; }
bool ElfImage::is_shared_object() const { return impl_->shared_object; }

std::optional<ElfSymbol> ElfImage::find_symbol(std::string_view name) const {
  auto found = impl_->symbol_by_name.find(name);
  if (found == impl_->symbol_by_name.end()) return std::nullopt;
  const SymbolEntry& entry = impl_->symbols[found->second];
  return ElfSymbol{std::string(entry.name), entry.address, entry.size_bytes, entry.is_function};
}

std::optional<ElfSymbol> ElfImage::symbol_containing(std::uint64_t address) const {
  const auto& order = impl_->functions_by_address;
  const auto& symbols = impl_->symbols;
  // First symbol starting above `address`; candidates are below it.
  auto above = std::upper_bound(order.begin(), order.end(), address,
                                [&](std::uint64_t a, std::size_t index) { return a < symbols[index].address; });
  if (above == order.begin()) return std::nullopt;
  const SymbolEntry* nearest = &symbols[*std::prev(above)];
  // Several symbols may share the nearest start (aliases); nested ones (a sized symbol inside a bigger one) are
  // rare in code, so scanning a handful back for one whose extent covers `address` is enough.
  std::size_t scanned = 0;
  for (auto it = above; it != order.begin() && scanned < 16; ++scanned) {
    --it;
    const SymbolEntry& candidate = symbols[*it];
    if (address - candidate.address < candidate.size_bytes)
      return ElfSymbol{std::string(candidate.name), candidate.address, candidate.size_bytes, true};
  }
  // Past the end of every sized symbol: the code belongs to something the table does not name (a static function
  // of a stripped file). Only a size-0 symbol (an assembly label) may still claim it, as gdb's minimal symbols do.
  if (nearest->size_bytes != 0) return std::nullopt;
  return ElfSymbol{std::string(nearest->name), nearest->address, nearest->size_bytes, true};
}

std::optional<std::string> ElfImage::build_id() const { return impl_->build_id; }
std::optional<std::string> ElfImage::debuglink() const { return impl_->debuglink; }

bool ElfImage::has_dwarf() const {
  // The raw entry: asking section() would inflate a compressed .debug_info just to see that it exists.
  for (const ElfSection& section : impl_->sections)
    if (section.name == ".debug_info") return !section.bytes.empty();
  return false;
}

}  // namespace fiberscope::binary
