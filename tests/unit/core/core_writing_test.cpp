// write_core on a stopped live process: gdb must read the core (every thread's frames, an extra synthetic thread)
// and open_core must read it back equal to what was written.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <fstream>

#include "core_test_support.h"
#include "target/core_file.h"
#include "target/core_writer.h"
#include "target/live_capture.h"
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

// What write_core was given inside the capture's pause, and what the capture returned.
struct LiveCore {
  Snapshot written;                    // threads (main first), mappings and exe as passed to write_core
  std::vector<ThreadState> threads;    // = written.threads
  Result<CoreWriteSummary> summary = fail("write_core was not called");
};

// Writes a core of `pid` the way `fiberscope gcore` does: inside capture_live's pause, with the stopped process's
// memory, then detaches. The main thread goes first, as gdb takes the first NT_PRSTATUS for the current thread.
LiveCore write_core_of_live(int pid, CoreWriteOptions options, const std::string& core_path) {
  LiveCore live;
  auto auxv_text = read_proc_file("/proc/" + std::to_string(pid) + "/auxv", 1 << 16);
  if (auxv_text)
    for (char c : *auxv_text) options.auxv.push_back(std::byte(static_cast<unsigned char>(c)));
  auto captured = capture_live(pid, {}, [&](const Memory& stopped, const std::vector<ThreadState>& threads) {
    live.written.pid = pid;
    live.written.threads = threads;
    std::stable_partition(live.written.threads.begin(), live.written.threads.end(),
                          [&](const ThreadState& t) { return t.tid == pid; });
    live.written.mappings = read_maps(pid).value_or(std::vector<Mapping>{});
    live.written.exe_path = exe_path(pid).value_or("");
    for (ExtraThread& extra : options.extra_threads)  // a fiber's context in gcore; a worker's registers here
      if (extra.tid != 0 && live.written.threads.size() > 1) extra.registers = *live.written.threads.back().registers;
    live.summary = write_core(live.written, stopped, options, core_path);
    return std::vector<AddressRange>{};
  });
  if (!captured) live.summary = std::unexpected(captured.error().with_context("capture_live"));
  live.threads = live.written.threads;
  return live;
}

}  // namespace

TEST_CASE("A core written of a stopped live process shows every thread's frames in gdb and reads back equal") {
  TempDir dir;
  ReadyChild child(test_program("crasher_threads"), "ready", dir.path());
  REQUIRE(child.ready());
  std::string core_path = dir.path() + "/written.core";
  CoreWriteOptions options;
  options.extra_threads.push_back({kSyntheticTid, Registers{}});  // registers filled in while stopped
  LiveCore live = write_core_of_live(child.pid(), options, core_path);
  INFO((live.summary ? "" : live.summary.error().message));
  REQUIRE(live.summary);
  CHECK(live.summary->file_bytes == std::filesystem::file_size(core_path));
  CHECK(live.summary->memory_bytes > 0);
  REQUIRE(live.threads.size() == 4);
  REQUIRE_FALSE(live.written.mappings.empty());

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
    for (const ThreadState& thread : live.threads)
      CHECK(gdb.find("LWP " + std::to_string(thread.tid)) != std::string::npos);
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
    CHECK(snapshot->exe_path == live.written.exe_path);
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

    REQUIRE(snapshot->mappings.size() == live.written.mappings.size());
    for (std::size_t i = 0; i < live.written.mappings.size(); ++i) {
      const Mapping& expected = live.written.mappings[i];
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
  CoreWriteOptions options;
  options.write_read_only_files = true;
  LiveCore live = write_core_of_live(child.pid(), options, core_path);
  INFO((live.summary ? "" : live.summary.error().message));
  REQUIRE(live.summary);
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

TEST_CASE("A core with more than 65535 segments uses extended numbering and reads back") {
  TempDir dir;
  Snapshot snapshot;
  snapshot.pid = 42;
  ThreadState thread;
  thread.tid = 42;
  Registers registers;
  registers.set(Reg::rip, 0x401000);
  registers.set(Reg::rsp, 0x7ff000);
  thread.registers = registers;
  snapshot.threads.push_back(thread);
  // 70000 inaccessible guard pages (no contents), then one readable page with known bytes.
  constexpr std::uint64_t kGuards = 70000;
  for (std::uint64_t i = 0; i < kGuards; ++i) {
    Mapping guard;
    guard.range = {RemoteAddress(0x10000000 + i * 0x2000), RemoteAddress(0x10000000 + i * 0x2000 + 0x1000)};
    snapshot.mappings.push_back(guard);
  }
  Mapping data;
  data.range = {RemoteAddress(0x7fe000), RemoteAddress(0x800000)};
  data.readable = data.writable = true;
  snapshot.mappings.push_back(data);
  RegionMemory memory;
  std::vector<std::byte> bytes(0x2000);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = std::byte(i % 251);
  REQUIRE(memory.add(data.range.start, bytes));

  std::string path = dir.path() + "/many.core";
  auto written = write_core(snapshot, memory, {}, path);
  INFO((written ? "" : written.error().message));
  REQUIRE(written);
  CHECK(written->memory_bytes == 0x2000);

  auto opened = open_core(path, {});
  REQUIRE(opened);
  CHECK(opened->mappings.size() == kGuards + 1);
  REQUIRE(opened->threads.size() == 1);
  CHECK(opened->threads[0].registers->pc() == 0x401000);
  std::vector<std::byte> back(bytes.size());
  REQUIRE(opened->memory->read(data.range.start, back));
  CHECK(back == bytes);
  auto guard = opened->memory->read(RemoteAddress(0x10000000), std::span(back).first(8));
  REQUIRE_FALSE(guard);  // as in the live process
  CHECK_THAT(guard.error().message, Catch::Contains("not readable"));

  CoreWriteOptions capped;
  capped.max_memory_bytes = 0x1000;
  auto capped_written = write_core(snapshot, memory, capped, dir.path() + "/capped.core");
  REQUIRE(capped_written);
  CHECK(capped_written->memory_bytes == 0);
  REQUIRE(capped_written->warnings.size() == 1);
  CHECK_THAT(capped_written->warnings[0], Catch::Contains("max_memory_bytes"));
}

namespace {

// Writes at `path` the core of a process 42 with one thread and one anonymous read-write mapping holding `bytes`
// at `start`.
Result<CoreWriteSummary> write_one_mapping_core(RemoteAddress start, std::vector<std::byte> bytes,
                                                const std::string& path) {
  Snapshot snapshot;
  snapshot.pid = 42;
  ThreadState thread;
  thread.tid = 42;
  thread.registers = Registers{};
  snapshot.threads.push_back(thread);
  Mapping mapping;
  mapping.range = {start, start + bytes.size()};
  mapping.readable = mapping.writable = true;
  snapshot.mappings.push_back(mapping);
  RegionMemory memory;
  if (auto added = memory.add(start, std::move(bytes)); !added) return std::unexpected(added.error());
  return write_core(snapshot, memory, {}, path);
}

}  // namespace

TEST_CASE("Pages of zeros are left as holes in the core, and read back as zeros") {
  // A fiber stack is mostly untouched pages below a few live ones: only the live ones take room in the file.
  TempDir dir;
  constexpr std::uint64_t kPages = 64;
  const RemoteAddress start(0x20000000);
  std::vector<std::byte> bytes(kPages * 4096);
  for (std::uint64_t page : {std::uint64_t{3}, std::uint64_t{62}, std::uint64_t{63}})
    for (std::size_t i = 0; i < 4096; i += 512) bytes[page * 4096 + i] = std::byte(page + i / 512 + 1);
  const std::string path = dir.path() + "/holes.core";
  auto written = write_one_mapping_core(start, bytes, path);
  REQUIRE(written);
  CHECK(written->memory_bytes == kPages * 4096);
  CHECK(written->written_bytes == 3 * 4096);
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK(static_cast<std::uint64_t>(info.st_size) == written->file_bytes);
  CHECK(static_cast<std::uint64_t>(info.st_blocks) * 512 < 16 * 4096);  // headers, notes and the 3 pages

  auto opened = open_core(path, {});
  REQUIRE(opened);
  std::vector<std::byte> back(bytes.size());
  REQUIRE(opened->memory->read(start, back));
  CHECK(back == bytes);
}

namespace {

// Resident kilobytes of this process's mappings of `path` (from /proc/self/smaps).
std::uint64_t resident_kb_of_file(const std::string& path) {
  std::ifstream smaps("/proc/self/smaps");
  std::uint64_t total = 0;
  bool in_file = false;
  for (std::string line; std::getline(smaps, line);) {
    const bool header = !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
                        line.find('-') != std::string::npos && line.find(':') > line.find(' ');
    if (header) in_file = line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0;
    else if (in_file && line.starts_with("Rss:")) total += std::stoull(line.substr(4));
  }
  return total;
}

}  // namespace

TEST_CASE("Reading every page of a large core keeps few of its pages resident, and reads stay right") {
  // Each page fault on the mapped core maps its neighbours too, and mapped pages count in the inspector's resident
  // set: reading one stack per fiber of a 100k-fiber core held 1.7 GB. The reader lets the pages go as it goes.
  TempDir dir;
  constexpr std::uint64_t kBytes = std::uint64_t{64} << 20;
  const RemoteAddress start(0x10000000);
  std::string path = dir.path() + "/large.core";
  {
    std::vector<std::byte> bytes(kBytes);
    for (std::size_t page = 0; page < kBytes / 4096; ++page) bytes[page * 4096] = std::byte((page % 255) + 1);
    REQUIRE(write_one_mapping_core(start, std::move(bytes), path));
  }
  auto opened = open_core(path, {});
  REQUIRE(opened);
  bool all_right = true;
  // Not a round number of pages: the last pages read are still resident, whenever the reader lets pages go.
  const std::uint64_t pages_read = kBytes / 4096 - 1000;
  for (std::uint64_t page = 0; page < pages_read; ++page) {
    std::byte byte{};
    REQUIRE(opened->memory->read(start + page * 4096, std::span(&byte, 1)));
    all_right = all_right && byte == std::byte((page % 255) + 1);
  }
  CHECK(all_right);
  const std::uint64_t resident_kb = resident_kb_of_file(path);
  INFO("resident of the 64 MiB core after reading " << pages_read << " of its pages once: " << resident_kb << " kB");
  CHECK(resident_kb > 0);  // the measure sees the mapping
  CHECK(resident_kb < 24 * 1024);
}
