#include "target/core_file.h"

#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "base/byte_reader.h"
#include "base/hex.h"
#include "target/elf_note.h"
#include "target/mapped_copy.h"
#include "target/regular_file.h"
#include "target/registers.h"

namespace fiberscope::target {

namespace {

// The kernel's note layouts, which glibc's <sys/procfs.h> mirrors: a mismatch would misread every core.
static_assert(offsetof(elf_prstatus, pr_reg) == 112 && sizeof(elf_prstatus) == 336);
static_assert(offsetof(elf_prpsinfo, pr_pid) == 24 && offsetof(elf_prpsinfo, pr_fname) == 40);
constexpr std::size_t kSiginfoAddrOffset = 16;  // si_addr, after si_signo, si_errno, si_code and padding to 8

// The GNU note types the core and the ELF files use, named here because <elf.h> spells some differently.
constexpr std::uint32_t kNoteFile = NT_FILE;
constexpr std::uint32_t kNoteSiginfo = NT_SIGINFO;
constexpr std::uint64_t kMaxAuxvEntries = 1024;     // the kernel's saved_auxv holds about 50
constexpr std::uint64_t kMaxDiskPhdrs = 1024;       // program headers of an executable or library on disk
constexpr std::uint64_t kMaxElfNoteBytes = 1 << 16; // one PT_NOTE of an executable or library
constexpr std::uint64_t kMaxExecfnBytes = 4096;     // PATH_MAX

std::string errno_text(int error) { return std::strerror(error); }

// A whole file mapped read-only. The kernel pages it in on access, so a 1 GB core costs nothing until read.
class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path) {
    FS_TRY(opened, open_regular_file(path));
    MappedFile file;
    file.device_ = opened->device();
    file.inode_ = opened->inode();
    file.size_ = opened->size_bytes();
    if (file.size_ > 0) {
      void* address = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, opened->fd(), 0);
      if (address == MAP_FAILED) return fail(path, ": mmap of ", hex(file.size_), " bytes failed: ", errno_text(errno));
      file.data_ = static_cast<const std::byte*>(address);
    }
    return file;  // the mapping keeps the file open
  }

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }
  MappedFile& operator=(MappedFile&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    device_ = other.device_;
    inode_ = other.inode_;
    return *this;
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  std::span<const std::byte> bytes() const { return {data_, static_cast<std::size_t>(size_)}; }
  // Drops the mapping's pages from this process (they stay in the page cache): a later read faults them back in
  // from the unchanged file, so spans into bytes() stay valid.
  void release_pages() const {
    if (data_) ::madvise(const_cast<std::byte*>(data_), size_, MADV_DONTNEED);
  }
  dev_t device() const { return device_; }
  ino_t inode() const { return inode_; }

 private:
  const std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// Reads `out.size()` bytes at file offset `offset` of some ELF image (a file on disk, or one in core memory).
using ImageReader = std::function<Result<void>(std::uint64_t offset, std::span<std::byte> out)>;

// What the core reader needs to know about an ELF image to check it is the one the core was made from.
struct ElfIdentity {
  std::optional<std::string> build_id;  // lower-case hex of NT_GNU_BUILD_ID
  std::uint64_t entry = 0;
  std::vector<Elf64_Phdr> loads;
};

// Reads the ELF header, PT_LOAD headers and build-id of an image through `read`.
Result<ElfIdentity> read_elf_identity(const ImageReader& read) {
  Elf64_Ehdr header;
  FS_TRY_DISCARD(read(0, std::as_writable_bytes(std::span(&header, 1))));
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return fail("no ELF magic");
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB)
    return fail("not a 64-bit little-endian ELF file");
  if (header.e_phentsize != sizeof(Elf64_Phdr)) return fail("program header size ", hex(header.e_phentsize));
  if (header.e_phnum > kMaxDiskPhdrs)
    return fail(hex(header.e_phnum), " program headers (cap ", hex(kMaxDiskPhdrs), ")");
  std::vector<Elf64_Phdr> phdrs(header.e_phnum);
  FS_TRY_DISCARD(with_context(read(header.e_phoff, std::as_writable_bytes(std::span(phdrs))), "program headers"));
  ElfIdentity identity;
  identity.entry = header.e_entry;
  for (const Elf64_Phdr& phdr : phdrs) {
    if (phdr.p_type == PT_LOAD) identity.loads.push_back(phdr);
    if (phdr.p_type != PT_NOTE || identity.build_id || phdr.p_filesz > kMaxElfNoteBytes) continue;
    std::vector<std::byte> notes(phdr.p_filesz);
    if (!read(phdr.p_offset, notes)) continue;  // a note past what is readable is not the build-id we can check
    identity.build_id = find_gnu_build_id(notes);
  }
  return identity;
}

// pread-based reader of a file on disk, for checks that must not map the file yet.
// True if `path` starts with the ELF magic; false for data files and for files that cannot be read.
bool has_elf_magic(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char magic[SELFMAG] = {};
  const bool is_elf = ::pread(fd, magic, SELFMAG, 0) == SELFMAG && std::memcmp(magic, ELFMAG, SELFMAG) == 0;
  ::close(fd);
  return is_elf;
}

Result<ElfIdentity> read_disk_identity(const std::string& path) {
  FS_TRY(opened, open_regular_file(path));
  int fd = opened->fd();
  auto identity = read_elf_identity([fd](std::uint64_t offset, std::span<std::byte> out) -> Result<void> {
    if (offset > static_cast<std::uint64_t>(INT64_MAX)) return fail("offset ", hex(offset), " out of range");
    ssize_t got = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (got < 0 || static_cast<std::size_t>(got) != out.size())
      return fail("cannot read ", hex(out.size()), " bytes at file offset ", hex(offset));
    return {};
  });
  return identity;
}

// One PT_LOAD of the core, or a file mapping NT_FILE lists without one.
struct Segment {
  AddressRange range;
  std::uint64_t core_offset = 0;      // p_offset
  std::uint64_t dumped_bytes = 0;     // p_filesz (at most the segment's size): the rest the core omits
  std::uint64_t present_bytes = 0;    // how much of p_filesz is inside the core file (less when truncated)
  std::uint32_t flags = 0;            // PF_R | PF_W | PF_X
  int backing = -1;                   // BackingFile index for omitted bytes, -1: anonymous (omitted bytes are zero)
  std::uint64_t backing_offset = 0;   // file offset of range.start in that file
  AddressRange backing_range;         // the part of range the file backs (the NT_FILE entry)
};

// A file named by NT_FILE, read for memory the core omits.
struct BackingFile {
  std::string recorded_path;           // as NT_FILE names it
  std::string disk_path;               // after --sysroot / --exe
  std::optional<FileRefusal> refusal;  // set: reads fail with its reason
  std::optional<MappedFile> mapped;    // mapped on first read
};

// Memory of a core: PT_LOAD segments, then the files NT_FILE names for what the core omits.
class CoreMemory final : public Memory {
 public:
  CoreMemory(std::string core_path, MappedFile core) : core_path_(std::move(core_path)), core_(std::move(core)) {}

  Result<void> read(RemoteAddress address, std::span<std::byte> out) const override {
    std::uint64_t done = 0;
    while (done < out.size()) {
      RemoteAddress at = address + done;
      if (at < address) return fail("read of ", hex(out.size()), " bytes at ", address.to_string(), " wraps");
      const Segment* segment = find(at);
      if (!segment)
        return fail("memory at ", at.to_string(), " is not in core ", core_path_);
      // Guard pages and PROT_NONE reservations: unreadable in the process, so not zeros here either.
      if (!(segment->flags & PF_R))
        return fail("memory at ", at.to_string(), " is not readable (its mapping had no read permission)");
      std::uint64_t in_segment = at - segment->range.start;
      std::uint64_t want = std::min<std::uint64_t>(out.size() - done, segment->range.end - at);
      auto piece = out.subspan(done, want);
      if (in_segment < segment->dumped_bytes) {
        piece = piece.first(std::min<std::uint64_t>(want, segment->dumped_bytes - in_segment));
        FS_TRY_DISCARD(read_dumped(*segment, in_segment, piece));
      } else if (segment->backing >= 0 && segment->backing_range.contains(at)) {
        piece = piece.first(std::min<std::uint64_t>(want, segment->backing_range.end - at));
        FS_TRY_DISCARD(read_backing(*segment, at, piece));
      } else {
        // Anonymous memory past p_filesz is zero-filled, as for any ELF segment.
        std::memset(piece.data(), 0, piece.size());
      }
      done += piece.size();
    }
    return {};
  }

  // Reads bytes that the core itself holds, never a backing file (for the build-id the core recorded).
  Result<void> read_core_only(RemoteAddress address, std::span<std::byte> out) const {
    const Segment* segment = find(address);
    if (!segment) return fail("memory at ", address.to_string(), " is not in the core");
    std::uint64_t in_segment = address - segment->range.start;
    if (in_segment > segment->dumped_bytes || out.size() > segment->dumped_bytes - in_segment)
      return fail("memory at ", address.to_string(), " was not dumped");
    return read_dumped(*segment, in_segment, out);
  }

  std::span<const std::byte> core_bytes() const { return core_.bytes(); }
  std::vector<Segment>& segments() { return segments_; }
  const std::vector<Segment>& segments() const { return segments_; }
  std::vector<BackingFile>& backing_files() { return backing_; }
  const std::vector<BackingFile>& backing_files() const { return backing_; }

 private:
  const Segment* find(RemoteAddress address) const {
    auto after = std::upper_bound(segments_.begin(), segments_.end(), address,
                                  [](RemoteAddress a, const Segment& s) { return a < s.range.start; });
    if (after == segments_.begin()) return nullptr;
    const Segment& candidate = *(after - 1);
    return candidate.range.contains(address) ? &candidate : nullptr;
  }

  Result<void> read_dumped(const Segment& segment, std::uint64_t in_segment, std::span<std::byte> out) const {
    if (in_segment + out.size() > segment.present_bytes)
      return fail("memory at ", (segment.range.start + in_segment).to_string(), " lies past the end of truncated core ",
                  core_path_, " (needs file offset ", hex(segment.core_offset + in_segment + out.size()),
                  ", file has ", hex(core_.bytes().size()), " bytes)");
    if (!copy_from_mapping(out.data(), core_.bytes().data() + segment.core_offset + in_segment, out.size()))
      return fail("memory at ", (segment.range.start + in_segment).to_string(), ": core ", core_path_,
                  " shrank while being read (file offset ", hex(segment.core_offset + in_segment), ")");
    // Each page fault maps the page's neighbours too (the kernel's fault-around, which MADV_RANDOM does not stop),
    // and mapped pages count in our resident set: reading a stack of each of 100k fibers made it 1.7 GB. Every
    // kReadsPerRelease reads the mapping's pages are let go, which bounds the growth at about 64 KiB per read.
    if (reads_.fetch_add(1, std::memory_order_relaxed) % kReadsPerRelease == kReadsPerRelease - 1)
      core_.release_pages();
    return {};
  }

  Result<void> read_backing(const Segment& segment, RemoteAddress at, std::span<std::byte> out) const {
    std::lock_guard lock(mutex_);  // files are mapped lazily, on the first read that needs them
    BackingFile& file = backing_[static_cast<std::size_t>(segment.backing)];
    auto unreadable = [&](std::string_view why) {
      return fail("memory at ", at.to_string(), " is not in core ", core_path_, " and ", file.disk_path, " ", why);
    };
    if (file.refusal) return unreadable(file.refusal->reason);
    if (!file.mapped) {
      auto mapped = MappedFile::open(file.disk_path);
      if (!mapped) {
        file.refusal = FileRefusal{FileRefusalKind::unreadable, "cannot be read: " + mapped.error().message};
        return unreadable(file.refusal->reason);
      }
      file.mapped = std::move(*mapped);
    }
    std::uint64_t file_offset = segment.backing_offset + (at - segment.range.start);
    auto bytes = ByteReader(file.mapped->bytes(), file.disk_path).bytes_at(file_offset, out.size());
    if (!bytes) return unreadable("is shorter than the mapping (offset " + hex(file_offset) + ")");
    if (!copy_from_mapping(out.data(), bytes->data(), out.size()))
      return unreadable("shrank while being read (offset " + hex(file_offset) + ")");
    return {};
  }

  std::string core_path_;
  static constexpr std::uint64_t kReadsPerRelease = 2048;
  MappedFile core_;
  mutable std::atomic<std::uint64_t> reads_{0};  // of the core itself, for release_pages
  std::vector<Segment> segments_;  // sorted by range.start, disjoint
  mutable std::mutex mutex_;
  mutable std::vector<BackingFile> backing_;
};

struct FileEntry {
  AddressRange range;
  std::uint64_t file_offset = 0;
  std::string path;
};

struct CoreThread {
  ThreadState state;
  bool has_siginfo = false;
};

// What the notes of a core say.
struct CoreNotes {
  std::vector<CoreThread> threads;
  std::optional<elf_prpsinfo> process;
  std::vector<FileEntry> files;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv;
  std::uint64_t note_count = 0;
  bool threads_capped = false;
};

std::string note_place(std::uint64_t file_offset) { return "note at core offset " + hex(file_offset); }

void parse_prstatus(std::span<const std::byte> desc, std::uint64_t file_offset, CoreNotes& notes,
                    std::vector<std::string>& warnings) {
  auto status = ByteReader(desc, "NT_PRSTATUS").object<elf_prstatus>();
  if (!status) {
    warnings.push_back(note_place(file_offset) + ": NT_PRSTATUS of " + hex(desc.size()) + " bytes, expected " +
                       hex(sizeof(elf_prstatus)) + "; thread skipped");
    return;
  }
  if (notes.threads.size() >= kMaxCoreThreads) {
    notes.threads_capped = true;
    return;
  }
  std::array<std::uint64_t, kUserRegsWords> words;
  static_assert(sizeof status->pr_reg == sizeof words);
  std::memcpy(words.data(), &status->pr_reg, sizeof words);
  CoreThread thread;
  thread.state.tid = status->pr_pid;
  thread.state.signal = status->pr_cursig;
  thread.state.registers = registers_from_user_regs(words);
  notes.threads.push_back(std::move(thread));
}

void parse_siginfo(std::span<const std::byte> desc, std::uint64_t file_offset, CoreNotes& notes,
                   std::vector<std::string>& warnings) {
  ByteReader reader(desc, "NT_SIGINFO");
  auto signo = reader.fixed<std::int32_t>();
  (void)reader.fixed<std::int32_t>();  // si_errno
  auto code = reader.fixed<std::int32_t>();
  auto address = reader.object_at<std::uint64_t>(kSiginfoAddrOffset);
  if (!address) {
    warnings.push_back(note_place(file_offset) + ": NT_SIGINFO of " + hex(desc.size()) + " bytes is too short");
    return;
  }
  if (notes.threads.empty()) return;  // kernels write it after the crashing thread's NT_PRSTATUS
  // gdb's gcore writes one per thread, with the SIGSTOP of its attach or nothing: no thread crashed then.
  if (*signo == 0 || *signo == SIGSTOP) return;
  CoreThread& thread = notes.threads.back();
  thread.has_siginfo = true;
  thread.state.signal = *signo;
  // si_addr means something only for faults the kernel raised (si_code > 0), not for kill/tgkill/abort.
  bool is_fault = *signo == SIGSEGV || *signo == SIGBUS || *signo == SIGILL || *signo == SIGFPE || *signo == SIGTRAP;
  if (is_fault && *code > 0) thread.state.fault_address = *address;
}

void parse_file_note(std::span<const std::byte> desc, std::uint64_t file_offset, CoreNotes& notes,
                     std::vector<std::string>& warnings) {
  // Layout (fs/binfmt_elf.c fill_files_note): count, page_size, count x {start, end, page offset}, count names.
  ByteReader entries(desc, "NT_FILE");
  auto count = entries.fixed<std::uint64_t>();
  auto page_size = entries.fixed<std::uint64_t>();
  auto where = note_place(file_offset) + ": NT_FILE";
  if (!count || !page_size) {
    warnings.push_back(where + " too short for its header; file mappings unknown");
    return;
  }
  if (*page_size == 0 || (*page_size & (*page_size - 1)) != 0 || *page_size > (1u << 30)) {
    warnings.push_back(where + " page size " + hex(*page_size) + " is not a power of two; file mappings unknown");
    return;
  }
  constexpr std::uint64_t kEntryBytes = 24;
  std::uint64_t room = entries.remaining() / kEntryBytes;
  std::uint64_t kept = std::min({*count, room, kMaxCoreFileEntries});
  if (kept < *count)
    warnings.push_back(where + " claims " + hex(*count) + " entries; kept " + hex(kept) +
                       (room < *count ? " (the note holds no more)" : " (cap)"));
  // The names follow all `count` entries; when the entries fill the note there are none (no overflow: count <= room).
  ByteReader names(desc, "NT_FILE names");
  (void)names.seek(*count <= room ? entries.offset() + *count * kEntryBytes : desc.size());
  for (std::uint64_t i = 0; i < kept; ++i) {
    // Cannot fail: `kept` entries fit in the note.
    auto start = *entries.fixed<std::uint64_t>();
    auto end = *entries.fixed<std::uint64_t>();
    auto page_offset = *entries.fixed<std::uint64_t>();
    auto name = names.c_string();
    if (!name) {
      warnings.push_back(where + " entry " + std::to_string(i) + " has no name inside the note; " +
                         std::to_string(kept - i) + " entries dropped");
      return;
    }
    std::string path(*name);
    if (start >= end || page_offset > UINT64_MAX / *page_size) {
      warnings.push_back(where + " entry " + std::to_string(i) + " (" + path + ") has a bad range; skipped");
      continue;
    }
    notes.files.push_back({{RemoteAddress(start), RemoteAddress(end)}, page_offset * *page_size, std::move(path)});
  }
}

void parse_auxv(std::span<const std::byte> desc, CoreNotes& notes) {
  ByteReader reader(desc, "NT_AUXV");
  while (reader.remaining() >= 16 && notes.auxv.size() < kMaxAuxvEntries) {
    auto type = *reader.fixed<std::uint64_t>();
    auto value = *reader.fixed<std::uint64_t>();
    if (type == AT_NULL) break;
    notes.auxv.emplace_back(type, value);
  }
}

// Walks the notes of one PT_NOTE segment.
void parse_notes(std::span<const std::byte> segment, std::uint64_t segment_offset, CoreNotes& notes,
                 std::vector<std::string>& warnings) {
  ByteReader reader(segment, "PT_NOTE segment");
  while (!reader.at_end()) {
    if (++notes.note_count > kMaxCoreNotes) {
      warnings.push_back("more than " + std::to_string(kMaxCoreNotes) + " notes; the rest are ignored (cap)");
      return;
    }
    std::uint64_t file_offset = segment_offset + reader.offset();
    auto note = read_elf_note(reader);
    if (!note) {
      warnings.push_back(note_place(file_offset) + ": " + note.error().message + "; the rest of the notes are ignored");
      return;
    }
    if (!note->owned_by("CORE")) continue;  // "LINUX" (xstate...) and others: not needed
    switch (note->type) {
      case NT_PRSTATUS: parse_prstatus(note->desc, file_offset, notes, warnings); break;
      case NT_PRPSINFO:
        if (auto info = ByteReader(note->desc, "NT_PRPSINFO").object<elf_prpsinfo>()) notes.process = *info;
        else warnings.push_back(note_place(file_offset) + ": NT_PRPSINFO too short; process name unknown");
        break;
      case kNoteSiginfo: parse_siginfo(note->desc, file_offset, notes, warnings); break;
      case kNoteFile: parse_file_note(note->desc, file_offset, notes, warnings); break;
      case NT_AUXV: parse_auxv(note->desc, notes); break;
      default: break;
    }
  }
}

std::optional<std::uint64_t> auxv_value(const CoreNotes& notes, std::uint64_t type) {
  for (auto& [key, value] : notes.auxv)
    if (key == type) return value;
  return std::nullopt;
}

// The entry of `files` (sorted by start) containing `address`: the last one starting at or below it. Binary
// search, since a hostile NT_FILE may hold the cap's worth of entries.
const FileEntry* file_containing(const std::vector<FileEntry>& files, std::uint64_t address) {
  auto after = std::upper_bound(files.begin(), files.end(), RemoteAddress(address),
                                [](RemoteAddress a, const FileEntry& file) { return a < file.range.start; });
  if (after == files.begin() || !(after - 1)->range.contains(RemoteAddress(address))) return nullptr;
  return &*(after - 1);
}

// Keeps the segments of `segments` (sorted by start) that do not overlap an earlier kept one; returns how many
// were dropped.
std::uint64_t drop_overlapping(std::vector<Segment>& segments) {
  std::vector<Segment> disjoint;
  disjoint.reserve(segments.size());
  for (Segment& segment : segments)
    if (disjoint.empty() || disjoint.back().range.end <= segment.range.start) disjoint.push_back(segment);
  std::uint64_t dropped = segments.size() - disjoint.size();
  segments = std::move(disjoint);
  return dropped;
}

// Reads the program header table, following PN_XNUM to section 0 when there are 65535 or more.
Result<std::span<const std::byte>> program_headers(std::span<const std::byte> core, const Elf64_Ehdr& header) {
  std::uint64_t count = header.e_phnum;
  if (count == PN_XNUM) {
    if (header.e_shentsize != sizeof(Elf64_Shdr)) return fail("PN_XNUM program headers but no section header 0");
    auto section0 = ByteReader(core, "core").object_at<Elf64_Shdr>(header.e_shoff);
    if (!section0)
      return fail("PN_XNUM program headers but section header 0 at ", hex(header.e_shoff), " is past the end");
    count = section0->sh_info;
  }
  if (count > kMaxCoreProgramHeaders)
    return fail(std::to_string(count), " program headers, more than the cap of ",
                std::to_string(kMaxCoreProgramHeaders));
  if (header.e_phentsize != sizeof(Elf64_Phdr)) return fail("program header size ", hex(header.e_phentsize));
  auto table = ByteReader(core, "core").bytes_at(header.e_phoff, count * sizeof(Elf64_Phdr));
  if (!table)
    return fail("program header table (", std::to_string(count), " entries at offset ", hex(header.e_phoff),
                ") runs past the end of the file (", hex(core.size()), " bytes): the core is truncated");
  return *table;
}

// The ELF header of a core, checked to be an x86-64 core, and its program header table.
Result<std::span<const std::byte>> core_program_headers(std::span<const std::byte> core_bytes,
                                                        const std::string& core_path) {
  auto where = [&](std::string_view what) { return fail(core_path, ": ", what); };
  if (core_bytes.empty()) return where("empty file (0 bytes), not a core");
  if (core_bytes.size() < SELFMAG || std::memcmp(core_bytes.data(), ELFMAG, SELFMAG) != 0)
    return where("not an ELF file (no ELF magic)");
  auto header = ByteReader(core_bytes, core_path).object<Elf64_Ehdr>();
  if (!header) return where("truncated inside the ELF header (" + std::to_string(core_bytes.size()) + " bytes)");
  if (header->e_ident[EI_CLASS] != ELFCLASS64 || header->e_ident[EI_DATA] != ELFDATA2LSB)
    return where("not a 64-bit little-endian ELF file");
  if (header->e_type != ET_CORE)
    return where("not a core file (ELF type " + std::to_string(header->e_type) +
                 (header->e_type == ET_EXEC ? ", an executable" : header->e_type == ET_DYN ? ", a shared object" : "") +
                 ")");
  if (header->e_machine != EM_X86_64)
    return where("core of machine " + std::to_string(header->e_machine) + "; only x86-64 (62) is supported");
  return with_context(program_headers(core_bytes, *header), core_path);
}

// PT_LOAD segments that could not be used as they are, counted for one warning each.
struct SegmentDefects {
  std::uint64_t wrapping = 0;    // end past 2^64: ignored
  std::uint64_t truncated = 0;   // contents past the end of the core file
  std::uint64_t truncated_bytes = 0;
  std::uint64_t needed_size = 0;  // the core's size had it not been truncated
};

// The segment a PT_LOAD describes, of which `available` bytes from p_offset on are in the core file; none when its
// range wraps.
std::optional<Segment> load_segment(const Elf64_Phdr& phdr, std::uint64_t available, SegmentDefects& defects) {
  auto end = RemoteAddress(phdr.p_vaddr).checked_add(phdr.p_memsz);
  if (!end || phdr.p_offset + phdr.p_filesz < phdr.p_offset) {
    ++defects.wrapping;
    return std::nullopt;
  }
  Segment segment;
  segment.range = {RemoteAddress(phdr.p_vaddr), *end};
  segment.core_offset = phdr.p_offset;
  segment.dumped_bytes = std::min(phdr.p_filesz, phdr.p_memsz);
  segment.present_bytes = std::min(segment.dumped_bytes, available);
  if (segment.present_bytes < segment.dumped_bytes) {
    ++defects.truncated;
    defects.truncated_bytes += segment.dumped_bytes - segment.present_bytes;
    defects.needed_size = std::max(defects.needed_size, phdr.p_offset + segment.dumped_bytes);
  }
  segment.flags = phdr.p_flags;
  return segment;
}

// Walks the program headers: PT_NOTE segments are parsed into the returned notes, PT_LOAD ones become `segments`.
CoreNotes read_program_headers(std::span<const std::byte> core_bytes, std::span<const std::byte> table,
                               std::vector<Segment>& segments, std::vector<std::string>& warnings) {
  CoreNotes notes;
  SegmentDefects defects;
  ByteReader phdrs(table, "program headers");
  while (!phdrs.at_end()) {
    auto phdr = *phdrs.object<Elf64_Phdr>();  // the table is a whole number of headers
    // A truncated core keeps only the start of what its headers describe.
    std::uint64_t available = phdr.p_offset < core_bytes.size() ? core_bytes.size() - phdr.p_offset : 0;
    if (phdr.p_type == PT_NOTE) {
      if (phdr.p_filesz > available)
        warnings.push_back("PT_NOTE at core offset " + hex(phdr.p_offset) + " (" + hex(phdr.p_filesz) +
                           " bytes) runs past the end of the core; only " + hex(available) + " bytes read");
      auto notes_bytes = core_bytes.subspan(core_bytes.size() - available, std::min(available, phdr.p_filesz));
      parse_notes(notes_bytes, phdr.p_offset, notes, warnings);
    } else if (phdr.p_type == PT_LOAD && phdr.p_memsz != 0) {
      if (auto segment = load_segment(phdr, available, defects)) segments.push_back(*segment);
    }
  }
  if (defects.wrapping)
    warnings.push_back(std::to_string(defects.wrapping) + " PT_LOAD segments wrap past 2^64 and were ignored");
  if (defects.truncated)
    warnings.push_back("core is truncated: " + std::to_string(defects.truncated) + " PT_LOAD segments (" +
                       hex(defects.truncated_bytes) + " bytes of memory) lie past its end (file is " +
                       hex(core_bytes.size()) + " bytes, needs " + hex(defects.needed_size) + "); reads there fail");
  if (notes.threads_capped)
    warnings.push_back("more than " + std::to_string(kMaxCoreThreads) + " threads; the rest are ignored (cap)");
  return notes;
}

// Sorts `segments` and adds the file mappings NT_FILE lists with no PT_LOAD (gdb leaves code out entirely), so
// that they still name their memory. Sorts `files` by start on the way.
void arrange_segments(std::vector<Segment>& segments, std::vector<FileEntry>& files,
                      std::vector<std::string>& warnings) {
  // Segments sorted and disjoint, so a read finds its segment by binary search; overlaps are hostile or broken.
  auto by_start = [](const Segment& a, const Segment& b) { return a.range.start < b.range.start; };
  std::stable_sort(segments.begin(), segments.end(), by_start);
  if (std::uint64_t overlapping = drop_overlapping(segments))
    warnings.push_back(std::to_string(overlapping) + " PT_LOAD segments overlap earlier ones and were ignored");

  std::sort(files.begin(), files.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.range.start < b.range.start; });
  std::vector<Segment> file_only;
  for (const FileEntry& file : files) {
    // The last PT_LOAD starting before the entry's end is the only one that can overlap it (they are disjoint).
    auto after = std::lower_bound(segments.begin(), segments.end(), file.range.end,
                                  [](const Segment& s, RemoteAddress end) { return s.range.start < end; });
    if (after != segments.begin() && (after - 1)->range.end > file.range.start) continue;
    Segment segment;
    segment.range = file.range;
    segment.flags = PF_R;
    file_only.push_back(segment);
  }
  if (file_only.empty()) return;
  segments.insert(segments.end(), file_only.begin(), file_only.end());
  std::stable_sort(segments.begin(), segments.end(), by_start);
  if (std::uint64_t overlapping = drop_overlapping(segments))  // NT_FILE entries overlapping each other
    warnings.push_back(std::to_string(overlapping) + " NT_FILE entries overlap others and were ignored");
}

// The executable the core names: the file mapped at the entry point (or at the program headers), else AT_EXECFN.
struct RecordedExe {
  const FileEntry* file = nullptr;     // its NT_FILE entry, if one holds AT_ENTRY or AT_PHDR
  std::optional<std::uint64_t> entry;  // AT_ENTRY
  std::string path;                    // as recorded; empty: the core does not say
};

RecordedExe find_recorded_exe(const CoreNotes& notes, const CoreMemory& memory) {
  RecordedExe exe;
  exe.entry = auxv_value(notes, AT_ENTRY);
  if (exe.entry) exe.file = file_containing(notes.files, *exe.entry);
  if (!exe.file)
    if (auto phdr_address = auxv_value(notes, AT_PHDR)) exe.file = file_containing(notes.files, *phdr_address);
  if (exe.file) {
    exe.path = exe.file->path;
  } else if (auto execfn = auxv_value(notes, AT_EXECFN)) {
    for (std::uint64_t i = 0; i < kMaxExecfnBytes; ++i) {
      auto c = memory.read_object<char>(RemoteAddress(*execfn) + i);
      if (!c || *c == '\0') break;
      exe.path.push_back(*c);
    }
  }
  return exe;
}

// Gives each segment its mapping in `snapshot`, and attaches it to the file NT_FILE names for it (a BackingFile of
// `memory`), so omitted bytes come from that file.
void attach_backing_files(CoreMemory& memory, const CoreNotes& notes, const CoreFile& core, Snapshot& snapshot) {
  std::map<std::string, int> file_index;
  for (Segment& segment : memory.segments()) {
    const FileEntry* file = file_containing(notes.files, segment.range.start.value());
    Mapping mapping;
    mapping.range = segment.range;
    mapping.readable = segment.flags & PF_R;
    mapping.writable = segment.flags & PF_W;
    mapping.executable = segment.flags & PF_X;
    if (file) {
      mapping.path = file->path;
      mapping.file_offset = file->file_offset + (segment.range.start - file->range.start);
      auto [it, inserted] = file_index.try_emplace(file->path, static_cast<int>(memory.backing_files().size()));
      if (inserted) {
        if (memory.backing_files().size() < kMaxCoreBackingFiles) {
          memory.backing_files().push_back({file->path, core.disk_path(file->path), std::nullopt, std::nullopt});
        } else {
          it->second = -1;
        }
      }
      segment.backing = it->second;
      segment.backing_offset = mapping.file_offset;
      segment.backing_range = {segment.range.start, std::min(segment.range.end, file->range.end)};
    }
    snapshot.mappings.push_back(std::move(mapping));
  }
  if (file_index.size() > kMaxCoreBackingFiles)
    snapshot.warnings.push_back(std::to_string(file_index.size()) + " mapped files; memory omitted from the core " +
                                "is read from the first " + std::to_string(kMaxCoreBackingFiles) + " only (cap)");
  if (auto vdso = auxv_value(notes, AT_SYSINFO_EHDR))
    for (Mapping& mapping : snapshot.mappings)
      if (mapping.range.start.value() == *vdso && mapping.path.empty()) mapping.path = "[vdso]";
}

// The file offset of `image`'s entry point, if a PT_LOAD holds it.
std::optional<std::uint64_t> entry_file_offset(const ElfIdentity& image) {
  for (const Elf64_Phdr& load : image.loads)
    if (image.entry >= load.p_vaddr && image.entry - load.p_vaddr < load.p_filesz)
      return load.p_offset + (image.entry - load.p_vaddr);
  return std::nullopt;
}

// A refusal, and the warning that says it.
struct Refused {
  FileRefusal refusal;
  std::string warning;
};

// Checks the file on disk that the core relies on for memory it omits against what the core recorded: the
// build-id in the file's first page (`recorded`, if the core holds that page), else, for the executable, where its
// entry point lies. A different file at the same path (an upgraded library) would give wrong code.
std::optional<Refused> check_backing_file(const BackingFile& file, const std::optional<ElfIdentity>& recorded,
                                          const RecordedExe& exe, const CoreOptions& options) {
  struct stat info {};
  if (::stat(file.disk_path.c_str(), &info) != 0)
    return Refused{{FileRefusalKind::missing, "is not on disk"},
                   file.disk_path + ": not found; memory of it the core omits (its code) is unreadable" +
                       (options.sysroot.empty() ? std::string(" (try --sysroot)") : std::string())};
  auto disk = read_disk_identity(file.disk_path);
  // A mapped data file (locale archive, cache, font) is not code: the core omitting its pages costs no stack, so it
  // is refused quietly rather than warned about (the warning would make a complete core "partial").
  if (!disk && !has_elf_magic(file.disk_path)) return Refused{{FileRefusalKind::unreadable, "is not an ELF file"}, {}};
  if (!disk) {
    std::string reason = "is not a readable ELF file (" + disk.error().message + ")";
    return Refused{{FileRefusalKind::unreadable, reason},
                   file.disk_path + ": " + reason + "; memory of it the core omits is unreadable"};
  }
  if (recorded && recorded->build_id) {
    if (recorded->build_id == disk->build_id) return std::nullopt;
    return Refused{{FileRefusalKind::build_id_mismatch,
                    "has build-id " + disk->build_id.value_or("(none)") + " but the core's has " + *recorded->build_id},
                   file.disk_path + ": build-id " + disk->build_id.value_or("(none)") + " differs from the core's " +
                       *recorded->build_id + "; refusing to read the memory the core omits from it"};
  }
  // Without a recorded build-id, the executable can still be checked: its entry point must land where the core
  // says it did (AT_ENTRY), at the same file offset.
  if (!exe.file || file.recorded_path != exe.file->path || !exe.entry) return std::nullopt;
  std::uint64_t core_entry_offset = exe.file->file_offset + (*exe.entry - exe.file->range.start.value());
  if (entry_file_offset(*disk) == core_entry_offset) return std::nullopt;
  return Refused{{FileRefusalKind::entry_point_mismatch, "has a different entry point than the core's executable"},
                 file.disk_path + ": entry point does not match the core's (AT_ENTRY " + hex(*exe.entry) +
                     "); refusing to read the memory the core omits from it"};
}

// Checks every backing file the core relies on (it omitted some of its memory), refusing those that do not match.
void check_backing_files(CoreMemory& memory, const RecordedExe& exe, const CoreOptions& options,
                         std::vector<std::string>& warnings) {
  std::vector<BackingFile>& files = memory.backing_files();
  std::vector<bool> omitted(files.size(), false);
  std::vector<const Segment*> header_segment(files.size(), nullptr);
  for (const Segment& segment : memory.segments()) {
    if (segment.backing < 0) continue;
    auto index = static_cast<std::size_t>(segment.backing);
    if (segment.dumped_bytes < segment.range.size_bytes()) omitted[index] = true;
    if (segment.backing_offset == 0 && !header_segment[index]) header_segment[index] = &segment;
  }
  for (std::size_t index = 0; index < files.size(); ++index) {
    if (!omitted[index]) continue;
    // The file's first page as the core holds it (never read from the file itself), for the build-id.
    std::optional<ElfIdentity> recorded;
    if (header_segment[index]) {
      RemoteAddress base = header_segment[index]->range.start;
      auto in_core = read_elf_identity([&](std::uint64_t offset, std::span<std::byte> out) -> Result<void> {
        auto address = base.checked_add(offset);
        if (!address) return fail("offset wraps");
        return memory.read_core_only(*address, out);
      });
      if (in_core) recorded = std::move(*in_core);
    }
    if (auto refused = check_backing_file(files[index], recorded, exe, options)) {
      files[index].refusal = std::move(refused->refusal);
      if (!refused->warning.empty()) warnings.push_back(std::move(refused->warning));
    }
  }
}

// Moves the threads of `notes` into `snapshot`: the one NT_SIGINFO belongs to (the thread that crashed) first, with
// its signal and fault address.
void add_threads(CoreNotes& notes, Snapshot& snapshot) {
  // Kernels stamp every thread's pr_cursig with that signal; only the crashed thread keeps it.
  auto crashed = std::find_if(notes.threads.begin(), notes.threads.end(), [](auto& t) { return t.has_siginfo; });
  if (crashed != notes.threads.end()) {
    std::rotate(notes.threads.begin(), crashed, crashed + 1);
    for (auto it = notes.threads.begin() + 1; it != notes.threads.end(); ++it)
      if (!it->has_siginfo) it->state.signal = 0;
  }
  if (notes.process) snapshot.pid = notes.process->pr_pid;
  // Cores record no per-thread name (pr_fname is the process's): threads stay unnamed rather than all named after
  // the process, which would be wrong for every thread that set its own name.
  for (CoreThread& thread : notes.threads) snapshot.threads.push_back(std::move(thread.state));
  if (snapshot.pid == 0 && !snapshot.threads.empty()) snapshot.pid = snapshot.threads.front().tid;
  if (snapshot.threads.empty()) snapshot.warnings.push_back("the core holds no thread (no readable NT_PRSTATUS note)");
}

// The backing files as CoreFile lists them: sorted by recorded path, for CoreFile::file.
std::vector<CoreBackingFile> listed_files(const std::vector<BackingFile>& files) {
  std::vector<CoreBackingFile> listed;
  listed.reserve(files.size());
  for (const BackingFile& file : files) listed.push_back({file.recorded_path, file.disk_path, file.refusal});
  std::sort(listed.begin(), listed.end(),
            [](const CoreBackingFile& a, const CoreBackingFile& b) { return a.recorded_path < b.recorded_path; });
  return listed;
}

}  // namespace

const CoreBackingFile* CoreFile::file(const std::string& recorded_path) const {
  auto found = std::lower_bound(files.begin(), files.end(), recorded_path,
                                [](const CoreBackingFile& file, const std::string& path) {
                                  return file.recorded_path < path;
                                });
  return found != files.end() && found->recorded_path == recorded_path ? &*found : nullptr;
}

std::string CoreFile::disk_path(const std::string& recorded_path) const {
  if (!options.exe_path.empty() && !recorded_exe_path.empty() && recorded_path == recorded_exe_path)
    return options.exe_path;
  if (options.sysroot.empty() || recorded_path.empty() || recorded_path[0] != '/') return recorded_path;
  return options.sysroot + recorded_path;
}

Result<CoreFile> open_core_file(const std::string& core_path, const CoreOptions& options) {
  FS_TRY(mapped, with_context(MappedFile::open(core_path), "opening core"));
  FS_TRY(table, core_program_headers(mapped->bytes(), core_path));
  CoreFile core;
  core.options = options;
  Snapshot& snapshot = core.snapshot;
  auto memory = std::make_unique<CoreMemory>(core_path, std::move(*mapped));
  // `table` still points into the same mapping, now owned by `memory`.
  CoreNotes notes = read_program_headers(memory->core_bytes(), *table, memory->segments(), snapshot.warnings);
  arrange_segments(memory->segments(), notes.files, snapshot.warnings);

  RecordedExe exe = find_recorded_exe(notes, *memory);
  core.recorded_exe_path = exe.path;
  snapshot.exe_path = exe.path.empty() ? options.exe_path : core.disk_path(exe.path);
  if (snapshot.exe_path.empty())
    snapshot.warnings.push_back("the core does not say which executable it ran; pass --exe");

  attach_backing_files(*memory, notes, core, snapshot);
  check_backing_files(*memory, exe, options, snapshot.warnings);
  core.files = listed_files(memory->backing_files());
  add_threads(notes, snapshot);

  snapshot.memory = std::move(memory);
  snapshot.target_was_stopped = true;
  snapshot.pause_ms.reset();
  snapshot.target_clock_ns = 0;
  return core;
}

Result<Snapshot> open_core(const std::string& core_path, const CoreOptions& options) {
  FS_TRY(core, open_core_file(core_path, options));
  return std::move(core->snapshot);
}

}  // namespace fiberscope::target
