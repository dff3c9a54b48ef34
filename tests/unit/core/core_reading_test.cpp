// open_core on real cores: made by the kernel when crasher_threads crashes, and by gdb's gcore of a live one.
#include <catch2/catch.hpp>

#include <filesystem>

#include "core_test_support.h"
#include "target/core_file.h"
#include "target/live_capture.h"

using namespace fiberscope;
using namespace fiberscope::target;
using namespace fiberscope::test;

namespace {

// The bytes crasher_threads put in its PATTERN buffer.
std::vector<std::byte> expected_pattern(std::size_t size) {
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = std::byte((i * 7 + 3) & 0xff);
  return bytes;
}

// "554889e5..." -> bytes.
std::vector<std::byte> from_hex(const std::string& text) {
  std::vector<std::byte> bytes;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2)
    bytes.push_back(std::byte(static_cast<unsigned char>(std::stoul(text.substr(i, 2), nullptr, 16))));
  return bytes;
}

// Checks that the program's PATTERN buffer and CODE bytes read back from the snapshot.
void check_known_memory(const Snapshot& snapshot, const ChildRun& run) {
  auto pattern = run.fields("PATTERN");
  REQUIRE(pattern.size() == 2);
  auto expected = expected_pattern(std::stoul(pattern[1]));
  std::vector<std::byte> buffer(expected.size());
  auto read = snapshot.memory->read(RemoteAddress(parse_address(pattern[0])), buffer);
  INFO((read ? "" : read.error().message));
  REQUIRE(read);
  CHECK(buffer == expected);

  // The code is read-only file-backed memory: cores omit it, so it comes from the executable on disk.
  auto code = run.fields("CODE");
  REQUIRE(code.size() == 2);
  auto expected_code = from_hex(code[1]);
  std::vector<std::byte> code_bytes(expected_code.size());
  auto code_read = snapshot.memory->read(RemoteAddress(parse_address(code[0])), code_bytes);
  INFO((code_read ? "" : code_read.error().message));
  REQUIRE(code_read);
  CHECK(code_bytes == expected_code);
}

std::string warnings_text(const Snapshot& snapshot) {
  std::string text;
  for (const std::string& warning : snapshot.warnings) text += warning + "\n";
  return text;
}

}  // namespace

TEST_CASE("A kernel core of a SIGSEGV lists the crashed thread first with the signal and the fault address") {
  TempDir dir;
  auto core = make_kernel_core("segv", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  REQUIRE(WIFSIGNALED(core.run.wait_status));
  CHECK(WTERMSIG(core.run.wait_status) == SIGSEGV);

  auto snapshot = open_core(core.path, {});
  REQUIRE(snapshot);
  INFO(warnings_text(*snapshot));
  CHECK(snapshot->warnings.empty());
  CHECK(snapshot->target_was_stopped);
  CHECK_FALSE(snapshot->pause_ms);
  CHECK(std::filesystem::equivalent(snapshot->exe_path, test_program("crasher_threads")));

  auto fault = core.run.fields("FAULT");
  REQUIRE(fault.size() == 3);
  REQUIRE(snapshot->threads.size() == 5);  // main, three workers, the crasher
  const ThreadState& crashed = snapshot->threads.front();
  CHECK(crashed.tid == std::stoi(fault[2]));
  CHECK(crashed.signal == SIGSEGV);
  CHECK(crashed.fault_address == parse_address(fault[0]));
  CHECK(crashed.name.empty());  // a core records no thread's name: none rather than the process's
  for (std::size_t i = 1; i < snapshot->threads.size(); ++i) CHECK(snapshot->threads[i].signal == 0);

  // Registers are plausible: every pc in executable memory, every sp in writable memory, and the crashed
  // thread's pc in the executable itself (crash_by_segv).
  for (const ThreadState& thread : snapshot->threads) {
    INFO("thread " << thread.tid);
    REQUIRE(thread.registers);
    auto* code = mapping_containing(*snapshot, thread.registers->pc());
    REQUIRE(code);
    CHECK(code->executable);
    auto* stack = mapping_containing(*snapshot, thread.registers->sp());
    REQUIRE(stack);
    CHECK(stack->writable);
  }
  auto* crash_site = mapping_containing(*snapshot, crashed.registers->pc());
  CHECK(std::filesystem::equivalent(crash_site->path, test_program("crasher_threads")));
  check_known_memory(*snapshot, core.run);
}

TEST_CASE("A kernel core of abort() names SIGABRT on the aborting thread and no fault address") {
  TempDir dir;
  auto core = make_kernel_core("abort", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  auto snapshot = open_core(core.path, {});
  REQUIRE(snapshot);
  auto aborted = core.run.fields("ABORT");
  REQUIRE(aborted.size() == 2);
  REQUIRE(snapshot->threads.size() == 5);
  CHECK(snapshot->threads.front().tid == std::stoi(aborted[1]));
  CHECK(snapshot->threads.front().signal == SIGABRT);
  CHECK(snapshot->threads.front().fault_address == 0);
  // abort() raises from libc: the pc is in libc's text, which the core omits and the file on disk supplies.
  auto pc = snapshot->threads.front().registers->pc();
  auto* libc = mapping_containing(*snapshot, pc);
  REQUIRE(libc);
  CHECK(libc->path.find("libc") != std::string::npos);
  std::array<std::byte, 16> code{};
  CHECK(snapshot->memory->read(RemoteAddress(pc), code));
  check_known_memory(*snapshot, core.run);
}

TEST_CASE("An --exe whose build-id differs from the core's is refused with a warning and its code is unreadable") {
  TempDir dir;
  auto core = make_kernel_core("segv", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  std::string other_binary = "/usr/bin/gdb";  // any x86-64 executable with another build-id
  auto snapshot = open_core(core.path, {.exe_path = other_binary, .sysroot = ""});
  REQUIRE(snapshot);
  CHECK(snapshot->exe_path == other_binary);
  INFO(warnings_text(*snapshot));
  bool warned = false;
  for (const std::string& warning : snapshot->warnings)
    warned |= warning.find(other_binary) != std::string::npos && warning.find("build-id") != std::string::npos;
  CHECK(warned);
  auto code = core.run.fields("CODE");
  REQUIRE(code.size() == 2);
  std::array<std::byte, 16> bytes{};
  auto read = snapshot->memory->read(RemoteAddress(parse_address(code[0])), bytes);
  REQUIRE_FALSE(read);
  CHECK_THAT(read.error().message, Catch::Contains("build-id"));
  // Memory the core holds is still there.
  auto pattern = core.run.fields("PATTERN");
  CHECK(snapshot->memory->read(RemoteAddress(parse_address(pattern[0])), bytes));
}

TEST_CASE("A sysroot prefixes the paths the core names, and a file missing there makes only its code unreadable") {
  TempDir dir;
  auto core = make_kernel_core("segv", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  std::string exe = std::filesystem::canonical(test_program("crasher_threads")).string();
  std::string sysroot = dir.path() + "/sysroot";
  std::filesystem::create_directories(sysroot + std::filesystem::path(exe).parent_path().string());

  SECTION("the executable copied under the sysroot is used") {
    std::filesystem::copy_file(exe, sysroot + exe);
    auto snapshot = open_core(core.path, {.exe_path = "", .sysroot = sysroot});
    REQUIRE(snapshot);
    CHECK(snapshot->exe_path == sysroot + exe);
    check_known_memory(*snapshot, core.run);
  }
  SECTION("an empty sysroot gives a warning per missing file and a clear read error") {
    auto snapshot = open_core(core.path, {.exe_path = "", .sysroot = sysroot});
    REQUIRE(snapshot);
    INFO(warnings_text(*snapshot));
    bool warned = false;
    for (const std::string& warning : snapshot->warnings)
      warned |= warning.find(sysroot + exe) != std::string::npos && warning.find("not found") != std::string::npos;
    CHECK(warned);
    auto code = core.run.fields("CODE");
    std::array<std::byte, 16> bytes{};
    auto read = snapshot->memory->read(RemoteAddress(parse_address(code[0])), bytes);
    REQUIRE_FALSE(read);
    CHECK_THAT(read.error().message, Catch::Contains(sysroot + exe) && Catch::Contains("not on disk"));
  }
}

TEST_CASE("gdb's gcore of a live program gives the threads and registers of the stopped process") {
  TempDir dir;
  ReadyChild child(test_program("crasher_threads"), "ready", dir.path());
  REQUIRE(child.ready());
  std::string core_path = dir.path() + "/gdb.core";
  std::string gdb_output = run_command("timeout 120 gdb -nx -batch -p " + std::to_string(child.pid()) +
                                       " -ex 'gcore " + core_path + "'");
  if (!std::filesystem::exists(core_path)) {
    WARN("skipped: gdb could not attach and write a core here:\n" << gdb_output);
    return;
  }
  auto snapshot = open_core(core_path, {});
  REQUIRE(snapshot);
  INFO(warnings_text(*snapshot));
  CHECK(snapshot->pid == child.pid());

  // gdb has detached; every thread is blocked again exactly where it was (pause() restarts in place).
  auto live = capture_live(child.pid(), {}, [](const Memory&, const std::vector<ThreadState>&) {
    return std::vector<AddressRange>{};  // registers and maps are all this comparison needs
  });
  INFO((live ? "" : live.error().message));
  REQUIRE(live);
  REQUIRE(snapshot->threads.size() == live->threads.size());
  for (const ThreadState& live_thread : live->threads) {
    INFO("thread " << live_thread.tid);
    auto it = std::find_if(snapshot->threads.begin(), snapshot->threads.end(),
                           [&](const ThreadState& t) { return t.tid == live_thread.tid; });
    REQUIRE(it != snapshot->threads.end());
    REQUIRE(it->registers);
    CHECK(it->signal == 0);
    for (Reg reg : {Reg::rip, Reg::rsp, Reg::rbp, Reg::rbx, Reg::r12, Reg::r13, Reg::r14, Reg::r15})
      CHECK(it->registers->get(reg) == live_thread.registers->get(reg));
    auto* code = mapping_containing(*snapshot, it->registers->pc());
    REQUIRE(code);
    CHECK_FALSE(code->path.empty());  // gdb leaves text out and names it only in NT_FILE: flags unknown there
  }
  for (const Mapping& live_mapping : live->mappings) {
    if (live_mapping.path.empty() || live_mapping.path[0] != '/') continue;
    INFO(live_mapping.path << " at " << live_mapping.range.start.to_string());
    auto* mapping = mapping_containing(*snapshot, live_mapping.range.start.value());
    REQUIRE(mapping);
    CHECK(mapping->path == live_mapping.path);
    CHECK(mapping->file_offset == live_mapping.file_offset);
  }
  check_known_memory(*snapshot, child.output());
}

TEST_CASE("A core truncated while it is read gives errors for the memory it lost, never SIGBUS") {
  TempDir dir;
  auto core = make_kernel_core("segv", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  auto snapshot = open_core(core.path, {});
  REQUIRE(snapshot);
  // Anonymous memory comes from the core alone (file-backed pages may come from the files a core names).
  std::vector<RemoteAddress> dumped;
  for (const Mapping& mapping : snapshot->mappings)
    if (mapping.path.empty() || mapping.path == "[stack]")
      if (snapshot->memory->read_u64(mapping.range.start)) dumped.push_back(mapping.range.start);
  REQUIRE_FALSE(dumped.empty());
  std::filesystem::resize_file(core.path, 4096);  // as another process would, under the open mapping
  int lost = 0;
  for (RemoteAddress address : dumped) {
    auto value = snapshot->memory->read_u64(address);
    if (value) continue;
    ++lost;
    CHECK_THAT(value.error().message, Catch::Contains("shrank while being read"));
  }
  CHECK(lost == static_cast<int>(dumped.size()));
}
