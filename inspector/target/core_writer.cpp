#include "target/core_writer.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/procfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <span>

#include "base/hex.h"
#include "target/registers.h"
#include "target/stop_session.h"

namespace fiberscope::target {

namespace {

constexpr std::uint64_t kPageBytes = 4096;

std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// The page of `bytes` starting at `offset` (shorter at the end).
std::span<const std::byte> page_at(std::span<const std::byte> bytes, std::uint64_t offset) {
  return bytes.subspan(offset, std::min<std::uint64_t>(kPageBytes, bytes.size() - offset));
}

bool all_zero(std::span<const std::byte> bytes) {
  // Zero first byte, and every byte equal to the one before it: memcmp is vectorised, a byte loop is not.
  return bytes.empty() ||
         (bytes[0] == std::byte{0} && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}

// Appends one note in the core's layout: name and descriptor each padded to 4 bytes (as the kernel writes them,
// not to 8 as the ELF64 gABI would suggest; every reader of Linux cores expects 4).
void append_note(std::vector<std::byte>& out, std::string_view name, std::uint32_t type,
                 std::span<const std::byte> desc) {
  Elf64_Nhdr header{static_cast<Elf64_Word>(name.size() + 1), static_cast<Elf64_Word>(desc.size()), type};
  auto append = [&](const void* data, std::size_t size) {
    auto bytes = static_cast<const std::byte*>(data);
    out.insert(out.end(), bytes, bytes + size);
  };
  append(&header, sizeof header);
  append(name.data(), name.size());
  out.resize(round_up(out.size() + 1, 4));  // the NUL and the padding
  append(desc.data(), desc.size());
  out.resize(round_up(out.size(), 4));
}

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span<const T, 1>(&value, 1));
}

void append_prstatus(std::vector<std::byte>& out, int tid, int signal, const Registers& registers) {
  elf_prstatus status;
  std::memset(&status, 0, sizeof status);
  status.pr_pid = tid;
  status.pr_cursig = static_cast<short>(signal);
  status.pr_info.si_signo = signal;
  std::array<std::uint64_t, kUserRegsWords> words;
  registers_to_user_regs(registers, words);
  static_assert(sizeof status.pr_reg == sizeof words);
  std::memcpy(&status.pr_reg, words.data(), sizeof words);
  append_note(out, "CORE", NT_PRSTATUS, bytes_of(status));
}

bool is_file_backed(const Mapping& mapping) { return !mapping.path.empty() && mapping.path.front() == '/'; }

// How many bytes of `mapping` the core holds (see the policy in core_writer.h). `module_paths` are the files
// mapped executable somewhere: loaded ELF objects, as opposed to data files mapped read-only.
std::uint64_t bytes_to_write(const Mapping& mapping, const std::set<std::string>& module_paths,
                             const CoreWriteOptions& options) {
  if (!mapping.readable) return 0;
  // [vvar] is kernel data that some kernels refuse to let another process read; [vsyscall] is execute-only.
  if (mapping.path == "[vvar]" || mapping.path == "[vsyscall]") return 0;
  if (!is_file_backed(mapping) || mapping.writable || options.write_read_only_files) return mapping.range.size_bytes();
  if (mapping.executable)  // code: identical to the file, except that its first page may hold the ELF header
    return mapping.file_offset == 0 ? std::min(kPageBytes, mapping.range.size_bytes()) : 0;
  // A module's read-only data includes RELRO, which the dynamic loader wrote before sealing it (.dynamic's
  // DT_DEBUG, through which gdb finds the shared libraries; the GOT): it differs from the file.
  return module_paths.contains(mapping.path) ? mapping.range.size_bytes() : 0;
}

// pwrite all of `bytes` at `offset`, retrying short writes.
Result<void> write_at(int fd, std::span<const std::byte> bytes, std::uint64_t offset, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t wrote = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0)
      return fail("writing ", path, " at offset ", hex(offset), ": ", wrote < 0 ? std::strerror(errno) : "no progress");
    bytes = bytes.subspan(static_cast<std::size_t>(wrote));
    offset += static_cast<std::uint64_t>(wrote);
  }
  return {};
}

// Deletes the temporary file unless the write succeeded and renamed it.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!kept_) ::unlink(path_.c_str());
    keep_if_interrupted();
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  Result<void> create() {
    fd_ = ::mkstemp(path_.data());  // 0600: a core holds the process's secrets
    if (fd_ < 0) {
      kept_ = true;  // nothing to delete
      return fail("creating ", path_, ": ", std::strerror(errno));
    }
    // A SIGINT/SIGTERM/SIGHUP during the write ends the process from the capture's handler, past this destructor.
    remove_if_interrupted(path_);
    return {};
  }
  Result<void> commit(const std::string& final_path) {
    if (::close(fd_) != 0) return fail("closing ", path_, ": ", std::strerror(errno));
    fd_ = -1;
    if (::rename(path_.c_str(), final_path.c_str()) != 0)
      return fail("renaming ", path_, " to ", final_path, ": ", std::strerror(errno));
    kept_ = true;
    return {};
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool kept_ = false;
};

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Result<CoreWriteSummary> write_core(const Snapshot& snapshot, const Memory& full_memory,
                                    const CoreWriteOptions& options, const std::string& path) {
  CoreWriteSummary summary;
  std::uint64_t chunk_bytes =
      round_up(std::clamp<std::uint64_t>(options.chunk_bytes, kPageBytes, 64u << 20), kPageBytes);

  // Notes. gdb takes the first NT_PRSTATUS as the current thread, so the snapshot's first thread (the crashed or
  // selected one) leads, followed by the process-wide notes as the kernel orders them.
  std::vector<std::byte> notes;
  std::vector<const ThreadState*> threads;
  for (const ThreadState& thread : snapshot.threads) {
    if (thread.registers) threads.push_back(&thread);
    else summary.warnings.push_back("thread " + std::to_string(thread.tid) + " has no registers (" + thread.error +
                                    "); left out of the core");
  }
  if (threads.empty() && options.extra_threads.empty()) return fail("writing core ", path, ": no thread has registers");

  std::string name;
  for (const ThreadState& thread : snapshot.threads)
    if (thread.tid == snapshot.pid) name = thread.name;
  if (name.empty()) name = base_name(snapshot.exe_path);
  elf_prpsinfo process;
  std::memset(&process, 0, sizeof process);
  process.pr_sname = 'R';
  process.pr_pid = snapshot.pid;
  std::strncpy(process.pr_fname, name.c_str(), sizeof process.pr_fname - 1);
  const std::string& arguments = options.command_line.empty() ? name : options.command_line;
  std::strncpy(process.pr_psargs, arguments.c_str(), sizeof process.pr_psargs - 1);

  // NT_FILE (fs/binfmt_elf.c fill_files_note): count, page size, {start, end, offset in pages}, then the names.
  std::vector<std::uint64_t> file_words{0, kPageBytes};
  std::string file_names;
  for (const Mapping& mapping : snapshot.mappings) {
    if (!is_file_backed(mapping)) continue;
    ++file_words[0];
    file_words.insert(file_words.end(), {mapping.range.start.value(), mapping.range.end.value(),
                                         mapping.file_offset / kPageBytes});
    file_names += mapping.path;
    file_names.push_back('\0');
  }
  std::vector<std::byte> file_note(file_words.size() * 8 + file_names.size());
  std::memcpy(file_note.data(), file_words.data(), file_words.size() * 8);
  std::memcpy(file_note.data() + file_words.size() * 8, file_names.data(), file_names.size());

  bool first = true;
  for (const ThreadState* thread : threads) {
    append_prstatus(notes, thread->tid, thread->signal, *thread->registers);
    if (!first) continue;
    first = false;
    append_note(notes, "CORE", NT_PRPSINFO, bytes_of(process));
    if (!options.auxv.empty()) append_note(notes, "CORE", NT_AUXV, options.auxv);
    append_note(notes, "CORE", NT_FILE, file_note);
  }
  for (const ExtraThread& extra : options.extra_threads) append_prstatus(notes, extra.tid, 0, extra.registers);
  if (threads.empty()) {
    append_note(notes, "CORE", NT_PRPSINFO, bytes_of(process));
    append_note(notes, "CORE", NT_FILE, file_note);
  }

  // Layout: ELF header, program headers (PT_NOTE first), notes, then each segment's contents page-aligned.
  std::uint64_t segment_count = 1 + snapshot.mappings.size();
  bool extended_numbering = segment_count >= PN_XNUM;  // the real count then lives in section header 0
  std::vector<Elf64_Phdr> phdrs(segment_count);
  std::uint64_t offset = sizeof(Elf64_Ehdr) + segment_count * sizeof(Elf64_Phdr);
  Elf64_Shdr section0{};
  std::uint64_t section_offset = 0;
  if (extended_numbering) {
    section_offset = offset;
    offset += sizeof(Elf64_Shdr);
    section0.sh_info = static_cast<Elf64_Word>(segment_count);
  }
  phdrs[0] = {PT_NOTE, 0, offset, 0, 0, notes.size(), 0, 4};
  offset = round_up(offset + notes.size(), kPageBytes);

  TempFile temp(path + ".tmp.XXXXXX");
  FS_TRY_DISCARD(temp.create());
  FS_TRY_DISCARD(write_at(temp.fd(), notes, phdrs[0].p_offset, temp.path()));

  std::set<std::string> module_paths;
  for (const Mapping& mapping : snapshot.mappings)
    if (is_file_backed(mapping) && mapping.executable) module_paths.insert(mapping.path);
  std::vector<std::byte> chunk(chunk_bytes);
  for (std::size_t i = 0; i < snapshot.mappings.size(); ++i) {
    const Mapping& mapping = snapshot.mappings[i];
    std::uint64_t contents = bytes_to_write(mapping, module_paths, options);
    if (contents > options.max_memory_bytes - summary.memory_bytes) {
      summary.warnings.push_back("mapping " + mapping.range.start.to_string() + " of " + hex(contents) +
                                 " bytes left out: the core would exceed max_memory_bytes (" +
                                 hex(options.max_memory_bytes) + ")");
      contents = 0;
    }
    Elf64_Phdr& phdr = phdrs[i + 1];
    phdr.p_type = PT_LOAD;
    phdr.p_flags = (mapping.readable ? PF_R : 0) | (mapping.writable ? PF_W : 0) | (mapping.executable ? PF_X : 0);
    phdr.p_offset = offset;
    phdr.p_vaddr = mapping.range.start.value();
    phdr.p_memsz = mapping.range.size_bytes();
    phdr.p_filesz = contents;
    phdr.p_align = kPageBytes;
    std::uint64_t unreadable_here = 0;
    for (std::uint64_t done = 0; done < contents; done += chunk_bytes) {
      auto piece = std::span(chunk).first(std::min(chunk_bytes, contents - done));
      RemoteAddress at = mapping.range.start + done;
      if (!full_memory.read(at, piece)) {
        // Part of the chunk is unreadable (a page the kernel refuses, e.g. of a device mapping): page by page,
        // zeros for the pages that fail, as the kernel writes for pages it cannot dump.
        for (std::uint64_t page = 0; page < piece.size(); page += kPageBytes) {
          auto page_bytes = piece.subspan(page, std::min<std::uint64_t>(kPageBytes, piece.size() - page));
          if (!full_memory.read(at + page, page_bytes)) {
            std::fill(page_bytes.begin(), page_bytes.end(), std::byte{0});
            unreadable_here += page_bytes.size();
          }
        }
      }
      // Pages of zeros stay holes in the file (they read back as zeros): a fiber stack is mostly untouched pages
      // below a few live ones. Each run of other pages is written at once.
      for (std::uint64_t page = 0; page < piece.size();) {
        if (all_zero(page_at(piece, page))) {
          page += kPageBytes;
          continue;
        }
        std::uint64_t end = page + kPageBytes;
        while (end < piece.size() && !all_zero(page_at(piece, end))) end += kPageBytes;
        end = std::min<std::uint64_t>(end, piece.size());
        FS_TRY_DISCARD(write_at(temp.fd(), piece.subspan(page, end - page), offset + done + page, temp.path()));
        summary.written_bytes += end - page;
        page = end;
      }
    }
    if (unreadable_here)
      summary.warnings.push_back(hex(unreadable_here) + " unreadable bytes of mapping " +
                                 mapping.range.start.to_string() +
                                 (mapping.path.empty() ? "" : " (" + mapping.path + ")") + " written as zeros");
    summary.unreadable_bytes += unreadable_here;
    summary.memory_bytes += contents;
    offset = round_up(offset + contents, kPageBytes);
  }

  Elf64_Ehdr header{};
  std::memcpy(header.e_ident, ELFMAG, SELFMAG);
  header.e_ident[EI_CLASS] = ELFCLASS64;
  header.e_ident[EI_DATA] = ELFDATA2LSB;
  header.e_ident[EI_VERSION] = EV_CURRENT;
  header.e_ident[EI_OSABI] = ELFOSABI_NONE;
  header.e_type = ET_CORE;
  header.e_machine = EM_X86_64;
  header.e_version = EV_CURRENT;
  header.e_phoff = sizeof(Elf64_Ehdr);
  header.e_ehsize = sizeof(Elf64_Ehdr);
  header.e_phentsize = sizeof(Elf64_Phdr);
  header.e_phnum = extended_numbering ? PN_XNUM : static_cast<Elf64_Half>(segment_count);
  if (extended_numbering) {
    header.e_shoff = section_offset;
    header.e_shentsize = sizeof(Elf64_Shdr);
    header.e_shnum = 1;
    FS_TRY_DISCARD(write_at(temp.fd(), bytes_of(section0), section_offset, temp.path()));
  }
  FS_TRY_DISCARD(write_at(temp.fd(), bytes_of(header), 0, temp.path()));
  FS_TRY_DISCARD(write_at(temp.fd(), std::as_bytes(std::span(phdrs)), sizeof header, temp.path()));
  // Trailing holes need the size set explicitly; so does a last segment that was all zeros.
  if (::ftruncate(temp.fd(), static_cast<off_t>(offset)) != 0)
    return fail("setting the size of ", temp.path(), ": ", std::strerror(errno));
  FS_TRY_DISCARD(temp.commit(path));
  summary.file_bytes = offset;
  return summary;
}

}  // namespace fiberscope::target
