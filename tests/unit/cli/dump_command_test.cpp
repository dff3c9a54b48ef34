// End-to-end tests of `fiberscope dump` on real programs (tests/programs/fibers, tests/programs/threads).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "cli/dump_command.h"
#include "target/test_process.h"

using namespace fiberscope;
using namespace fiberscope::cli;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

struct DumpRun {
  int exit_code;
  std::string out;
  std::string err;
};

DumpRun dump(int pid, DumpOptions options = {}) {
  options.pid = pid;
  DumpRun run;
  run.exit_code = run_dump(options, run.out, run.err);
  return run;
}

// The text of one fiber's entry ("fiber N ..." up to the blank line).
std::string fiber_entry(const std::string& text, const std::string& name) {
  auto start = text.find("\"" + name + "\" [");
  if (start == std::string::npos) return {};
  start = text.rfind("fiber ", start);
  return text.substr(start, text.find("\n\n", start) - start);
}

// The function names of an entry's frame lines, in order.
std::vector<std::string> functions(const std::string& entry) {
  std::vector<std::string> names;
  std::istringstream lines(entry);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '\t' || line.starts_with("created by")) continue;
    // The name ends at the parameter list: the first '(' not opening "(anonymous namespace)".
    std::size_t open = line.find('(');
    while (open != std::string::npos && line.compare(open, 21, "(anonymous namespace)") == 0)
      open = line.find('(', open + 21);
    names.push_back(line.substr(0, open));
  }
  return names;
}

// Index of the first name containing `part` at or after `from`, or npos.
std::size_t find_function(const std::vector<std::string>& names, const std::string& part, std::size_t from = 0) {
  for (std::size_t i = from; i < names.size(); ++i)
    if (names[i].find(part) != std::string::npos) return i;
  return std::string::npos;
}

DumpOptions ungrouped() {
  DumpOptions options;
  options.grouping = report::TextOptions::Grouping::off;
  return options;
}

DumpOptions with_format(DumpOptions::Format format) {
  DumpOptions options;
  options.format = format;
  return options;
}

DumpOptions only(std::uint64_t fiber_id, std::size_t max_depth) {
  DumpOptions options;
  options.only_fiber = fiber_id;
  options.max_depth = max_depth;
  return options;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("every fiber state is dumped with its call chain and arguments at -O0 and -O2") {
  for (const char* program : {"fiber_states_O0", "fiber_states_O2"}) {
    INFO(program);
    TestProcess target({bin(program)});
    REQUIRE(target.wait_for("READY"));
    DumpRun run = dump(target.pid(), ungrouped());
    INFO(run.out << run.err);
    CHECK(run.exit_code == kExitClean);
    CHECK(std::regex_search(run.out, std::regex("^pid [0-9]+ .*: 7 fibers, [0-9]+ threads, paused [0-9.]+ ms\n")));

    const std::string waiter = fiber_entry(run.out, "chan-waiter");
    CHECK(has(waiter, "[chan receive, "));
    // Parameter order follows the DWARF, which -O2's clones may reorder.
    CHECK(std::regex_search(waiter, std::regex(R"(chan_level_two\((depth=7, tag=4660|tag=4660, depth=7)\))")));
    CHECK(has(waiter, "chan_level_one(depth=7)"));
    CHECK(has(waiter, "fiber_states.cpp:"));
    CHECK(has(waiter, "[fiber stack]"));
    CHECK(has(waiter, "created by "));
    auto chain = functions(waiter);
    CHECK(find_function(chain, "chan_level_two") < find_function(chain, "chan_level_one"));

    CHECK(has(fiber_entry(run.out, "sleeper"), "sleep_outer(seconds=3600)"));
    CHECK(has(fiber_entry(run.out, "sleeper"), "[sleep, "));
    CHECK(has(fiber_entry(run.out, "mutex-waiter"), "mutex_level_one(id=42)"));
    CHECK(has(fiber_entry(run.out, "mutex-waiter"), "[mutex, "));
    CHECK(has(fiber_entry(run.out, "syscaller"), "[syscall, "));
    CHECK(has(fiber_entry(run.out, "syscaller"), "syscall_level_one("));
    const std::string runner = fiber_entry(run.out, "runner");
    CHECK(std::regex_search(runner, std::regex(R"(\[running, [^\]]*thread [0-9]+\])")));
    CHECK(has(runner, "runner_level_one(marker=99)"));
  }
}

TEST_CASE("an always_inline function shows as an inlined frame at -O2") {
  TestProcess target({bin("fiber_states_O2")});
  REQUIRE(target.wait_for("READY"));
  DumpRun run = dump(target.pid(), ungrouped());
  const std::string sleeper = fiber_entry(run.out, "sleeper");
  INFO(sleeper);
  CHECK(has(sleeper, "sleep_inlined(seconds=3600) (inlined)"));
  auto chain = functions(sleeper);
  CHECK(find_function(chain, "sleep_inlined") + 1 == find_function(chain, "sleep_outer"));
}

TEST_CASE("a nested foreign call is stitched: callback frames, C frames, then the foreign-call frame and callers") {
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  DumpRun run = dump(target.pid(), ungrouped());
  const std::string entry = fiber_entry(run.out, "nested-ffi");
  INFO(entry);
  CHECK(has(entry, "[foreign, "));
  auto chain = functions(entry);
  const std::size_t inner_c = find_function(chain, "c_block_in_poll");
  const std::size_t callback = find_function(chain, "ffi_callback", inner_c);
  const std::size_t outer_c = find_function(chain, "c_call_back", callback);
  const std::size_t c_outer = find_function(chain, "c_outer", outer_c);
  const std::size_t caller = find_function(chain, "ffi_level_one", c_outer);
  REQUIRE(inner_c != std::string::npos);
  CHECK(callback != std::string::npos);
  CHECK(outer_c != std::string::npos);
  CHECK(c_outer != std::string::npos);
  CHECK(caller != std::string::npos);
  // C frames live on the worker's system stack, fiber frames on the fiber's.
  CHECK(std::regex_search(entry, std::regex(R"(c_block_in_poll\([^\n]*\n\t[^\n]*\[system stack\])")));
  CHECK(std::regex_search(entry, std::regex(R"(ffi_callback\([^\n]*\n\t[^\n]*\[fiber stack\])")));
  CHECK(std::regex_search(entry, std::regex(R"(ffi_level_one\([^\n]*\n\t[^\n]*\[fiber stack\])")));
}

TEST_CASE("a stripped binary still has its fiber table found through .dynsym") {
  TestProcess target({bin("fiber_states_stripped")});
  REQUIRE(target.wait_for("READY"));
  DumpRun run = dump(target.pid(), ungrouped());
  INFO(run.out << run.err);
  CHECK(has(run.out, ": 7 fibers, "));
  CHECK(has(run.out, "warning: no DWARF in "));
  CHECK(has(fiber_entry(run.out, "chan-waiter"), "[chan receive, "));
  CHECK_FALSE(has(run.out, "no fiber table"));
}

TEST_CASE("a process without the runtime gets its thread stacks and a note") {
  TestProcess target({bin("threads_blocked"), "3"});
  if (!target.wait_for("READY")) {
    WARN("skipped: tests/programs/threads/threads_blocked (another area's program) did not start");
    return;
  }
  DumpRun run = dump(target.pid());
  INFO(run.out << run.err);
  CHECK(run.exit_code == kExitClean);
  CHECK(has(run.out, "warning: no fiber table found (not built on fiberscope runtime?)"));
  CHECK(has(run.out, "0 fibers, 4 threads"));
  CHECK(has(run.out, "[thread stack]"));
  CHECK(has(run.out, "main"));
}

TEST_CASE("a fiber table with a bad magic is an error and the threads are still dumped") {
  TestProcess target({bin("fiber_states_O0"), "--corrupt=magic"});
  REQUIRE(target.wait_for("CORRUPTED"));
  DumpRun run = dump(target.pid());
  INFO(run.out << run.err);
  CHECK(run.exit_code == kExitError);
  CHECK(has(run.err, "bad magic"));
  CHECK(has(run.out, "thread "));
}

TEST_CASE("garbage fiber records are reported while every other fiber is dumped") {
  TestProcess target({bin("fiber_states_O0"), "--corrupt=records"});
  REQUIRE(target.wait_for("CORRUPTED"));
  DumpRun run = dump(target.pid(), ungrouped());
  INFO(run.out << run.err);
  CHECK(run.exit_code == kExitPartial);
  CHECK(has(run.out, ": 5 fibers, "));
  CHECK(has(run.out, "fiber record 1 at "));
  CHECK(has(run.out, "state value 77"));
  CHECK(has(run.out, "fiber record 2 at "));
  // Records 1 and 2 (chan-waiter, sleeper) are garbage; the ones after them still read.
  CHECK(has(fiber_entry(run.out, "mutex-waiter"), "mutex_level_one(id=42)"));
  CHECK(fiber_entry(run.out, "sleeper").empty());
}

TEST_CASE("a cyclic transition chain is reported under its fiber without hanging") {
  TestProcess target({bin("fiber_states_O0"), "--corrupt=cycle"});
  REQUIRE(target.wait_for("CORRUPTED"));
  DumpRun run = dump(target.pid(), ungrouped());
  const std::string entry = fiber_entry(run.out, "nested-ffi");
  INFO(run.out);
  CHECK(run.exit_code == kExitPartial);
  CHECK(has(entry, "error: fiber "));
  CHECK(has(entry, "does not move outwards"));
  CHECK(has(fiber_entry(run.out, "chan-waiter"), "chan_level_one(depth=7)"));
}

TEST_CASE("json, folded, --fiber and --depth work on a live process") {
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  DumpRun json = dump(target.pid(), with_format(DumpOptions::Format::json));
  CHECK(json.exit_code == kExitClean);
  CHECK(json.out.starts_with("{\n  \"schema_version\": 2,"));
  CHECK(has(json.out, "\"name\": \"chan-waiter\""));
  CHECK(has(json.out, "\"wait_reason\": \"chan receive\""));
  CHECK(std::regex_search(json.out, std::regex(R"("name": "depth",\s*"value": "7",\s*"status": "ok")")));

  DumpRun folded = dump(target.pid(), with_format(DumpOptions::Format::folded));
  CHECK(std::regex_search(folded.out, std::regex(R"(chan_level_one[^;]*;[^\n]*chan_level_two[^\n]* 1\n)")));

  DumpRun one = dump(target.pid(), only(4, 3));
  INFO(one.out);
  CHECK(has(one.out, ": 1 fiber, 0 threads"));
  CHECK(has(one.out, "\"mutex-waiter\""));
  CHECK(has(one.out, "...additional frames elided (--depth)..."));
  CHECK_FALSE(has(one.out, "no frame base"));  // the last frame shown still has its CFA, so its arguments
  DumpRun deeper = dump(target.pid(), only(2, 3));  // switch_away (inlined), park, recv
  CHECK(std::regex_search(deeper.out,
                          std::regex(R"(ChannelCore<int>::recv\(\)\(this=0x[0-9a-f]+\)\n[^\n]*\n\.\.\.additional)")));

  DumpRun missing = dump(target.pid(), only(999, 1024));
  CHECK(missing.exit_code == kExitError);
  CHECK(has(missing.err, "no live fiber with id 999"));
}

TEST_CASE("a pid that does not exist is a one-line error with exit code 2") {
  DumpRun run = dump(999'999'999 % 4'000'000 + 4'000'000);
  CHECK(run.exit_code == kExitError);
  CHECK(run.out.empty());
  CHECK(has(run.err, "no process with pid"));
  CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
}

TEST_CASE("dump arguments are parsed strictly") {
  bool help = false;
  CHECK_FALSE(parse_dump_arguments({}, help));
  CHECK_FALSE(parse_dump_arguments({"12", "--format", "xml"}, help));
  CHECK_FALSE(parse_dump_arguments({"12", "--depth", "0"}, help));
  CHECK_FALSE(parse_dump_arguments({"12", "--bogus"}, help));
  CHECK_FALSE(parse_dump_arguments({"abc"}, help));
  auto options = parse_dump_arguments({"12", "--format", "folded", "--no-stop", "--fiber", "3", "--group"}, help);
  REQUIRE(options);
  CHECK(options->pid == 12);
  CHECK(options->format == DumpOptions::Format::folded);
  CHECK_FALSE(options->stop);
  CHECK(options->only_fiber == 3u);
  CHECK(options->grouping == report::TextOptions::Grouping::on);
  CHECK(parse_dump_arguments({"--help"}, help));
  CHECK(help);
}

TEST_CASE("the fiberscope executable explains itself and its exit codes") {
  auto run = [](const std::string& arguments) {
    std::string output;
    FILE* pipe = ::popen((bin("fiberscope") + " " + arguments + " 2>&1").c_str(), "r");
    char buffer[4096];
    while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
    const int status = ::pclose(pipe);
    return std::make_pair(WEXITSTATUS(status), output);
  };
  auto [help_code, help] = run("--help");
  CHECK(help_code == 0);
  CHECK(has(help, "dump PID"));
  auto [dump_help_code, dump_help] = run("dump --help");
  CHECK(dump_help_code == 0);
  for (const char* part : {"--format text|json|folded", "--no-stop", "--fiber ID", "--depth N", "exit codes",
                           "  3  partial"})
    CHECK(has(dump_help, part));
  auto [version_code, version] = run("--version");
  CHECK(version_code == 0);
  CHECK(has(version, "debug ABI version 1"));
  auto [bad_code, bad] = run("frobnicate");
  CHECK(bad_code == 2);
  CHECK(has(bad, "unknown command"));
}

TEST_CASE("grouped text collapses fibers parked at one place and still prints the arguments of fibers shown alone") {
  TestProcess target({bin("fiber_states_O0"), "--sleepers=5"});
  REQUIRE(target.wait_for("READY"));
  DumpOptions grouped;
  grouped.grouping = report::TextOptions::Grouping::on;
  DumpRun text = dump(target.pid(), grouped);
  INFO(text.out);
  CHECK(text.exit_code == kExitClean);
  // The five "sleeper-N" run the same code and the runtime parks every fiber through one switch site: one group
  // of five (a fiber left alone in a group would still get its arguments).
  CHECK(std::regex_search(text.out, std::regex(R"(\n5 fibers \[sleep\]: [0-9, -]+\n)")));
  for (int k = 1; k <= 5; ++k) {
    const std::string entry = fiber_entry(text.out, "sleeper-" + std::to_string(k));
    CHECK((entry.empty() || has(entry, "sleep_outer(seconds=360" + std::to_string(k) + ")")));
  }
  const std::string waiter = fiber_entry(text.out, "chan-waiter");
  CHECK(has(waiter, "chan_level_two(depth=7, tag=4660)"));
  CHECK(has(fiber_entry(text.out, "mutex-waiter"), "mutex_level_one(id=42)"));

  // Ungrouped, every sleeper has its own argument.
  DumpRun each = dump(target.pid(), ungrouped());
  CHECK(has(fiber_entry(each.out, "sleeper-3"), "sleep_outer(seconds=3603)"));

  DumpRun folded = dump(target.pid(), with_format(DumpOptions::Format::folded));
  CHECK(std::regex_search(folded.out, std::regex(R"(sleep_outer[^\n]* 5\n)")));
}

TEST_CASE("a binary replaced on disk while it runs (an upgrade in place) is still read: from the inode it mapped") {
  // The running copy and the file now at its path are different programs: reading the path would name nothing
  // right and miss the fiber table.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("fiberscope-replaced-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path exe = dir / "server";
  std::filesystem::copy_file(bin("fiber_states_O0"), exe, std::filesystem::copy_options::overwrite_existing);
  {
    TestProcess target({exe.string()});
    REQUIRE(target.wait_for("READY"));
    std::filesystem::remove(exe);
    std::filesystem::copy_file(bin("threads_blocked"), exe);

    DumpRun run = dump(target.pid(), ungrouped());
    INFO(run.out << run.err);
    CHECK(run.exit_code == kExitClean);
    CHECK(has(run.out, "warning: " + exe.string() + " was replaced or deleted after the process mapped it: read "
                       "from /proc/" + std::to_string(target.pid()) + "/map_files/"));
    CHECK(has(run.out, ": 7 fibers,"));
    CHECK(has(fiber_entry(run.out, "chan-waiter"), "chan_level_two(depth=7, tag=4660)"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a lambda's frame has its full name and source line, and 'created by' names the function that spawned") {
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  DumpRun run = dump(target.pid(), ungrouped());
  const std::string waiter = fiber_entry(run.out, "chan-waiter");
  INFO(waiter);
  // The lambda given to spawn is defined inside main's lambda: DWARF nests its definition there.
  CHECK(std::regex_search(waiter, std::regex(R"(\nmain::\{lambda\(\)#1\}::operator\(\)\(\) const::\{lambda\(\)#1\})"
                                             R"(::operator\(\)\(\) const\(__closure=0x[0-9a-f]+\)\n\t[^\n]*)"
                                             R"(fiber_states\.cpp:[0-9]+ \[fiber stack\]\n)")));
  // The runtime's spawn wrapper is inlined at the call: the spawning function is the frame around it.
  CHECK(std::regex_search(waiter, std::regex(R"(\ncreated by main::\{lambda\(\)#1\}::operator\(\)\(\) const at )"
                                             R"([^\n]*fiber_states\.cpp:[0-9]+$)")));
}
