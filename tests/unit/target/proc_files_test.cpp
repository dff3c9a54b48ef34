#include <catch2/catch.hpp>

#include <unistd.h>

#include <random>

#include "target/proc_files.h"
#include "test_process.h"

using namespace fiberscope;
using namespace fiberscope::target;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

TEST_CASE("parse_maps reads permissions, offsets, paths with spaces and deleted files") {
  std::string text =
      "55d0c0a00000-55d0c0a02000 r-xp 00001000 fd:01 1234                       /usr/bin/my prog\n"
      "7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
      "7f0000100000-7f0000101000 r--s 00002000 00:05 99                         /memfd:buffer (deleted)\n"
      "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";  // no final newline
  std::vector<std::string> warnings;
  auto mappings = parse_maps(text, &warnings);
  CHECK(warnings.empty());
  REQUIRE(mappings.size() == 5);
  CHECK(mappings[0].range.start == RemoteAddress(0x55d0c0a00000));
  CHECK(mappings[0].range.end == RemoteAddress(0x55d0c0a02000));
  CHECK(mappings[0].readable);
  CHECK_FALSE(mappings[0].writable);
  CHECK(mappings[0].executable);
  CHECK(mappings[0].file_offset == 0x1000);
  CHECK(mappings[0].path == "/usr/bin/my prog");
  CHECK(mappings[1].path.empty());
  CHECK(mappings[2].path == "/memfd:buffer");
  CHECK(mappings[2].deleted);
  CHECK(mappings[3].path == "[stack]");
  CHECK_FALSE(mappings[4].readable);
  CHECK(mappings[4].range.end == RemoteAddress(0xffffffffff601000));
}

TEST_CASE("parse_maps skips hostile lines with a warning and keeps the good ones") {
  std::string long_path(100000, 'x');
  std::string text =
      "garbage\n"
      "\n"
      "1000-2000\n"                                                   // too few fields
      "2000-1000 r--p 00000000 00:00 0\n"                             // reversed
      "1000-1000 r--p 00000000 00:00 0\n"                             // empty
      "12345678901234567-12345678901234568 r--p 00000000 00:00 0\n"   // 17 hex digits
      "zz-3000 r--p 00000000 00:00 0\n"
      "3000-4000 rw 00000000 00:00 0\n"                               // short permissions
      "3000-4000 rw-p 0000000g 00:00 0\n"                             // bad offset
      "3000-4000 rw-p 00000000 0000 0\n"                              // bad device
      "3000-4000 rw-p 00000000 00:00 12a\n"                           // bad inode
      "5000-6000 r--p 00000000 00:00 0 " + long_path + "\n"
      "4000-5000 r--p 00000000 00:00 0 \x01\xff\n";
  std::vector<std::string> warnings;
  auto mappings = parse_maps(text, &warnings);
  REQUIRE(mappings.size() == 2);
  CHECK(mappings[0].range.start == RemoteAddress(0x4000));  // sorted even though the text was not
  CHECK(mappings[1].path.size() == long_path.size());
  CHECK(warnings.size() == 10);
  CHECK_THAT(warnings[0], Catch::Contains("maps line 1"));
}

TEST_CASE("parse_maps survives thousands of randomly mutated lines") {
  std::string seed_text = "7f0000000000-7f0000021000 rw-p 00001000 fd:01 1234   /lib/x86_64-linux-gnu/libc.so.6\n";
  std::mt19937 random(1234);
  for (int round = 0; round < 3000; ++round) {
    std::string text = seed_text + seed_text;
    int edits = 1 + static_cast<int>(random() % 6);
    for (int e = 0; e < edits; ++e) {
      std::size_t at = random() % text.size();
      switch (random() % 3) {
        case 0: text[at] = static_cast<char>(random()); break;
        case 1: text.erase(at, 1 + random() % 8); break;
        default: text.insert(at, std::string(1 + random() % 4, static_cast<char>(random()))); break;
      }
      if (text.empty()) text = "-";
    }
    std::vector<std::string> warnings;
    auto mappings = parse_maps(text, &warnings);
    for (const Mapping& mapping : mappings) REQUIRE(mapping.range.start < mapping.range.end);
  }
}

TEST_CASE("read_maps of this process finds the test executable mapped executable") {
  auto mappings = read_maps(::getpid());
  REQUIRE(mappings);
  auto exe = exe_path(::getpid());
  REQUIRE(exe);
  bool found = false;
  for (const Mapping& mapping : *mappings) found |= mapping.path == *exe && mapping.executable;
  CHECK(found);
}

TEST_CASE("parse_syscall understands running threads, threads in a syscall and threads blocked outside one") {
  auto running = parse_syscall("running\n");
  REQUIRE(running);
  CHECK(running->running);

  auto in_syscall = parse_syscall("230 0x0 0x0 0x7ffc02b74a60 0x7ffc02b74aa0 0x0 0x0 0x7ffc02b74a48 0x7f5de3651503\n");
  REQUIRE(in_syscall);
  CHECK_FALSE(in_syscall->running);
  CHECK(in_syscall->syscall_number == 230);
  CHECK(in_syscall->stack_pointer == 0x7ffc02b74a48);
  CHECK(in_syscall->program_counter == 0x7f5de3651503);

  auto outside = parse_syscall("-1 0x7ffc02b74a48 0x7f5de3651503");
  REQUIRE(outside);
  CHECK_FALSE(outside->syscall_number);
  CHECK(outside->program_counter == 0x7f5de3651503);

  CHECK_FALSE(parse_syscall(""));
  CHECK_FALSE(parse_syscall("7 0x1 0x2"));
  CHECK_FALSE(parse_syscall("x 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8"));
  CHECK_FALSE(parse_syscall("1 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0xzz"));
  CHECK_FALSE(parse_syscall("1 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 0x9"));
  CHECK_FALSE(parse_syscall("-5 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8"));
}

TEST_CASE("the /proc readers describe a live multi-threaded process") {
  TestProcess target({bin("threads_blocked"), "3"});
  auto ready = target.wait_for("READY");
  REQUIRE(ready);

  auto tids = list_threads(target.pid());
  REQUIRE(tids);
  CHECK(tids->size() == 4);
  CHECK(tids->front() == target.pid());

  std::vector<std::string> names;
  for (int tid : *tids) names.push_back(thread_name(target.pid(), tid).value_or("?"));
  CHECK(names[0] == "threads_blocked");
  CHECK(std::count(names.begin(), names.end(), "worker-1") == 1);

  auto exe = exe_path(target.pid());
  REQUIRE(exe);
  CHECK(*exe == bin("threads_blocked"));

  auto status = read_status(target.pid());
  REQUIRE(status);
  CHECK(status->tracer_pid == 0);
  CHECK(status->parent_pid == ::getpid());
  CHECK(status->name == "threads_blocked");

  // A worker blocked in read(): the kernel saved its sp and pc. READY comes a moment before the last worker is
  // in read(), so wait for it.
  auto syscall_state = read_syscall(target.pid(), tids->back());
  for (int attempt = 0; attempt < 400 && !(syscall_state && syscall_state->syscall_number == 0); ++attempt) {
    ::usleep(5000);
    syscall_state = read_syscall(target.pid(), tids->back());
  }
  REQUIRE(syscall_state);
  CHECK(syscall_state->syscall_number == 0);  // read
  CHECK(syscall_state->stack_pointer != 0);
}

TEST_CASE("the /proc readers say no_such_process for a pid that does not exist") {
  constexpr int kMissing = 0x3ffffff0;  // above pid_max's largest possible value (4194304)
  CHECK(read_status(kMissing).error().code == ErrorCode::no_such_process);
  CHECK(list_threads(kMissing).error().code == ErrorCode::no_such_process);
  CHECK(read_maps(kMissing).error().code == ErrorCode::no_such_process);
  CHECK(exe_path(kMissing).error().code == ErrorCode::no_such_process);
}
