// write_core on a stopped live process: gdb must read the core (every thread's frames, an extra synthetic thread)
// and open_core must read it back equal to what was written.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>

#include "core_test_support.h"
#include "target/core_file.h"
#include "target/core_writer.h"
#include "target/process_memory.h"

using namespace fiberscope;
using namespace fiberscope::target;
using namespace fiberscope::test;

namespace {

// A thread id no process can have: above the kernel's PID_MAX_LIMIT (4194304).
constexpr int kSyntheticTid = 5000001;

// Counts the occurrences of `needle` in `text`.
std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

// A snapshot of the stopped child as the live capture would give it: threads, maps, exe, the process's memory.
struct LiveCore {
  Snapshot snapshot;
  std::vector<std::byte> auxv;
  std::vector<ThreadState> threads;
};

LiveCore describe_live(const StoppedProcess& stopped, int pid) {
  LiveCore live;
  live.snapshot.pid = pid;
  live.snapshot.threads = stopped.threads();
  // The main thread first, as gdb expects of the current thread.
  std::stable_partition(live.snapshot.threads.begin(), live.snapshot.threads.end(),
                        [&](const ThreadState& t) { return t.tid == pid; });
  live.snapshot.mappings = read_maps(pid).value_or(std::vector<Mapping>{});
  live.snapshot.exe_path = exe_path(pid).value_or("");
  auto auxv_text = read_proc_file("/proc/" + std::to_string(pid) + "/auxv", 1 << 16);
  if (auxv_text)
    for (char c : *auxv_text) live.auxv.push_back(std::byte(static_cast<unsigned char>(c)));
  live.threads = live.snapshot.threads;
  return live;
}

}  // namespace

TEST_CASE("A core written of a stopped live process shows every thread's frames in gdb and reads back equal") {
  TempDir dir;
  ReadyChild child(test_program("crasher_threads"), "ready", dir.path());
  REQUIRE(child.ready());
  std::string core_path = dir.path() + "/written.core";
  LiveCore live;
  {
    StoppedProcess stopped(child.pid());
    REQUIRE(stopped.error().empty());
    live = describe_live(stopped, child.pid());
    REQUIRE(live.snapshot.threads.size() == 4);
    REQUIRE_FALSE(live.snapshot.mappings.empty());

    // The extra thread replays a worker's registers, as --fibers-as-threads replays a parked fiber's context.
    CoreWriteOptions options;
    options.auxv = live.auxv;
    options.extra_threads.push_back({kSyntheticTid, *live.snapshot.threads.back().registers});
    ProcessMemory memory(child.pid());
    auto written = write_core(live.snapshot, memory, options, core_path);
    INFO((written ? "" : written.error().message));
    REQUIRE(written);
    CHECK(written->file_bytes == std::filesystem::file_size(core_path));
    CHECK(written->memory_bytes > 0);
  }  // detached: the child runs on

  struct stat info {};
  REQUIRE(::stat(core_path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);

  SECTION("gdb shows every thread's frames by function name, and the synthetic thread") {
    std::string gdb = run_command("timeout 120 gdb -nx -batch -c " + core_path + " " + test_program("crasher_threads") +
                                  " -ex 'info threads' -ex 'thread apply all bt'");
    INFO(gdb);
    CHECK(count_of(gdb, "worker_wait_level2 ()") == 4);   // three workers and the synthetic thread
    CHECK(count_of(gdb, "worker_wait_level1 ()") == 4);   // three workers and the synthetic thread
    CHECK(count_of(gdb, "worker_main (") == 4);
    CHECK(gdb.find("in main (") != std::string::npos);
    CHECK(gdb.find("LWP " + std::to_string(kSyntheticTid)) != std::string::npos);
    for (const ThreadState& thread : live.threads) CHECK(gdb.find("LWP " + std::to_string(thread.tid)) != std::string::npos);
    CHECK(gdb.find("Cannot access memory") == std::string::npos);
  }

  SECTION("open_core reads back the threads, registers, mappings and memory") {
    auto snapshot = open_core(core_path, {});
    REQUIRE(snapshot);
    std::string warnings;
    for (auto& warning : snapshot->warnings) warnings += warning + "\n";
    INFO(warnings);
    CHECK(snapshot->warnings.empty());
    CHECK(snapshot->pid == child.pid());
    CHECK(snapshot->exe_path == live.snapshot.exe_path);
    REQUIRE(snapshot->threads.size() == live.threads.size() + 1);
    for (std::size_t i = 0; i < live.threads.size(); ++i) {
      INFO("thread " << live.threads[i].tid);
      CHECK(snapshot->threads[i].tid == live.threads[i].tid);
      REQUIRE(snapshot->threads[i].registers);
      for (unsigned reg = 0; reg < kRegisterCount; ++reg)
        CHECK(snapshot->threads[i].registers->get(reg) == live.threads[i].registers->get(reg));
    }
    CHECK(snapshot->threads.back().tid == kSyntheticTid);
    CHECK(snapshot->threads.back().registers->pc() == live.threads.back().registers->pc());

    REQUIRE(snapshot->mappings.size() == live.snapshot.mappings.size());
    for (std::size_t i = 0; i < live.snapshot.mappings.size(); ++i) {
      const Mapping& expected = live.snapshot.mappings[i];
      const Mapping& got = snapshot->mappings[i];
      INFO(expected.path << " at " << expected.range.start.to_string());
      CHECK(got.range.start == expected.range.start);
      CHECK(got.range.end == expected.range.end);
      CHECK(got.readable == expected.readable);
      CHECK(got.writable == expected.writable);
      CHECK(got.executable == expected.executable);
      if (!expected.path.empty() && expected.path[0] == '/') {
        CHECK(got.path == expected.path);
        CHECK(got.file_offset == expected.file_offset);
      }
    }

    auto pattern = child.output().fields("PATTERN");
    REQUIRE(pattern.size() == 2);
    std::vector<std::byte> bytes(std::stoul(pattern[1]));
    REQUIRE(snapshot->memory->read(RemoteAddress(parse_address(pattern[0])), bytes));
    for (std::size_t i = 0; i < bytes.size(); ++i)
      if (bytes[i] != std::byte((i * 7 + 3) & 0xff)) FAIL("pattern byte " << i << " differs");
    // Every thread's stack top reads back equal to the live process's.
    ProcessMemory memory(child.pid());
    for (const ThreadState& thread : live.threads) {
      std::array<std::byte, 256> from_core{}, from_process{};
      RemoteAddress sp(thread.registers->sp());
      REQUIRE(snapshot->memory->read(sp, from_core));
      REQUIRE(memory.read(sp, from_process));
      CHECK(from_core == from_process);
    }
  }
}

TEST_CASE("A core written with read-only files in full reads their code without the files on disk") {
  TempDir dir;
  ReadyChild child(test_program("crasher_threads"), "ready", dir.path());
  REQUIRE(child.ready());
  std::string core_path = dir.path() + "/full.core";
  {
    StoppedProcess stopped(child.pid());
    REQUIRE(stopped.error().empty());
    LiveCore live = describe_live(stopped, child.pid());
    CoreWriteOptions options;
    options.write_read_only_files = true;
    ProcessMemory memory(child.pid());
    REQUIRE(write_core(live.snapshot, memory, options, core_path));
  }
  // An empty sysroot: no file NT_FILE names can be found, so the code must come from the core itself.
  auto snapshot = open_core(core_path, {.exe_path = "", .sysroot = dir.path() + "/empty-sysroot"});
  REQUIRE(snapshot);
  auto code = child.output().fields("CODE");
  REQUIRE(code.size() == 2);
  std::array<std::byte, 16> bytes{};
  auto read = snapshot->memory->read(RemoteAddress(parse_address(code[0])), bytes);
  INFO((read ? "" : read.error().message));
  REQUIRE(read);
  CHECK(static_cast<unsigned>(bytes[0]) == std::stoul(code[1].substr(0, 2), nullptr, 16));
}

TEST_CASE("write_core fails without leaving a file when the directory does not exist") {
  Snapshot snapshot;
  snapshot.pid = 1;
  ThreadState thread;
  thread.tid = 1;
  thread.registers = Registers{};
  snapshot.threads.push_back(thread);
  RegionMemory memory;
  auto written = write_core(snapshot, memory, {}, "/nonexistent-dir/core");
  REQUIRE_FALSE(written);
  CHECK_THAT(written.error().message, Catch::Contains("/nonexistent-dir/core"));
}
