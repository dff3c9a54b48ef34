#include "target/proc_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>

namespace fiberscope::target {

namespace {

// /proc/PID/maps of a process with 100k fiber stacks is ~20 MB; anything far beyond is not a real map.
constexpr std::uint64_t kMaxMapsBytes = 512u << 20;
constexpr std::size_t kMaxMapsWarnings = 32;
constexpr std::size_t kMaxThreads = 1u << 20;
constexpr std::uint64_t kMaxSmallFileBytes = 64u << 10;

std::string proc_path(int pid) { return "/proc/" + std::to_string(pid); }
std::string task_path(int pid, int tid) { return proc_path(pid) + "/task/" + std::to_string(tid); }

ErrorCode code_for_errno(int error) {
  if (error == ENOENT || error == ESRCH) return ErrorCode::no_such_process;
  if (error == EACCES || error == EPERM) return ErrorCode::permission_denied;
  return ErrorCode::unspecified;
}

// Parses a hexadecimal number that fills `token` exactly.
std::optional<std::uint64_t> parse_hex(std::string_view token) {
  if (token.empty() || token.size() > 16) return std::nullopt;
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value, 16);
  if (error != std::errc() || end != token.data() + token.size()) return std::nullopt;
  return value;
}

// Splits off the next space-delimited token of `rest`.
std::string_view next_token(std::string_view& rest) {
  std::size_t begin = rest.find_first_not_of(' ');
  if (begin == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(begin);
  std::size_t end = std::min(rest.find(' '), rest.size());
  std::string_view token = rest.substr(0, end);
  rest.remove_prefix(end);
  return token;
}

// Parses one maps line, or says what is wrong with it.
Result<Mapping> parse_maps_line(std::string_view line) {
  std::string_view rest = line;
  std::string_view range = next_token(rest);
  std::string_view perms = next_token(rest);
  std::string_view offset = next_token(rest);
  std::string_view device = next_token(rest);
  std::string_view inode = next_token(rest);
  if (inode.empty()) return fail("too few fields");

  std::size_t dash = range.find('-');
  if (dash == std::string_view::npos) return fail("bad address range");
  auto start = parse_hex(range.substr(0, dash));
  auto end = parse_hex(range.substr(dash + 1));
  if (!start || !end) return fail("bad address range");
  if (*end <= *start) return fail("empty or reversed address range");
  if (perms.size() != 4) return fail("bad permissions");
  auto file_offset = parse_hex(offset);
  if (!file_offset) return fail("bad file offset");
  if (device.find(':') == std::string_view::npos) return fail("bad device");
  if (!std::all_of(inode.begin(), inode.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("bad inode");

  Mapping mapping;
  mapping.range = {RemoteAddress(*start), RemoteAddress(*end)};
  mapping.file_offset = *file_offset;
  mapping.readable = perms[0] == 'r';
  mapping.writable = perms[1] == 'w';
  mapping.executable = perms[2] == 'x';
  // The kernel pads before the path; the path itself may contain spaces, so it is everything after the padding.
  std::size_t path_begin = rest.find_first_not_of(' ');
  if (path_begin != std::string_view::npos) {
    std::string_view path = rest.substr(path_begin);
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.size() > kDeleted.size() && path.ends_with(kDeleted)) {
      path.remove_suffix(kDeleted.size());
      mapping.deleted = true;
    }
    mapping.path = std::string(path);
  }
  return mapping;
}

}  // namespace

Result<std::string> read_proc_file(const std::string& path, std::uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    return fail_code(code_for_errno(error), "cannot open ", path, ": ", std::strerror(error));
  }
  std::string text;
  char buffer[64 * 1024];
  for (;;) {
    ssize_t count = ::read(fd, buffer, sizeof buffer);
    if (count < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      return fail_code(code_for_errno(error), "cannot read ", path, ": ", std::strerror(error));
    }
    if (count == 0) break;
    if (text.size() + static_cast<std::uint64_t>(count) > max_bytes) {
      ::close(fd);
      return fail(path, " is longer than ", hex(max_bytes), " bytes");
    }
    text.append(buffer, static_cast<std::size_t>(count));
  }
  ::close(fd);
  return text;
}

std::vector<Mapping> parse_maps(std::string_view text, std::vector<std::string>* warnings) {
  std::vector<Mapping> mappings;
  // One mapping per line: a process with 100k fiber stacks has 200k of them, worth not regrowing.
  mappings.reserve(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  std::size_t line_number = 0;
  std::size_t skipped = 0;
  while (!text.empty()) {
    std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    if (line.empty()) continue;
    auto mapping = parse_maps_line(line);
    if (!mapping) {
      if (warnings && skipped < kMaxMapsWarnings)
        warnings->push_back("maps line " + std::to_string(line_number) + ": " + mapping.error().message +
                            ", line skipped");
      ++skipped;
      continue;
    }
    mappings.push_back(std::move(*mapping));
  }
  if (warnings && skipped > kMaxMapsWarnings)
    warnings->push_back("maps: " + std::to_string(skipped - kMaxMapsWarnings) + " more malformed lines skipped");
  // The kernel lists mappings in address order; hostile or corrupt text may not, and callers binary-search.
  if (!std::is_sorted(mappings.begin(), mappings.end(),
                      [](const Mapping& a, const Mapping& b) { return a.range.start < b.range.start; }))
    std::stable_sort(mappings.begin(), mappings.end(),
                     [](const Mapping& a, const Mapping& b) { return a.range.start < b.range.start; });
  return mappings;
}

Result<std::vector<Mapping>> read_maps(int pid, std::vector<std::string>* warnings) {
  FS_TRY(text, read_proc_file(proc_path(pid) + "/maps", kMaxMapsBytes));
  std::vector<Mapping> mappings = parse_maps(*text, warnings);
  // A server upgraded in place runs a binary whose path now holds another build: its code is read through the
  // kernel's link to the inode it mapped.
  for (Mapping& mapping : mappings) {
    if (!mapping.deleted || mapping.path.empty() || mapping.path.front() != '/') continue;
    char range[48];
    std::snprintf(range, sizeof range, "%llx-%llx", static_cast<unsigned long long>(mapping.range.start.value()),
                  static_cast<unsigned long long>(mapping.range.end.value()));
    mapping.open_path = proc_path(pid) + "/map_files/" + range;
  }
  return mappings;
}

Result<std::vector<int>> list_threads(int pid) {
  std::string path = proc_path(pid) + "/task";
  std::unique_ptr<DIR, int (*)(DIR*)> directory(::opendir(path.c_str()), ::closedir);
  if (!directory) {
    int error = errno;
    return fail_code(code_for_errno(error), "cannot list ", path, ": ", std::strerror(error));
  }
  std::vector<int> tids;
  errno = 0;
  while (const dirent* entry = ::readdir(directory.get())) {
    int tid = 0;
    std::string_view name(entry->d_name);
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (error != std::errc() || end != name.data() + name.size() || tid <= 0) continue;  // "." and ".."
    if (tids.size() >= kMaxThreads) return fail(path, " lists more than ", std::to_string(kMaxThreads), " threads");
    tids.push_back(tid);
  }
  if (errno != 0) {
    int error = errno;
    return fail_code(code_for_errno(error), "cannot list ", path, ": ", std::strerror(error));
  }
  std::sort(tids.begin(), tids.end());
  return tids;
}

Result<std::string> thread_name(int pid, int tid) {
  FS_TRY(text, read_proc_file(task_path(pid, tid) + "/comm", kMaxSmallFileBytes));
  if (!text->empty() && text->back() == '\n') text->pop_back();
  return std::move(*text);
}

Result<std::string> exe_path(int pid) {
  std::string link = proc_path(pid) + "/exe";
  char buffer[4096];
  ssize_t length = ::readlink(link.c_str(), buffer, sizeof buffer);
  if (length < 0) {
    int error = errno;
    return fail_code(code_for_errno(error), "cannot read link ", link, ": ", std::strerror(error));
  }
  if (static_cast<std::size_t>(length) == sizeof buffer) return fail(link, " is longer than 4096 bytes");
  std::string_view path(buffer, static_cast<std::size_t>(length));
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() && path.ends_with(kDeleted)) path.remove_suffix(kDeleted.size());
  return std::string(path);
}

Result<ProcessStatus> read_status(int pid) {
  std::string path = proc_path(pid) + "/status";
  FS_TRY(text, read_proc_file(path, kMaxSmallFileBytes));
  ProcessStatus status;
  std::string_view rest = *text;
  bool saw_state = false;
  while (!rest.empty()) {
    std::size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    std::size_t begin = value.find_first_not_of(" \t");
    value = begin == std::string_view::npos ? std::string_view() : value.substr(begin);
    auto number = [&value](auto& out) {
      std::from_chars(value.data(), value.data() + value.size(), out);
    };
    if (key == "Name") {
      status.name = std::string(value);
    } else if (key == "State" && !value.empty()) {
      status.state = value[0];
      saw_state = true;
    } else if (key == "TracerPid") {
      number(status.tracer_pid);
    } else if (key == "PPid") {
      number(status.parent_pid);
    } else if (key == "Uid") {
      // "Uid: real effective saved filesystem", tab separated.
      std::string_view fields = value;
      std::size_t tab = fields.find_first_of(" \t");
      std::from_chars(fields.data(), fields.data() + std::min(tab, fields.size()), status.real_uid);
      if (tab != std::string_view::npos) {
        fields.remove_prefix(tab);
        std::size_t next = fields.find_first_not_of(" \t");
        if (next != std::string_view::npos)
          std::from_chars(fields.data() + next, fields.data() + fields.size(), status.effective_uid);
      }
    }
  }
  if (!saw_state) return fail(path, " has no State line");
  return status;
}

Result<char> thread_state(int pid, int tid) {
  std::string path = task_path(pid, tid) + "/stat";
  FS_TRY(text, read_proc_file(path, kMaxSmallFileBytes));
  // "tid (comm) S ...": comm is chosen by the thread and may contain ") ", so take the last one.
  std::size_t close = text->rfind(") ");
  if (close == std::string::npos || close + 2 >= text->size()) return fail(path, ": no state field");
  return (*text)[close + 2];
}

Result<SyscallState> parse_syscall(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  SyscallState state;
  if (text == "running") {
    state.running = true;
    return state;
  }
  // "NR arg1 .. arg6 sp pc" for a thread in a system call, "-1 sp pc" for one blocked outside any (all hex but NR).
  std::vector<std::string_view> fields;
  std::string_view rest = text;
  while (fields.size() < 9) {
    std::string_view token = next_token(rest);
    if (token.empty()) break;
    fields.push_back(token);
  }
  if (!next_token(rest).empty()) return fail("syscall file: too many fields in \"", text, "\"");
  if (fields.size() != 9 && fields.size() != 3) return fail("syscall file: unexpected \"", text, "\"");
  long number = 0;
  auto [end, error] = std::from_chars(fields[0].data(), fields[0].data() + fields[0].size(), number);
  if (error != std::errc() || end != fields[0].data() + fields[0].size())
    return fail("syscall file: bad syscall number in \"", text, "\"");
  auto strip_0x = [](std::string_view token) { return token.starts_with("0x") ? token.substr(2) : token; };
  auto sp = parse_hex(strip_0x(fields[fields.size() - 2]));
  auto pc = parse_hex(strip_0x(fields[fields.size() - 1]));
  if (!sp || !pc) return fail("syscall file: bad sp or pc in \"", text, "\"");
  if (fields.size() == 9) {
    if (number < 0) return fail("syscall file: negative syscall number with arguments in \"", text, "\"");
    state.syscall_number = number;
  } else if (number != -1) {
    return fail("syscall file: unexpected \"", text, "\"");
  }
  state.stack_pointer = *sp;
  state.program_counter = *pc;
  return state;
}

Result<SyscallState> read_syscall(int pid, int tid) {
  std::string path = task_path(pid, tid) + "/syscall";
  FS_TRY(text, read_proc_file(path, kMaxSmallFileBytes));
  return with_context(parse_syscall(*text), path);
}

}  // namespace fiberscope::target
