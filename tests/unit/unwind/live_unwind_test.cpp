// The unwinder on real processes: every thread of call_chains (five builds) captured with target::capture_live,
// unwound, and compared with gdb's backtrace of the same stopped process.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "binary/elf_image.h"
#include "target/live_capture.h"
#include "target/proc_files.h"
#include "unwind/unwinder.h"

using namespace fiberscope;
using namespace fiberscope::unwind;
using target::RemoteAddress;

namespace {

// The program's own functions: the only names both we (from .symtab) and gdb (from DWARF) spell the same way.
const std::set<std::string> kProgramFunctions = {"main",    "thread_main", "fault_thread_main", "level_a",
                                                 "level_b", "level_c",     "blocker",           "fault_a",
                                                 "fault_b", "on_fault",    "handler_wait"};

// A started test program, killed and reaped when the test ends.
class ChildProcess {
 public:
  explicit ChildProcess(const std::string& path) {
    int pipe_fds[2];
    REQUIRE(pipe(pipe_fds) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(pipe_fds[1], STDOUT_FILENO);
      close(pipe_fds[0]);
      close(pipe_fds[1]);
      execl(path.c_str(), path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(pipe_fds[1]);
    output_fd_ = pipe_fds[0];
  }
  ~ChildProcess() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(output_fd_);
  }
  // Waits up to `timeout_ms` for the line READY.
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

// The modules of a snapshot, opened from the files its mappings name.
struct LoadedModules {
  std::vector<std::unique_ptr<binary::ElfImage>> images;
  ModuleCfiSet cfi;
  std::map<const ModuleCfi*, std::pair<const binary::ElfImage*, std::uint64_t>> image_of;  // image, load bias

  explicit LoadedModules(const std::vector<target::Mapping>& mappings) {
    std::map<std::string, target::AddressRange> ranges;
    std::map<std::string, std::uint64_t> first_mapping;  // the mapping at file offset 0
    for (const auto& mapping : mappings) {
      if (mapping.path.empty() || mapping.path[0] == '[') continue;
      auto [it, inserted] = ranges.emplace(mapping.path, mapping.range);
      if (!inserted) {
        it->second.start = std::min(it->second.start, mapping.range.start);
        it->second.end = std::max(it->second.end, mapping.range.end);
      }
      if (mapping.file_offset == 0 && !first_mapping.count(mapping.path)) {
        first_mapping[mapping.path] = mapping.range.start.value();
      }
    }
    for (const auto& [path, range] : ranges) {
      if (!first_mapping.count(path)) continue;
      auto image = binary::ElfImage::open(path);
      if (!image) continue;  // not an ELF file (a mapped data file)
      const std::uint64_t bias = first_mapping[path] - (*image)->first_load_vaddr();
      REQUIRE(cfi.add(ModuleCfi::from_image(**image, bias, range)));
      image_of[cfi.module_at(range.start.value())] = {image->get(), bias};
      images.push_back(std::move(*image));
    }
  }

  std::string function_name(const Frame& frame) const {
    const ModuleCfi* module = cfi.module_at(frame.lookup_pc().value());
    if (!module) return "??";
    const auto& [image, bias] = image_of.at(module);
    auto symbol = image->symbol_containing(frame.lookup_pc().value() - bias);
    return symbol ? symbol->name : "??";
  }
};

// gdb's `thread apply all bt`, as function names per LWP.
std::map<int, std::vector<std::string>> gdb_backtraces(int pid) {
  const std::string command = "gdb -nx -batch -p " + std::to_string(pid) +
                              " -ex 'set debuginfod enabled off' -ex 'thread apply all bt' 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  REQUIRE(pipe);
  std::map<int, std::vector<std::string>> traces;
  int current = -1;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe.get())) {
    const std::string line(buffer);
    if (line.rfind("Thread ", 0) == 0) {  // Thread 2 (Thread 0x7f.. (LWP 1234) "name"):
      if (const auto lwp = line.find("(LWP "); lwp != std::string::npos) {
        current = std::atoi(line.c_str() + lwp + 5);
        traces[current];
      }
    } else if (current > 0 && line.rfind("#", 0) == 0) {  // #3  0x55.. in level_c (depth=3) at ...
      if (line.find("<signal handler called>") != std::string::npos) {
        traces[current].push_back("<signal handler called>");
        continue;
      }
      std::size_t name_start = line.find_first_of(' ');
      name_start = line.find_first_not_of(' ', name_start);
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

std::vector<std::string> only_program_functions(const std::vector<std::string>& names) {
  std::vector<std::string> kept;
  for (const auto& name : names) {
    if (kProgramFunctions.count(name)) kept.push_back(name);
  }
  return kept;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : " <- ") + name;
  return out;
}

}  // namespace

TEST_CASE("Every thread of a real process unwinds like gdb's backtrace, through the signal frame too") {
  const std::string variant = GENERATE(as<std::string>{}, "O0_fp", "O0_nofp", "O2_fp", "O2_nofp", "O2_debug_frame");
  INFO("variant " << variant);
  ChildProcess child(std::string(FIBERSCOPE_TEST_BIN_DIR) + "/unwind_call_chains_" + variant);
  REQUIRE(child.wait_ready(10'000));
  usleep(100'000);  // the program's own settle time, plus margin

  // Copy from 256 bytes below each thread's sp (the red zone and more) to the end of its stack mapping.
  auto maps = target::read_maps(child.pid());
  REQUIRE(maps);
  auto snapshot = target::capture_live(child.pid(), {}, [&](const target::Memory&, const auto& threads) {
    std::vector<target::AddressRange> ranges;
    for (const auto& thread : threads) {
      if (!thread.registers) continue;
      const RemoteAddress sp(thread.registers->sp());
      for (const auto& mapping : *maps) {
        if (mapping.range.contains(sp)) ranges.push_back({sp - 256, mapping.range.end});
      }
    }
    return ranges;
  });
  INFO((snapshot ? "" : snapshot.error().message));
  REQUIRE(snapshot);
  REQUIRE(snapshot->threads.size() == 4);

  LoadedModules modules(snapshot->mappings);
  Unwinder unwinder(modules.cfi);
  std::map<int, std::vector<std::string>> ours;
  std::map<int, UnwindResult> results;
  for (const auto& thread : snapshot->threads) {
    REQUIRE(thread.registers);
    std::vector<StackRegion> stacks;
    for (const auto& mapping : snapshot->mappings) {
      if (mapping.range.contains(RemoteAddress(thread.registers->sp()))) {
        stacks.push_back({mapping.range, StackKind::system, static_cast<std::uint64_t>(thread.tid)});
      }
    }
    auto result = unwinder.unwind(*thread.registers, *snapshot->memory, UnwindOptions{.stacks = stacks});
    for (const Frame& frame : result.frames) ours[thread.tid].push_back(modules.function_name(frame));
    INFO("thread " << thread.tid << ": " << joined(ours[thread.tid]) << " / " << result.stop_message);
    CHECK(result.complete());
    results.emplace(thread.tid, std::move(result));
  }

  const auto gdb = gdb_backtraces(child.pid());
  if (gdb.empty()) {
    WARN("skipped the comparison with gdb: gdb printed no threads (is ptrace allowed to it?)");
    return;
  }
  bool saw_signal_frame = false;
  for (const auto& [tid, names] : ours) {
    REQUIRE(gdb.count(tid));
    const auto expected = only_program_functions(gdb.at(tid));
    const auto got = only_program_functions(names);
    INFO("thread " << tid << "\n  gdb:  " << joined(gdb.at(tid)) << "\n  ours: " << joined(names));
    CHECK(got == expected);
    CHECK(got.size() >= 4);
    const auto& frames = results.at(tid).frames;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
      if (!frames[i].is_signal_trampoline) continue;
      saw_signal_frame = true;
      CHECK_FALSE(frames[i + 1].pc_is_return_address);  // the faulting instruction itself
      CHECK(modules.function_name(frames[i + 1]) == "fault_b");
    }
    for (const Frame& frame : frames) CHECK(frame.stack_id == static_cast<std::uint64_t>(tid));
  }
  CHECK(saw_signal_frame);
}
