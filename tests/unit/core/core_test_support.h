// Helpers of the core file tests: temporary directories, running a crasher until it dumps core, and a child that
// blocks until killed.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "target/core_file.h"
#include "target/proc_files.h"

namespace fiberscope::test {

inline std::string test_program(const std::string& name) { return std::string(FIBERSCOPE_TEST_BIN_DIR) + "/" + name; }

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/fiberscope-core-XXXXXX";
    if (::mkdtemp(name)) path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::vector<std::byte> bytes(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

inline void write_file(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Why kernel cores cannot be collected in a temporary directory here, or nothing if they can.
inline std::optional<std::string> kernel_core_unavailable() {
  std::ifstream in("/proc/sys/kernel/core_pattern");
  std::string pattern;
  std::getline(in, pattern);
  if (pattern.empty()) return "cannot read /proc/sys/kernel/core_pattern";
  if (pattern[0] == '|') return "core_pattern pipes cores to a program (" + pattern + "), not to a file";
  if (pattern.find('/') != std::string::npos) return "core_pattern writes cores elsewhere (" + pattern + ")";
  return std::nullopt;
}

// The lines a child printed on stdout, and how it ended.
struct ChildRun {
  std::vector<std::string> lines;
  int wait_status = 0;

  // The words after the first line starting with `key` ("FAULT 0x4321 TID 7" -> {"0x4321", "TID", "7"}).
  std::vector<std::string> fields(const std::string& key) const {
    for (const std::string& line : lines) {
      std::istringstream words(line);
      std::string first;
      words >> first;
      if (first != key) continue;
      std::vector<std::string> rest;
      for (std::string word; words >> word;) rest.push_back(word);
      return rest;
    }
    return {};
  }
};

// Forks `program args...` with stdout on a pipe; in the child: cwd `dir`, RLIMIT_CORE unlimited.
inline pid_t spawn(const std::string& program, const std::vector<std::string>& args, const std::string& dir,
                   int& stdout_fd) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    ::setrlimit(RLIMIT_CORE, &unlimited);
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  stdout_fd = fds[0];
  return pid;
}

// Reads one line from `fd` (unbuffered, so the rest stays for later), or nothing at EOF.
inline std::optional<std::string> read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1) {
    if (c == '\n') return line;
    line.push_back(c);
  }
  if (line.empty()) return std::nullopt;
  return line;
}

// Runs `program mode` in `dir` to its end (a crash), collecting its output.
inline ChildRun run_to_end(const std::string& program, const std::string& mode, const std::string& dir) {
  ChildRun run;
  int out = -1;
  pid_t pid = spawn(program, {mode}, dir, out);
  if (pid < 0) return run;
  while (auto line = read_line(out)) run.lines.push_back(*line);
  ::close(out);
  ::waitpid(pid, &run.wait_status, 0);
  return run;
}

// The core file a crash left in `dir` (named "core" or "core.<something>"), if any.
inline std::optional<std::string> find_core(const std::string& dir) {
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename().string().rfind("core", 0) == 0) return entry.path().string();
  return std::nullopt;
}

// A kernel core of `crasher_threads MODE`, made in `dir`: the core's path and what the program printed, or the
// reason there is none (to skip with).
struct KernelCore {
  std::string path;
  ChildRun run;
  std::string unavailable;
};
inline KernelCore make_kernel_core(const std::string& mode, const std::string& dir) {
  KernelCore core;
  if (auto why = kernel_core_unavailable()) {
    core.unavailable = *why;
    return core;
  }
  core.run = run_to_end(test_program("crasher_threads"), mode, dir);
  auto found = find_core(dir);
  if (!found) {
    core.unavailable = "the crash left no core in " + dir + " (is RLIMIT_CORE capped by the hard limit?)";
    return core;
  }
  core.path = *found;
  return core;
}

// A child that runs until this object dies (SIGKILL), after printing READY.
class ReadyChild {
 public:
  ReadyChild(const std::string& program, const std::string& mode, const std::string& dir) {
    int out = -1;
    pid_ = spawn(program, {mode}, dir, out);
    if (pid_ < 0) return;
    while (auto line = read_line(out)) {
      run_.lines.push_back(*line);
      if (*line == "READY") break;
    }
    ::close(out);
    // READY is printed before the threads reach pause(): wait until every one blocks there, so a stop sees each
    // thread at its final frame (at most 10 s).
    for (int attempt = 0; attempt < 1000 && !all_threads_paused(); ++attempt) ::usleep(10 * 1000);
  }
  ~ReadyChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ReadyChild(const ReadyChild&) = delete;
  ReadyChild& operator=(const ReadyChild&) = delete;

  pid_t pid() const { return pid_; }
  const ChildRun& output() const { return run_; }
  bool ready() const { return !run_.lines.empty() && run_.lines.back() == "READY" && all_threads_paused(); }

  // True when every thread of the child is blocked in pause(2).
  bool all_threads_paused() const {
    auto tids = target::list_threads(pid_);
    if (!tids || tids->empty()) return false;
    for (int tid : *tids) {
      auto state = target::read_syscall(pid_, tid);
      if (!state || state->syscall_number != SYS_pause) return false;
    }
    return true;
  }

 private:
  pid_t pid_ = -1;
  ChildRun run_;
};

// Runs a shell command, returning its stdout (stderr merged).
inline std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return output;
  char buffer[4096];
  while (std::size_t got = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, got);
  ::pclose(pipe);
  return output;
}

inline std::uint64_t parse_address(const std::string& text) { return std::stoull(text, nullptr, 0); }

// The mapping of `snapshot` containing `address`, if any.
inline const target::Mapping* mapping_containing(const target::Snapshot& snapshot, std::uint64_t address) {
  for (const target::Mapping& mapping : snapshot.mappings)
    if (mapping.range.contains(target::RemoteAddress(address))) return &mapping;
  return nullptr;
}

}  // namespace fiberscope::test
