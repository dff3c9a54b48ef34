// Thread stacks of real Go processes (the suite's go_states and go_cgo, Debian's Go 1.19): captured live, unwound
// with the modules' CFI (Go's .debug_frame, gcc's .eh_frame, the pclntab's frame sizes) and symbolized, then
// compared frame by frame with gdb's backtrace of the same stopped process; and, for the builds without DWARF,
// unwound and named from the pclntab alone.
//
// Where gdb and we differ, on purpose: we end a stack where Go's own traceback does, at a TOPFRAME function
// (runtime.mstart, runtime.goexit, runtime.rt0_go) or at a caller frame in a function that switched stacks
// (runtime.mcall, runtime.asmcgocall, runtime.systemstack: SPWRITE). gdb goes on: below mstart into cgo's
// crosscall_amd64 and the pthread frames, above the stack switches into whatever the old stack holds (garbage
// frames, "?? ()"). So our frames must be exactly gdb's first frames, and our walk must end cleanly at one of those.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "binary/symbolizer.h"
#include "target/core_file.h"
#include "target/live_capture.h"
#include "target/proc_files.h"
#include "unwind/unwinder.h"

using namespace fiberscope;
using namespace fiberscope::unwind;
using target::RemoteAddress;

namespace {

const std::set<std::string> kGoStackEnds = {"runtime.mstart", "runtime.goexit", "runtime.rt0_go",
                                            "runtime.mcall", "runtime.asmcgocall", "runtime.systemstack"};

// A started Go test program, killed and reaped when the test ends.
class GoProgram {
 public:
  // `crash_directory` non-empty: run there with GOTRACEBACK=crash and no core size limit, so that SIGQUIT makes
  // Go's runtime dump every thread and die by SIGABRT, leaving the kernel's core.
  explicit GoProgram(const std::string& name, const std::string& crash_directory = "") {
    const std::string path = std::string(FIBERSCOPE_TEST_BIN_DIR) + "/" + name;
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(pipe_fds[1], STDOUT_FILENO);
      close(pipe_fds[0]);
      close(pipe_fds[1]);
      if (!crash_directory.empty()) {
        const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
        if (chdir(crash_directory.c_str()) != 0 || setrlimit(RLIMIT_CORE, &unlimited) != 0) _exit(126);
        setenv("GOTRACEBACK", "crash", 1);
        const int null_fd = open("/dev/null", O_WRONLY);
        dup2(null_fd, STDERR_FILENO);  // the runtime's own traceback of every goroutine
      }
      execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(pipe_fds[1]);
    output_fd_ = pipe_fds[0];
  }
  ~GoProgram() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(output_fd_);
  }
  // Sends `signal` and reaps the program; its wait status.
  int kill_and_wait(int signal) {
    kill(pid_, signal);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  GoProgram(const GoProgram&) = delete;
  GoProgram& operator=(const GoProgram&) = delete;

  bool wait_ready(int timeout_ms) {
    std::string output;
    pollfd fd{output_fd_, POLLIN, 0};
    while (output.find("READY") == std::string::npos) {
      if (poll(&fd, 1, timeout_ms) <= 0) return false;
      char buffer[256];
      const ssize_t n = read(output_fd_, buffer, sizeof buffer);
      if (n <= 0) return false;
      output.append(buffer, static_cast<std::size_t>(n));
    }
    return true;
  }
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  int output_fd_ = -1;
};

struct SymbolizedThread {
  std::vector<std::string> names;        // innermost first, inlined frames included
  std::vector<std::string> locations;    // "file:line" per name ("" without a line)
  std::vector<binary::SymbolizedFrame::Source> sources;
  UnwindResult unwind;
};

// Every thread of `snapshot`, unwound and symbolized as `fiberscope dump` does (its stack: the sp's mapping).
std::map<int, SymbolizedThread> thread_stacks(const target::Snapshot* snapshot) {
  binary::Symbolizer symbols(snapshot->mappings);
  ModuleCfiSet cfi;
  for (const binary::Module& module : symbols.modules()) {
    if (module.image && !module.range.empty())
      REQUIRE(cfi.add(ModuleCfi::from_image(*module.image, module.load_bias, module.range)));
  }
  Unwinder unwinder(cfi);
  std::map<int, SymbolizedThread> stacks;
  for (const auto& thread : snapshot->threads) {
    REQUIRE(thread.registers);
    std::vector<StackRegion> regions;
    for (const auto& mapping : snapshot->mappings)
      if (mapping.range.contains(RemoteAddress(thread.registers->sp())))
        regions.push_back({mapping.range, StackKind::system, static_cast<std::uint64_t>(thread.tid)});
    SymbolizedThread& out = stacks[thread.tid];
    out.unwind = unwinder.unwind(*thread.registers, *snapshot->memory, UnwindOptions{.stacks = regions});
    for (const Frame& frame : out.unwind.frames) {
      for (const auto& symbolized : symbols.symbolize(frame.lookup_pc().value()).frames) {
        out.names.push_back(symbolized.function.empty() ? "??" : symbolized.function);
        out.locations.push_back(symbolized.line ? symbolized.file + ":" + std::to_string(symbolized.line) : "");
        out.sources.push_back(symbolized.source);
      }
    }
  }
  return stacks;
}

// Every thread of the live process `pid`.
std::map<int, SymbolizedThread> our_thread_stacks(int pid) {
  auto maps = target::read_maps(pid);
  REQUIRE(maps);
  auto snapshot = target::capture_live(pid, {}, [&](const target::Memory&, const auto& threads) {
    std::vector<target::AddressRange> ranges;
    for (const auto& thread : threads) {
      if (!thread.registers) continue;
      const RemoteAddress sp(thread.registers->sp());
      for (const auto& mapping : *maps)
        if (mapping.range.contains(sp)) ranges.push_back({sp - 256, mapping.range.end});
    }
    return ranges;
  });
  INFO((snapshot ? "" : snapshot.error().message));
  REQUIRE(snapshot);
  return thread_stacks(&*snapshot);
}

// gdb's `thread apply all bt`, as function names per LWP (inlined frames are frames there too). gdb knows Go's
// main.main as the program's main and would stop there (runtime.main and goexit are below it): past-main on.
std::map<int, std::vector<std::string>> gdb_backtraces(int pid) {
  const std::string command = "gdb -nx -batch -p " + std::to_string(pid) +
                              " -ex 'set debuginfod enabled off' -ex 'set backtrace past-main on'"
                              " -ex 'thread apply all bt' 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  REQUIRE(pipe);
  std::map<int, std::vector<std::string>> traces;
  int current = -1;
  char buffer[8192];
  while (fgets(buffer, sizeof buffer, pipe.get())) {
    const std::string line(buffer);
    if (line.rfind("Thread ", 0) == 0) {  // Thread 2 (Thread 0x7f.. (LWP 1234) "name"):
      if (const auto lwp = line.find("(LWP "); lwp != std::string::npos) {
        current = std::atoi(line.c_str() + lwp + 5);
        traces[current];
      }
    } else if (current > 0 && line.rfind("#", 0) == 0) {  // #3  0x45.. in runtime.(*m).x (args) at ...
      std::size_t name_start = line.find_first_not_of(' ', line.find(' '));
      if (name_start == std::string::npos) continue;
      if (line.compare(name_start, 2, "0x") == 0) {
        const auto in = line.find(" in ", name_start);
        if (in == std::string::npos) continue;
        name_start = in + 4;
      }
      const auto name_end = line.find(" (", name_start);
      if (name_end != std::string::npos) traces[current].push_back(line.substr(name_start, name_end - name_start));
    }
  }
  return traces;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : " <- ") + name;
  return out;
}

}  // namespace

TEST_CASE("Every thread of a Go process unwinds as gdb's backtrace does, and ends where Go's traceback ends",
          "[go][unwind]") {
  const std::string program = GENERATE(as<std::string>{}, "go_states", "go_states_noopt", "go_cgo", "go_cgo_noopt");
  INFO(program);
  GoProgram child(program);
  REQUIRE(child.wait_ready(20'000));
  // A stopped process keeps every thread where it is for both readers (sysmon would otherwise move on).
  REQUIRE(kill(child.pid(), SIGSTOP) == 0);
  usleep(50'000);
  const auto ours = our_thread_stacks(child.pid());
  const auto gdb = gdb_backtraces(child.pid());
  if (gdb.empty()) {
    WARN("skipped the comparison with gdb: gdb printed no threads (is ptrace allowed to it?)");
    return;
  }
  std::size_t frames_compared = 0;
  for (const auto& [tid, stack] : ours) {
    INFO("thread " << tid << "\n  gdb:  " << joined(gdb.count(tid) ? gdb.at(tid) : std::vector<std::string>{})
                   << "\n  ours: " << joined(stack.names) << "\n  " << stack.unwind.stop_message);
    REQUIRE(gdb.count(tid));
    const auto& expected = gdb.at(tid);
    // A thread stopped inside Go's signal handler (the async preemption SIGURG sent to a goroutine spinning on
    // CPU): gdb 13 prints "??" for every frame past runtime.sigtramp, where we step through the kernel's signal
    // frame into the interrupted code. Compared up to where gdb stops knowing.
    const auto gdb_known = std::find(expected.begin(), expected.end(), "??");
    if (gdb_known != expected.end() && gdb_known != expected.begin() && *(gdb_known - 1) == "runtime.sigtramp") {
      const auto known = static_cast<std::size_t>(gdb_known - expected.begin());
      REQUIRE(stack.names.size() >= known);
      CHECK(std::vector<std::string>(expected.begin(), gdb_known) ==
            std::vector<std::string>(stack.names.begin(), stack.names.begin() + static_cast<long>(known)));
      continue;
    }
    REQUIRE(stack.names.size() <= expected.size());
    CHECK(std::vector<std::string>(expected.begin(), expected.begin() + static_cast<long>(stack.names.size())) ==
          stack.names);
    // A thread the runtime is creating right now sits in clone3 on a stack with nothing below it yet (gdb finds
    // no caller either).
    if (stack.names.front() == "clone3" || stack.names.front() == "clone") continue;
    CHECK(stack.unwind.complete());
    CHECK(kGoStackEnds.count(stack.names.back()));
    frames_compared += stack.names.size();
  }
  CHECK(ours.size() >= 5);
  CHECK(frames_compared >= 30);
}

TEST_CASE("Without DWARF, every Go thread is unwound by its pclntab frame sizes and named with file:line",
          "[go][unwind]") {
  const std::string program = GENERATE(as<std::string>{}, "go_states_stripped", "go_states_nodwarf",
                                       "go_cgo_stripped");
  INFO(program);
  GoProgram child(program);
  REQUIRE(child.wait_ready(20'000));
  const auto ours = our_thread_stacks(child.pid());
  std::set<std::string> named;
  std::size_t pclntab_steps = 0;
  for (const auto& [tid, stack] : ours) {
    INFO("thread " << tid << ": " << joined(stack.names) << "\n  " << stack.unwind.stop_message);
    CHECK(stack.unwind.complete());
    CHECK(kGoStackEnds.count(stack.names.back()));
    for (std::size_t i = 0; i < stack.names.size(); ++i) {
      INFO(stack.names[i]);
      // Only the C code of a stripped cgo binary may have no name (its static functions are in no symbol table);
      // it runs above runtime.asmcgocall.
      if (stack.names[i] == "??")
        CHECK(std::find(stack.names.begin() + static_cast<long>(i), stack.names.end(), "runtime.asmcgocall") !=
              stack.names.end());
      if (stack.sources[i] != binary::SymbolizedFrame::Source::go_pclntab) continue;
      CHECK(!stack.locations[i].empty());
      named.insert(stack.names[i] + " " + stack.locations[i].substr(stack.locations[i].rfind('/') + 1));
    }
    for (const Frame& frame : stack.unwind.frames) pclntab_steps += frame.recovered_by == FrameMethod::go_pclntab;
  }
  const std::string names = [&] {
    std::string all;
    for (const auto& name : named) all += name + "\n";
    return all;
  }();
  INFO(names);
  CHECK(pclntab_steps >= 10);
  CHECK(names.find("runtime.futex sys_linux_amd64.s:") != std::string::npos);
  CHECK(names.find("runtime.mstart asm_amd64.s:") != std::string::npos);
  if (program.starts_with("go_states")) {
    CHECK(names.find("runtime.usleep sys_linux_amd64.s:") != std::string::npos);
    CHECK(names.find("main.runOnCPU main.go:") != std::string::npos);
    CHECK(names.find("main.blockSyscall main.go:") != std::string::npos);
    CHECK(names.find("syscall.Read syscall_unix.go:") != std::string::npos);  // inlined into blockSyscall
  } else {
    CHECK(names.find("runtime.asmcgocall asm_amd64.s:") != std::string::npos);
  }
}

TEST_CASE("A Go core from the kernel (GOTRACEBACK=crash): every thread unwinds through Go's signal frames",
          "[go][unwind]") {
  // The kernel writes "core" into the process's directory only with a plain core_pattern.
  std::ifstream pattern_file("/proc/sys/kernel/core_pattern");
  std::string pattern;
  std::getline(pattern_file, pattern);
  if (pattern.empty() || pattern[0] == '|' || pattern.find('/') != std::string::npos) {
    WARN("skipped: kernel.core_pattern is '" << pattern << "', not a file in the crashing process's directory");
    return;
  }
  std::string directory = (std::filesystem::temp_directory_path() / "fiberscope-go-core-XXXXXX").string();
  REQUIRE(mkdtemp(directory.data()));
  struct RemoveAll {
    std::string path;
    ~RemoveAll() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } cleanup{directory};
  GoProgram child("go_states", directory);
  REQUIRE(child.wait_ready(20'000));
  const int status = child.kill_and_wait(SIGQUIT);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  std::string core_path;
  for (const auto& entry : std::filesystem::directory_iterator(directory))
    if (entry.path().filename().string().starts_with("core")) core_path = entry.path().string();
  if (core_path.empty() || !WCOREDUMP(status)) {
    WARN("skipped: no core was written (core_pattern '" << pattern << "', or a core size limit above ours)");
    return;
  }
  auto snapshot = target::open_core(core_path, {});
  INFO((snapshot ? "" : snapshot.error().message));
  REQUIRE(snapshot);
  const auto stacks = thread_stacks(&*snapshot);
  std::set<std::string> interrupted;  // the functions right below a signal frame
  for (const auto& [tid, stack] : stacks) {
    INFO("thread " << tid << ": " << joined(stack.names) << "\n  " << stack.unwind.stop_message);
    CHECK(stack.unwind.complete());
    CHECK(kGoStackEnds.count(stack.names.back()));
    const auto sigreturn = std::find(stack.names.begin(), stack.names.end(), "runtime.sigreturn");
    REQUIRE(sigreturn != stack.names.end());  // every thread was in Go's signal handler
    CHECK(sigreturn != stack.names.begin());
    CHECK(*(sigreturn - 1) == "runtime.sigtramp");
    for (auto it = sigreturn + 1; it != stack.names.end(); ++it) interrupted.insert(*it);
  }
  std::string all;
  for (const auto& name : interrupted) all += name + " ";
  INFO(all);
  CHECK(stacks.size() >= 5);
  CHECK(interrupted.count("main.blockSyscall"));
  CHECK(interrupted.count("runtime.mcall"));
}
