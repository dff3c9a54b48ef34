// Post-mortem end to end, through the CLI's run_dump / run_check / run_gcore: the same output from a core as live
// (cores of one stopped process by gdb's gcore and by fiberscope gcore), kernel cores of fibers that crashed, gdb
// reading fiberscope's cores, and a hostile core's error as the user sees it.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

#include "cli/check_command.h"
#include "cli/dump_command.h"
#include "cli/gcore_command.h"
#include "core/core_test_support.h"
#include "target/test_process.h"
#include "ui/top_command.h"

using namespace fiberscope;
using namespace fiberscope::cli;
using fiberscope::test::TempDir;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

struct Run {
  int exit_code = 0;
  std::string out;
  std::string err;
};

Run dump_core(const std::string& core, DumpOptions options = {}) {
  options.core_path = core;
  Run run;
  run.exit_code = run_dump(options, run.out, run.err);
  return run;
}

Run dump_live(int pid, DumpOptions options = {}) {
  options.pid = pid;
  Run run;
  run.exit_code = run_dump(options, run.out, run.err);
  return run;
}

Run check(std::optional<int> pid, std::optional<std::string> core) {
  CheckOptions options;
  options.format = CheckOptions::Format::json;
  if (pid) options.pid = *pid;
  options.core_path = core;
  Run run;
  run.exit_code = run_check(options, run.out, run.err);
  return run;
}

Run gcore(int pid, const std::string& path, bool fibers_as_threads = false) {
  Run run;
  run.exit_code =
      run_gcore({.pid = pid, .output_path = path, .fibers_as_threads = fibers_as_threads}, run.out, run.err);
  return run;
}

DumpOptions json() {
  DumpOptions options;
  options.format = DumpOptions::Format::json;
  return options;
}

DumpOptions ungrouped_text() {
  DumpOptions options;
  options.grouping = report::TextOptions::Grouping::off;
  return options;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A command's exit status and everything it printed (stdout and stderr).
Run shell(const std::string& command) {
  Run run;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {127, "", "popen failed"};
  char buffer[4096];
  while (std::size_t count = std::fread(buffer, 1, sizeof buffer, pipe)) run.out.append(buffer, count);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return run;
}

bool gdb_available() { return shell("gdb --version").exit_code == 0; }

// The JSON of a dump or check minus what differs between a live snapshot and a core of it by design: the source
// (live, or core with its path) and the pause (none for a core),
// time in state (a core is measured against the runtime's clock_ns, a
// live process against CLOCK_MONOTONIC at capture), thread names (a core records none) and
// warnings (a core's mention the files it relies on).
std::string without_volatile_fields(std::string json_text) {
  json_text = std::regex_replace(json_text, std::regex(R"re(("tid":\s*[0-9]+,\s*"name":\s*)"[^"]*")re"), "$1_");
  json_text = std::regex_replace(json_text, std::regex(R"re("source":\s*\{[^}]*\})re"), "\"source\":_");
  json_text = std::regex_replace(json_text, std::regex(R"re("pause_ms":\s*(null|[0-9.eE+-]+))re"), "\"pause_ms\":_");
  json_text = std::regex_replace(json_text, std::regex(R"re("time_in_state_ns":\s*(null|[0-9]+))re"),
                                 "\"time_in_state_ns\":_");
  json_text = std::regex_replace(json_text, std::regex(R"re("warnings":\s*\[[^\]]*\])re"), "\"warnings\":_");
  return json_text;
}

// Stops `pid` with SIGSTOP and waits until /proc says it is stopped (at most 5 s).
bool stop_process(int pid) {
  if (::kill(pid, SIGSTOP) != 0) return false;
  for (int attempt = 0; attempt < 500; ++attempt) {
    auto state = target::thread_state(pid, pid);
    if (state && *state == 'T') return true;
    ::usleep(10 * 1000);
  }
  return false;
}

// The line of a dump's text that starts the entry of the fiber named `name`, and the entry up to its blank line.
std::string fiber_entry(const std::string& text, const std::string& name) {
  auto start = text.find("\"" + name + "\" [");
  if (start == std::string::npos) return {};
  start = text.rfind("fiber ", start);
  return text.substr(start, text.find("\n\n", start) - start);
}

bool sanitized_build() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

// Why cores of the test programs built on the runtime are not written here, or nothing. In a sanitizer build they
// are instrumented like the runtime and reserve terabytes of readable shadow memory, which a core writer (ours or
// gdb's) streams up to its cap: minutes per core.
std::optional<std::string> sanitized_targets() {
  if (!sanitized_build()) return std::nullopt;
  return "sanitizer build: the target programs reserve terabytes of shadow memory, too much to write as a core";
}

#define SKIP_IF_SANITIZED_TARGETS()                 \
  if (auto why = sanitized_targets()) {             \
    WARN("skipped: " << *why);                      \
    return;                                         \
  }

// A kernel core of `fiber_crashers MODE` in `dir`, with FIBERSCOPE_FAULTS set to `faults` if not empty.
test::KernelCore crash_fiber(const std::string& mode, const std::string& dir, const std::string& faults = {}) {
  test::KernelCore core;
  if (sanitized_build()) {
    core.unavailable = "sanitizer build: ASan catches the SIGSEGV itself and turns core dumps off";
    return core;
  }
  if (auto why = test::kernel_core_unavailable()) {
    core.unavailable = *why;
    return core;
  }
  if (!faults.empty()) ::setenv("FIBERSCOPE_FAULTS", faults.c_str(), 1);
  core.run = test::run_to_end(bin("fiber_crashers"), mode, dir);
  ::unsetenv("FIBERSCOPE_FAULTS");
  auto found = test::find_core(dir);
  if (!found) {
    core.unavailable = "the crash left no core in " + dir + " (is RLIMIT_CORE capped by the hard limit?)";
    return core;
  }
  core.path = *found;
  return core;
}

}  // namespace

TEST_CASE("a core of a stopped process dumps the same fibers and frames as the live process, from gdb's gcore and "
          "fiberscope gcore") {
  SKIP_IF_SANITIZED_TARGETS()
  const bool with_gdb = gdb_available();
  for (const char* program : {"fiber_states_O0", "fiber_states_O2"}) {
    INFO(program);
    TempDir dir;
    TestProcess target({bin(program)});
    REQUIRE(target.wait_for("READY"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // every fiber reaches its blocking call
    REQUIRE(stop_process(target.pid()));

    Run live = dump_live(target.pid(), json());
    REQUIRE(live.exit_code == kExitClean);
    Run live_text = dump_live(target.pid(), ungrouped_text());

    const std::string ours = dir.path() + "/fiberscope.core";
    Run written = gcore(target.pid(), ours);
    INFO(written.out << written.err);
    REQUIRE(written.exit_code == kExitClean);
    CHECK(std::regex_search(written.out, std::regex("^wrote .*fiberscope.core: [0-9.]+ [kM]B \\([0-9.]+ [kM]B of data, "
                                                    "the rest holes; [0-9]+ threads\\), paused [0-9.]+ ms\n$")));
    Run from_ours = dump_core(ours, json());
    INFO(from_ours.err);
    CHECK(from_ours.exit_code == kExitClean);
    CHECK(without_volatile_fields(from_ours.out) == without_volatile_fields(live.out));

    // Text: the same entries, the pause line says where the snapshot came from.
    Run ours_text = dump_core(ours, ungrouped_text());
    CHECK(std::regex_search(ours_text.out, std::regex("^pid [0-9]+ .*: 7 fibers, [0-9]+ threads, core file\n")));
    for (const char* name : {"chan-waiter", "sleeper", "mutex-waiter", "syscaller", "runner", "nested-ffi"}) {
      auto strip_header = [](const std::string& entry) { return entry.substr(entry.find('\n')); };
      const std::string live_entry = fiber_entry(live_text.out, name), core_entry = fiber_entry(ours_text.out, name);
      REQUIRE(!core_entry.empty());
      CHECK(strip_header(core_entry) == strip_header(live_entry));
    }
    // Time in state from a core is measured against the runtime's clock: known, and not absurd.
    CHECK(std::regex_search(fiber_entry(ours_text.out, "sleeper"), std::regex(R"(\[sleep, [0-9]+(ms|s)\])")));

    if (with_gdb) {
      const std::string gdbs = dir.path() + "/gdb.core";
      Run made = shell("gdb -batch -nx -p " + std::to_string(target.pid()) + " -ex 'gcore " + gdbs + "'");
      INFO(made.out);
      REQUIRE(std::filesystem::exists(gdbs));
      Run from_gdb = dump_core(gdbs, json());
      INFO(from_gdb.err);
      CHECK(from_gdb.exit_code == kExitClean);
      CHECK(without_volatile_fields(from_gdb.out) == without_volatile_fields(live.out));
    } else {
      WARN("gdb is not installed: the gdb gcore half of this test was skipped");
    }
    ::kill(target.pid(), SIGCONT);
  }
}

TEST_CASE("a stripped program and a program without fibers dump the same from a core as live, in JSON and folded") {
  SKIP_IF_SANITIZED_TARGETS()
  for (const char* program : {"fiber_states_stripped", "threads_blocked"}) {
    INFO(program);
    TempDir dir;
    TestProcess target({bin(program)});
    REQUIRE(target.wait_for("READY"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(stop_process(target.pid()));
    DumpOptions folded;
    folded.format = DumpOptions::Format::folded;
    Run live = dump_live(target.pid(), json()), live_folded = dump_live(target.pid(), folded);
    const std::string core = dir.path() + "/core";
    REQUIRE(gcore(target.pid(), core).exit_code == kExitClean);
    Run from_core = dump_core(core, json()), core_folded = dump_core(core, folded);
    INFO(from_core.err);
    CHECK(from_core.exit_code == live.exit_code);
    CHECK(without_volatile_fields(from_core.out) == without_volatile_fields(live.out));
    CHECK(core_folded.out == live_folded.out);
    CHECK(!core_folded.out.empty());
    ::kill(target.pid(), SIGCONT);
  }
}

TEST_CASE("check gives the same findings from a core as live, for each fault the runtime can commit") {
  SKIP_IF_SANITIZED_TARGETS()
  struct Scenario {
    std::string mode, faults;
    int expected_exit;
  };
  const std::vector<Scenario> scenarios = {
      {"stale-frame", "stale-syscall-frame", kExitFindings},
      {"blocked-foreign", "undead-args", kExitFindings},
      {"corrupt=outside", "", kExitFindings},
      {"healthy", "", kExitClean},
  };
  for (const Scenario& scenario : scenarios) {
    INFO(scenario.mode << " FIBERSCOPE_FAULTS=" << scenario.faults);
    TempDir dir;
    if (!scenario.faults.empty()) ::setenv("FIBERSCOPE_FAULTS", scenario.faults.c_str(), 1);
    TestProcess target({bin("check_scenarios"), scenario.mode});
    ::unsetenv("FIBERSCOPE_FAULTS");
    REQUIRE(target.wait_for(scenario.mode.starts_with("corrupt") ? "CORRUPTED" : "READY"));
    REQUIRE(stop_process(target.pid()));
    Run live = check(target.pid(), std::nullopt);
    INFO(live.out << live.err);
    CHECK(live.exit_code == scenario.expected_exit);
    const std::string core = dir.path() + "/core";
    REQUIRE(gcore(target.pid(), core).exit_code == kExitClean);
    Run from_core = check(std::nullopt, core);
    INFO(from_core.out << from_core.err);
    CHECK(from_core.exit_code == live.exit_code);
    CHECK(without_volatile_fields(from_core.out) == without_volatile_fields(live.out));
    ::kill(target.pid(), SIGCONT);
  }
}

TEST_CASE("a fiber that crashed is shown as the crashed one, with the frame that faulted, from the kernel's core") {
  struct Crash {
    std::string mode, fiber, frame, signal;
  };
  const std::vector<Crash> crashes = {
      {"segv-fiber", "segv-fiber", "(anonymous namespace)::crash_in_fiber", "SIGSEGV at 0x0"},
      {"segv-callback", "segv-callback", "(anonymous namespace)::crash_in_callback", "SIGSEGV at 0x0"},
      {"overflow", "overflow", "(anonymous namespace)::recurse_forever", "SIGSEGV at 0x"},
  };
  for (const Crash& crash : crashes) {
    INFO(crash.mode);
    TempDir dir;
    test::KernelCore core = crash_fiber(crash.mode, dir.path());
    if (!core.unavailable.empty()) {
      WARN("skipped: " << core.unavailable);
      return;
    }
    Run run = dump_core(core.path, ungrouped_text());
    INFO(run.out << run.err);
    CHECK((run.exit_code == kExitClean || run.exit_code == kExitPartial));
    const std::string entry = fiber_entry(run.out, crash.fiber);
    REQUIRE(!entry.empty());
    CHECK(std::regex_search(entry, std::regex("^fiber [0-9]+ \"" + crash.fiber + "\" \\[running, crashed: " +
                                              crash.signal + "[0-9a-f]*, [0-9hms]+, thread [0-9]+\\]:\n")));
    // The frame that faulted is the first of the fiber's stack (no signal-handler frames: the default action).
    CHECK(entry.substr(entry.find('\n') + 1).starts_with(crash.frame));
    CHECK(has(run.out, "warning: thread "));
    CHECK(has(run.out, " crashed: SIGSEGV"));
    // The parked fibers are all there too.
    CHECK(has(run.out, "\"bystander\" [sleep"));
    // --fiber leaves the threads out; the crashed fiber is still found (from the runtime's worker records).
    DumpOptions only = ungrouped_text();
    const std::string fiber_id = entry.substr(6, entry.find(' ', 6) - 6);
    only.only_fiber = std::stoull(fiber_id);
    CHECK(has(dump_core(core.path, only).out, "[running, crashed: SIGSEGV"));
    // JSON: the crash has fields of its own; the fiber keeps the runtime's state and wait reason.
    Run as_json = dump_core(core.path, json());
    INFO(as_json.out);
    CHECK(has(as_json.out, "\"source\": {\n    \"kind\": \"core\",\n    \"core_path\": \"" + core.path + "\""));
    CHECK(std::regex_search(as_json.out, std::regex(R"re("crash": \{\s*"tid": [0-9]+,\s*"signal": 11,\s*)re"
                                                    R"re("signal_name": "SIGSEGV",\s*"fault_address": "0x)re" +
                                                    std::string(crash.signal == "SIGSEGV at 0x0" ? "0\"" : "") +
                                                    R"re([^}]*"fiber": )re" + fiber_id + "\\s*\\}")));
    CHECK(std::regex_search(as_json.out, std::regex(R"re("id": )re" + fiber_id + R"re(,\s*"name": ")re" + crash.fiber +
                                                    R"re(",\s*"state": "running",\s*"wait_reason": null,)re")));
    CHECK(std::regex_search(as_json.out, std::regex(R"re("record": (null|"[a-z ]+"),\s*"crashed": true)re")));
    CHECK(!has(as_json.out, "crashed:"));
  }
}

TEST_CASE("the callback's crash is unwound through the C frames back to the fiber that made the foreign call") {
  TempDir dir;
  test::KernelCore core = crash_fiber("segv-callback", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  Run run = dump_core(core.path, ungrouped_text());
  const std::string entry = fiber_entry(run.out, "segv-callback");
  INFO(entry);
  const auto callback = entry.find("crash_in_callback");
  const auto c_frame = entry.find("crasher_c_call_back", callback);
  CHECK(callback != std::string::npos);
  CHECK(c_frame != std::string::npos);
  CHECK(has(entry.substr(c_frame), "[system stack]"));
  CHECK(has(entry.substr(c_frame), "fiber::foreign_call"));
}

// At the abort the fiber's thread is inside the runtime's exit check (FIBERSCOPE_EXITSYSCALL_SYMBOL), below the
// stale syscall_sp: the fiber's own deepest live frame is that check's caller, so the core's check reports rule 2
// with the popped region, the same finding as the live check of the blocked scenario.
TEST_CASE("the runtime's 'syscall frame is no longer valid' abort leaves a core whose check reports "
          "the invalid frame") {
  TempDir dir;
  test::KernelCore core = crash_fiber("stale-frame", dir.path(), "stale-syscall-frame");
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  Run dumped = dump_core(core.path, ungrouped_text());
  INFO(dumped.out << dumped.err);
  const std::string entry = fiber_entry(dumped.out, "stale-frame");
  CHECK(std::regex_search(entry, std::regex(R"(\[[a-z ]+, crashed: SIGABRT, [0-9hms]+, thread [0-9]+\])")));
  CHECK(has(entry, "abort"));
  // An abort has no fault address.
  Run as_json = dump_core(core.path, json());
  CHECK(std::regex_search(as_json.out,
                          std::regex(R"re("signal_name": "SIGABRT",\s*"fault_address": null,\s*"fiber": [0-9]+)re")));
  Run checked = check(std::nullopt, core.path);
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == kExitFindings);
  CHECK(std::regex_search(checked.out, std::regex(R"re("kind":\s*"invalid-syscall-frame",\s*"rule":\s*2)re")));
  CHECK(has(checked.out, "\"popped\""));
  CHECK(std::regex_search(checked.out, std::regex(R"re("fiber_name":\s*"stale-frame")re")));
}

TEST_CASE("gdb reads fiberscope's cores, and with --fibers-as-threads shows every parked fiber's frames") {
  SKIP_IF_SANITIZED_TARGETS()
  if (!gdb_available()) {
    WARN("skipped: gdb is not installed");
    return;
  }
  TempDir dir;
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string plain = dir.path() + "/plain.core", fibers = dir.path() + "/fibers.core";
  REQUIRE(gcore(target.pid(), plain).exit_code == kExitClean);
  Run written = gcore(target.pid(), fibers, true);
  INFO(written.out << written.err);
  REQUIRE(written.exit_code == kExitClean);
  CHECK(std::regex_search(written.out, std::regex(", [0-9]+ fibers as threads\\)")));
  // The process was left running.
  auto state = target::thread_state(target.pid(), target.pid());
  REQUIRE(state);
  CHECK(*state != 't');
  CHECK(*state != 'T');

  const std::string exe = bin("fiber_states_O0");
  Run without = shell("gdb -batch -nx -c " + plain + " " + exe + " -ex 'thread apply all bt'");
  Run with = shell("gdb -batch -nx -c " + fibers + " " + exe + " -ex 'thread apply all bt'");
  INFO(with.out);
  // The runner blocks in poll on a worker thread: a real thread, in both cores.
  CHECK(has(without.out, "runner_level_one"));
  CHECK(has(with.out, "runner_level_one"));
  // Parked fibers exist only as fibers-as-threads.
  for (const char* function : {"chan_level_two", "sleep_outer", "mutex_level_one"}) {
    CHECK(!has(without.out, function));
    CHECK(has(with.out, function));
  }
  CHECK(has(with.out, "LWP 1073741824"));
  // fiberscope itself shows those fibers as fibers, not as threads too.
  Run from_plain = dump_core(plain, json()), from_fibers = dump_core(fibers, json());
  CHECK(from_fibers.exit_code == kExitClean);
  CHECK(without_volatile_fields(from_fibers.out) == without_volatile_fields(from_plain.out));
}

TEST_CASE("a core of a process without the fiber runtime still dumps every thread's stack") {
  TempDir dir;
  test::ReadyChild child(bin("crasher_threads"), "ready", dir.path());
  REQUIRE(child.ready());
  const std::string core = dir.path() + "/threads.core";
  REQUIRE(gcore(child.pid(), core).exit_code == kExitClean);
  Run run = dump_core(core);
  INFO(run.out << run.err);
  CHECK(run.exit_code == kExitClean);
  CHECK(has(run.out, "0 fibers, 4 threads, core file, no fiber table"));
  CHECK(has(run.out, "worker_wait_level2"));
}

TEST_CASE("a kernel core names no thread rather than every thread after the process, and a mapped data file "
          "does not make it partial") {
  TempDir dir;
  test::KernelCore core = test::make_kernel_core("segv", dir.path());
  if (!core.unavailable.empty()) {
    WARN("skipped: " << core.unavailable);
    return;
  }
  Run run = dump_core(core.path, ungrouped_text());
  INFO(run.out << run.err);
  // crasher_threads maps crasher_data.txt (not ELF, omitted from the core): no warning, so a clean exit.
  CHECK(run.exit_code == kExitClean);
  CHECK_FALSE(has(run.out, "crasher_data.txt"));
  // Its workers are named "worker", the process "crasher_threads": a core records neither for a thread.
  CHECK_FALSE(has(run.out, "\"crasher_threads\""));
  CHECK_FALSE(has(run.out, "\"worker\""));
  CHECK(std::regex_search(run.out, std::regex("(^|\n)thread [0-9]+:\n")));
  CHECK(has(run.out, "crash_by_segv"));
}

TEST_CASE("a sysroot prefixes every file the core names, and files missing there are warned about") {
  SKIP_IF_SANITIZED_TARGETS()
  TempDir dir;
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string core = dir.path() + "/core";
  REQUIRE(gcore(target.pid(), core).exit_code == kExitClean);
  // A sysroot holding only the executable: its frames symbolize, the system libraries are missing.
  const std::string sysroot = dir.path() + "/sysroot";
  const std::string exe = std::filesystem::canonical(bin("fiber_states_O0")).string();
  std::filesystem::create_directories(sysroot + std::filesystem::path(exe).parent_path().string());
  std::filesystem::copy_file(exe, sysroot + exe);
  DumpOptions options = ungrouped_text();
  options.sysroot = sysroot;
  Run run = dump_core(core, options);
  INFO(run.out << run.err);
  CHECK(run.exit_code == kExitPartial);
  CHECK(has(run.out, "chan_level_two(depth=7, tag=4660)"));
  CHECK(std::regex_search(run.out, std::regex("warning: " + sysroot + "/.*libc[^ ]*: not found")));
  CHECK(has(run.out, "pid " + std::to_string(target.pid()) + " " + sysroot + exe + ":"));
}

// Each defect of a hostile core (cut short, bogus note sizes, PT_LOADs past the end...) is pinned once, with its exact
// message, by tests/unit/core/hostile_core_test.cpp on open_core. Here one smoke case shows such an error reaching
// the user through the CLI, plus the one defect only the session sees: an executable of another build.
TEST_CASE("a core that is not one gives dump and check one error line and exit code 2") {
  TempDir dir;
  const std::string empty = dir.path() + "/empty.core";
  test::write_file(empty, {});
  const std::string error = "fiberscope: " + empty + ": empty file (0 bytes), not a core\n";
  Run dumped = dump_core(empty, json());
  CHECK(dumped.exit_code == kExitError);
  CHECK(dumped.out.empty());
  CHECK(dumped.err == error);
  Run checked = check(std::nullopt, empty);
  CHECK(checked.exit_code == kExitError);
  CHECK(checked.out.empty());
  CHECK(checked.err == error);
}

TEST_CASE("an --exe of another build is refused with its build-id warning and names no frame from its code") {
  TempDir dir;
  // crasher_threads is never sanitized, so this runs in sanitizer builds too (the inspector is what they check).
  test::ReadyChild child(bin("crasher_threads"), "ready", dir.path());
  REQUIRE(child.ready());
  const std::string core = dir.path() + "/threads.core";
  REQUIRE(gcore(child.pid(), core).exit_code == kExitClean);
  REQUIRE(has(dump_core(core, json()).out, "worker_wait_level2"));
  DumpOptions options = json();
  options.exe_path = bin("fiber_states_O0");
  Run run = dump_core(core, options);
  INFO(run.out << run.err);
  CHECK(run.exit_code == kExitPartial);
  CHECK(std::regex_search(run.out, std::regex("\n    \"" + options.exe_path +
                                              ": build-id [0-9a-f]{40} differs from the core's [0-9a-f]{40}; "
                                              "refusing to read the memory the core omits from it\",?\n")));
  CHECK(!has(run.out, "worker_wait_level2"));
}

TEST_CASE("dump, check and top parse --core, and refuse it with a pid, --no-stop or --watch") {
  bool help = false;
  auto dump_options = parse_dump_arguments({"--core", "c", "--exe", "e", "--sysroot", "/s", "--format", "json"}, help);
  REQUIRE(dump_options);
  CHECK(dump_options->core_path == "c");
  CHECK(dump_options->exe_path == "e");
  CHECK(dump_options->sysroot == "/s");
  CHECK(!parse_dump_arguments({"12", "--core", "c"}, help));
  CHECK(!parse_dump_arguments({"--core", "c", "--no-stop"}, help));
  CHECK(!parse_dump_arguments({"12", "--exe", "e"}, help));
  CHECK(!parse_dump_arguments({"--core"}, help));
  auto check_options = parse_check_arguments({"--core", "c"}, help);
  REQUIRE(check_options);
  CHECK(check_options->core_path == "c");
  CHECK(!parse_check_arguments({"--core", "c", "--watch", "1"}, help));
  auto gcore_options = parse_gcore_arguments({"42", "--fibers-as-threads"}, help);
  REQUIRE(gcore_options);
  CHECK(gcore_options->output_path == "core.42");
  CHECK(gcore_options->fibers_as_threads);
  CHECK(!parse_gcore_arguments({"-o"}, help));
  CHECK(!parse_gcore_arguments({}, help));
  auto top_options = ui::parse_top_arguments({"--core", "c"}, help);
  REQUIRE(top_options);
  CHECK(top_options->core_path == "c");
  CHECK(!ui::parse_top_arguments({"12", "--core", "c"}, help));
}

TEST_CASE("top --core on a core that cannot be read fails before taking over the terminal") {
  TempDir dir;
  const std::string empty = dir.path() + "/empty.core";
  test::write_file(empty, {});
  ui::TopOptions options;
  options.core_path = empty;
  auto done = ui::run_top(options);
  REQUIRE(!done);
  CHECK(has(done.error().message, "empty.core"));
}
