#include <catch2/catch.hpp>

#include <cstdlib>

#include "target/proc_files.h"
#include "target/process_memory.h"
#include "test_process.h"

using namespace fiberscope;
using namespace fiberscope::target;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

std::uint64_t parse_address(const std::string& text) { return std::strtoull(text.c_str(), nullptr, 16); }

// A readable mapping of `pid` whose end is not followed by another mapping: reads across its end must fail there.
std::optional<Mapping> mapping_before_a_hole(int pid) {
  auto mappings = read_maps(pid);
  if (!mappings) return std::nullopt;
  for (std::size_t i = 0; i + 1 < mappings->size(); ++i) {
    const Mapping& here = (*mappings)[i];
    if (here.readable && (*mappings)[i + 1].range.start > here.range.end) return here;
  }
  return std::nullopt;
}

void check_pattern(std::span<const std::byte> bytes, std::size_t first_index) {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    REQUIRE(bytes[i] == std::byte(static_cast<std::uint8_t>((first_index + i) * 7 + 3)));
}

}  // namespace

TEST_CASE("ProcessMemory reads what the target wrote, through process_vm_readv and through /proc/PID/mem") {
  TestProcess target({bin("threads_blocked"), "1"});
  auto ready = target.wait_for("READY");
  REQUIRE(ready);
  RemoteAddress buffer(parse_address((*ready)[2]));

  auto method = GENERATE(ProcessMemory::Method::automatic, ProcessMemory::Method::proc_mem);
  ProcessMemory memory(target.pid(), method);
  CHECK(memory.using_proc_mem() == (method == ProcessMemory::Method::proc_mem));
  std::vector<std::byte> bytes(8192);
  REQUIRE(memory.read(buffer, bytes));
  check_pattern(bytes, 0);
}

TEST_CASE("a read running off the end of a mapping fails and names the first unreadable address") {
  TestProcess target({bin("threads_blocked"), "1"});
  REQUIRE(target.wait_for("READY"));
  auto edge = mapping_before_a_hole(target.pid());
  REQUIRE(edge);

  auto method = GENERATE(ProcessMemory::Method::automatic, ProcessMemory::Method::proc_mem);
  ProcessMemory memory(target.pid(), method);
  std::vector<std::byte> bytes(64);
  auto result = memory.read(edge->range.end - 16, bytes);
  REQUIRE_FALSE(result);
  CHECK_THAT(result.error().message, Catch::StartsWith("memory at " + edge->range.end.to_string() + " unreadable"));
  CHECK(memory.read(edge->range.end - 16, std::span(bytes).first(16)));
}

TEST_CASE("read_batch fills many ranges per call and keeps the readable prefix of a range that faults") {
  TestProcess target({bin("threads_blocked"), "1"});
  auto ready = target.wait_for("READY");
  REQUIRE(ready);
  RemoteAddress buffer(parse_address((*ready)[2]));
  auto edge = mapping_before_a_hole(target.pid());
  REQUIRE(edge);

  auto method = GENERATE(ProcessMemory::Method::automatic, ProcessMemory::Method::proc_mem);
  ProcessMemory memory(target.pid(), method);
  // 3000 pieces of 2 bytes: more than IOV_MAX, so several system calls; one faulting range in the middle.
  constexpr std::size_t kPieces = 3000;
  std::vector<std::byte> arena(kPieces * 2 + 32);
  std::vector<ProcessMemory::BatchRead> requests;
  for (std::size_t i = 0; i < kPieces; ++i)
    requests.push_back({buffer + i * 2, std::span(arena).subspan(i * 2, 2)});
  requests.insert(requests.begin() + 1500, {edge->range.end - 8, std::span(arena).subspan(kPieces * 2, 32)});
  requests.push_back({RemoteAddress(~0ull - 1), std::span(arena).first(4)});  // wraps: never read

  std::size_t complete = memory.read_batch(requests);
  CHECK(complete == kPieces);
  CHECK(requests[1500].bytes_read == 8);
  CHECK(requests.back().bytes_read == 0);
  check_pattern(std::span(arena).first(kPieces * 2), 0);
}

TEST_CASE("ProcessMemory reports a process that is gone") {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  ProcessMemory memory(child);
  std::byte byte[1];
  auto result = memory.read(RemoteAddress(0x400000), byte);
  REQUIRE_FALSE(result);
  CHECK(result.error().code == ErrorCode::no_such_process);
}
