// `fiberscope dump` on live Go programs: every role's goroutine with its state, wait reason and blocking
// function, and the C frames of cgo calls stitched between the Go frames, at default flags and -N -l; and the
// same from cores of the process (gdb's gcore, fiberscope gcore, the kernel's after a GOTRACEBACK=crash).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>

#include "cli/dump_command.h"
#include "cli/gcore_command.h"
#include "core/core_test_support.h"
#include "go/go_roles.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

// The "role goid" lines a Go test program prints before READY.
std::map<std::string, std::uint64_t> roles_of(TestProcess& target) {
  return testing::go_roles(target.lines());
}

std::string dump_text(int pid, std::string& err) {
  cli::DumpOptions options;
  options.pid = pid;
  options.grouping = report::TextOptions::Grouping::off;
  std::string out;
  const int exit_code = cli::run_dump(options, out, err);
  INFO(out << err);
  CHECK(exit_code == cli::kExitClean);
  return out;
}

// The entry of goroutine `goid`: its header up to the blank line.
std::string goroutine_entry(const std::string& text, std::uint64_t goid) {
  const std::string header = "goroutine " + std::to_string(goid) + " [";
  std::size_t start = text.rfind("\n" + header);
  if (start == std::string::npos) return {};
  ++start;
  return text.substr(start, text.find("\n\n", start) - start);
}

struct FrameLine {
  std::string function;
  std::string stack;  // "fiber", "system", ...
};

// The frames of an entry: the function of each frame line (up to its parameter list) and the stack its location
// line names ("[system stack]").
std::vector<FrameLine> frames_of(const std::string& entry) {
  std::vector<FrameLine> frames;
  std::istringstream lines(entry);
  std::string line;
  std::getline(lines, line);  // header
  static const std::regex stack_label(R"(\[(\w+) stack\]$)");
  while (std::getline(lines, line)) {
    if (line.starts_with("created by")) break;
    std::smatch match;
    if (line.starts_with("\t")) {
      if (std::regex_search(line, match, stack_label)) {
        // A frame without a name has only this line.
        if (frames.empty() || !frames.back().stack.empty()) frames.push_back({"", ""});
        frames.back().stack = match[1];
      }
      continue;
    }
    // The name ends at its parameter list: the first '(' that does not open a receiver like "(*Mutex)".
    std::size_t open = line.find('(');
    while (open != std::string::npos && open + 1 < line.size() && line[open + 1] == '*')
      open = line.find('(', open + 1);
    frames.push_back({line.substr(0, open), ""});
  }
  return frames;
}

// Index of the first frame whose function contains `part`, from `from` on; npos if none.
std::size_t find_frame(const std::vector<FrameLine>& frames, const std::string& part, std::size_t from = 0) {
  for (std::size_t i = from; i < frames.size(); ++i)
    if (frames[i].function.find(part) != std::string::npos) return i;
  return std::string::npos;
}

// Index of the first frame of function `name` itself: with DWARF "runtime.cgocallback", from the symbol table its
// ABI-suffixed symbol "runtime.cgocallback.abi0"; npos if none.
std::size_t find_function(const std::vector<FrameLine>& frames, const std::string& name, std::size_t from = 0) {
  for (std::size_t i = from; i < frames.size(); ++i)
    if (frames[i].function == name || frames[i].function == name + ".abi0") return i;
  return std::string::npos;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("every goroutine of go_states is dumped with its state, wait reason and blocking function") {
  for (const char* program : {"go_states", "go_states_noopt"}) {
    INFO(program);
    TestProcess target({bin(program)});
    REQUIRE(target.wait_for("READY"));
    const auto roles = roles_of(target);
    REQUIRE(roles.size() == 9);
    std::string err;
    const std::string out = dump_text(target.pid(), err);
    INFO(out);
    CHECK(std::regex_search(out, std::regex("^pid [0-9]+ .*: [0-9]+ goroutines, [0-9]+ threads, paused [0-9.]+ ms\n")));
    CHECK_FALSE(has(out, "error:"));

    struct Expected {
      const char* role;
      const char* header;     // what follows "goroutine N [" in the header
      const char* blocked_in; // a frame inside the runtime or library where it waits
      const char* function;   // the program's own function
    };
    const Expected expected[] = {
        {"main", "chan receive]", "runtime.chanrecv1", "main.main"},
        {"chan_receive", "chan receive]", "runtime.chanrecv1", "main.blockChanReceive"},
        {"chan_send", "chan send]", "runtime.chansend1", "main.blockChanSend"},
        {"mutex", "semacquire]", "sync.(*Mutex).Lock", "main.blockMutex"},
        {"select", "select]", "runtime.selectgo", "main.blockSelect"},
        {"sleep", "sleep]", "time.Sleep", "main.blockSleep"},
        {"syscall", "syscall, thread ", "syscall.Syscall", "main.blockSyscall"},
        {"running", "running, thread ", "main.runOnCPU", "main.runOnCPU"},
        {"locked", "chan receive, thread ", "runtime.chanrecv1", "main.blockLocked"},
    };
    for (const Expected& want : expected) {
      INFO(want.role);
      const std::string entry = goroutine_entry(out, roles.at(want.role));
      INFO(entry);
      REQUIRE(!entry.empty());
      CHECK(has(entry.substr(0, entry.find('\n')), want.header));
      const auto frames = frames_of(entry);
      const std::size_t blocked = find_frame(frames, want.blocked_in);
      const std::size_t own = find_frame(frames, want.function);
      CHECK(blocked != std::string::npos);
      CHECK(own != std::string::npos);
      CHECK(blocked <= own);
      // Every walk ends at the goroutine's bottom frame, and every frame is on its own stack.
      REQUIRE(!frames.empty());
      CHECK(find_function(frames, "runtime.goexit") + 1 == frames.size());
      for (const FrameLine& frame : frames) CHECK(frame.stack == "fiber");
      if (std::string(want.role) != "main") CHECK(has(entry, "created by main.main at "));
    }
  }
}

TEST_CASE("goroutines in cgo calls show the C frames between their Go frames, at any nesting") {
  for (const char* program : {"go_cgo", "go_cgo_noopt"}) {
    INFO(program);
    TestProcess target({bin(program)});
    REQUIRE(target.wait_for("READY"));
    const auto roles = roles_of(target);
    REQUIRE(roles.size() == 5);
    std::string err;
    const std::string out = dump_text(target.pid(), err);
    INFO(out);
    CHECK_FALSE(has(out, "error:"));
    CHECK_FALSE(has(out, "finding"));

    SECTION("blocked in C: pause on the system stack, then asmcgocall -> cgocall -> the caller") {
      const std::string entry = goroutine_entry(out, roles.at("in_c"));
      INFO(entry);
      CHECK(has(entry.substr(0, entry.find('\n')), "[foreign, thread "));
      const auto frames = frames_of(entry);
      const std::size_t c_block = find_frame(frames, "c_block");
      const std::size_t asmcgocall = find_function(frames, "runtime.asmcgocall");
      const std::size_t cgocall = find_function(frames, "runtime.cgocall");
      const std::size_t caller = find_frame(frames, "main.blockInC");
      REQUIRE(caller != std::string::npos);
      CHECK(c_block < asmcgocall);
      CHECK(asmcgocall + 1 == cgocall);
      CHECK(cgocall < caller);
      for (std::size_t i = 0; i < asmcgocall; ++i) CHECK(frames[i].stack == "system");
      for (std::size_t i = asmcgocall; i < frames.size(); ++i) CHECK(frames[i].stack == "fiber");
      CHECK(find_function(frames, "runtime.goexit") + 1 == frames.size());
    }
    SECTION("parked inside a callback: the callback's Go frames, the C frames, then the cgo call's Go frames") {
      const std::string entry = goroutine_entry(out, roles.at("callback_parked"));
      INFO(entry);
      const auto frames = frames_of(entry);
      const std::size_t park = find_frame(frames, "main.parkInCallback");
      const std::size_t cgocallback = find_function(frames, "runtime.cgocallback");
      const std::size_t c_call_back = find_frame(frames, "c_call_back");
      const std::size_t asmcgocall = find_function(frames, "runtime.asmcgocall");
      const std::size_t caller = find_frame(frames, "main.callIntoC");
      REQUIRE(caller != std::string::npos);
      CHECK(park < cgocallback);
      CHECK(cgocallback < c_call_back);
      CHECK(c_call_back < asmcgocall);
      CHECK(asmcgocall < caller);
      CHECK(frames[park].stack == "fiber");
      CHECK(frames[c_call_back].stack == "system");
      CHECK(frames[asmcgocall].stack == "fiber");
    }
    SECTION("nested: Go -> C -> Go -> C -> Go, two cgo calls and two callbacks in order") {
      const std::string entry = goroutine_entry(out, roles.at("nested"));
      INFO(entry);
      const auto frames = frames_of(entry);
      const std::size_t first_c = find_frame(frames, "c_call_back");
      const std::size_t inner_go = find_frame(frames, "main.goCallback", first_c);
      const std::size_t second_c = find_frame(frames, "c_call_back", inner_go);
      const std::size_t caller = find_frame(frames, "main.callIntoC", second_c);
      REQUIRE(caller != std::string::npos);
      CHECK(frames[first_c].stack == "system");
      CHECK(frames[inner_go].stack == "fiber");
      CHECK(frames[second_c].stack == "system");
      CHECK(find_function(frames, "runtime.goexit") + 1 == frames.size());
    }
    SECTION("after a callback returned, blocked in C again: only the outer cgo call is left") {
      const std::string entry = goroutine_entry(out, roles.at("after_callback"));
      INFO(entry);
      const auto frames = frames_of(entry);
      const std::size_t c_block = find_frame(frames, "c_back_then_block");
      const std::size_t cgocall = find_function(frames, "runtime.cgocall");
      const std::size_t caller = find_frame(frames, "main.callBackThenBlock");
      REQUIRE(caller != std::string::npos);
      CHECK(c_block < cgocall);
      CHECK(cgocall < caller);
      CHECK(find_frame(frames, "goReturns") == std::string::npos);
    }
  }
}

TEST_CASE("a core of a cgo program, from gdb's gcore and from fiberscope gcore, dumps as the live process did") {
  TestProcess target({bin("go_cgo")});
  REQUIRE(target.wait_for("READY"));
  test::TempDir directory;
  REQUIRE(!directory.path().empty());
  // Every goroutine of go_cgo is parked or blocked in C: the live dump and both cores see the same process.
  std::string err;
  const std::string live = dump_text(target.pid(), err);
  // The dump past its header, without thread names: a core records none (the live dump has them from /proc).
  auto goroutines_of = [](const std::string& text) {
    static const std::regex thread_name(R"re((\nthread [0-9]+) "[^"\n]*")re");
    return std::regex_replace(text.substr(text.find("\n\n") + 2), thread_name, "$1");
  };

  const std::string ours = directory.path() + "/ours.core";
  std::string gcore_out, gcore_err;
  REQUIRE(cli::run_gcore({.pid = target.pid(), .output_path = ours}, gcore_out, gcore_err) == cli::kExitClean);
  const std::string gdbs = directory.path() + "/gdb.core";
  const std::string command = "gdb -batch -nx -p " + std::to_string(target.pid()) + " -ex 'gcore " + gdbs +
                              "' > /dev/null 2>&1";
  const bool have_gdb = std::system(command.c_str()) == 0;

  for (const std::string& core : {ours, gdbs}) {
    if (core == gdbs && !have_gdb) {
      WARN("gdb could not write a core of the Go program: that comparison is skipped");
      continue;
    }
    INFO(core);
    cli::DumpOptions options;
    options.core_path = core;
    options.grouping = report::TextOptions::Grouping::off;
    std::string out, core_err;
    CHECK(cli::run_dump(options, out, core_err) == cli::kExitClean);
    CHECK(has(out.substr(0, out.find('\n')), ": 9 goroutines, "));
    CHECK(goroutines_of(out) == goroutines_of(live));
  }
}

TEST_CASE("a Go program dumped with --no-stop is told what that costs and still shows the parked goroutines") {
  TestProcess target({bin("go_states")});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target);
  cli::DumpOptions options;
  options.pid = target.pid();
  options.stop = false;
  options.grouping = report::TextOptions::Grouping::off;
  std::string out, err;
  cli::run_dump(options, out, err);
  INFO(out << err);
  CHECK(has(out, "not stopped (--no-stop)"));
  CHECK(has(out, "Go has no seqlock"));
  const std::string entry = goroutine_entry(out, roles.at("select"));
  CHECK(has(entry.substr(0, entry.find('\n')), "[select"));
  CHECK(find_frame(frames_of(entry), "main.blockSelect") != std::string::npos);
}

namespace {

// Delve's `goroutines -t` as goroutine id -> function names, innermost first; empty if Delve could not run.
std::map<std::uint64_t, std::vector<std::string>> delve_goroutines(int pid, const std::string& directory) {
  const std::string init = directory + "/dlv-init";
  if (FILE* file = std::fopen(init.c_str(), "w")) {
    std::fputs("goroutines -t 64\nexit\n", file);
    std::fclose(file);
  }
  const std::string command = "timeout 120 dlv attach " + std::to_string(pid) + " --init " + init +
                              " --allow-non-terminal-interactive=true < /dev/null 2>&1";
  std::map<std::uint64_t, std::vector<std::string>> goroutines;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return goroutines;
  std::string text;
  char buffer[4096];
  while (std::size_t count = std::fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, count);
  ::pclose(pipe);
  static const std::regex header(R"(^\s*\*?\s*Goroutine (\d+) - )");
  static const std::regex frame(R"(^\s+\d+\s+0x[0-9a-f]+ in (\S+))");
  std::istringstream lines(text);
  std::string line;
  std::vector<std::string>* current = nullptr;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (std::regex_search(line, match, header)) {
      current = &goroutines[std::stoull(match[1])];
    } else if (current && std::regex_search(line, match, frame)) {
      current->push_back(match[1]);
    }
  }
  return goroutines;
}

}  // namespace

TEST_CASE("the goroutines and frame functions of a pure Go program match Delve's on the same process") {
  if (std::system("dlv version > /dev/null 2>&1") != 0) {
    WARN("no dlv (Delve) installed: the parity check is skipped");
    return;
  }
  const char* program = GENERATE("go_states", "go_states_noopt");
  INFO(program);
  TestProcess target({bin(program)});
  REQUIRE(target.wait_for("READY"));
  const auto roles = roles_of(target);
  test::TempDir directory;
  std::string err;
  const std::string ours = dump_text(target.pid(), err);
  const auto delve = delve_goroutines(target.pid(), directory.path());
  INFO(ours);
  REQUIRE(!delve.empty());
  std::size_t compared = 0;
  for (const auto& [goid, delve_frames] : delve) {
    INFO("goroutine " << goid);
    const std::string entry = goroutine_entry(ours, goid);
    REQUIRE(!entry.empty());
    // A running goroutine moved between the two stops: only its presence is compared.
    if (goid == roles.at("running")) continue;
    std::vector<std::string> functions;
    for (const FrameLine& frame : frames_of(entry)) functions.push_back(frame.function);
    CHECK(functions == delve_frames);
    ++compared;
  }
  // Every goroutine of ours is one of Delve's.
  std::size_t listed = 0;
  for (std::size_t at = ours.find("\ngoroutine "); at != std::string::npos; at = ours.find("\ngoroutine ", at + 1))
    ++listed;
  CHECK(listed == delve.size());
  CHECK(compared + 1 == delve.size());
}

TEST_CASE("the kernel's core of a GOTRACEBACK=crash cgo program shows every thread's goroutine through its handler") {
  if (auto why = test::kernel_core_unavailable()) {
    WARN("no kernel core can be collected here: " << *why);
    return;
  }
  test::TempDir directory;
  ::setenv("GOTRACEBACK", "crash", 1);
  int out = -1;
  const pid_t pid = test::spawn(bin("go_cgo"), {}, directory.path(), out);
  ::unsetenv("GOTRACEBACK");
  REQUIRE(pid > 0);
  std::map<std::string, std::uint64_t> roles;
  while (auto line = test::read_line(out)) {
    if (*line == "READY") break;
    std::istringstream words(*line);
    std::string role;
    std::uint64_t goid = 0;
    if (words >> role >> goid) roles[role] = goid;
  }
  ::kill(pid, SIGQUIT);  // Go's crash: every thread is signalled, then the process aborts with a core
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(out);
  REQUIRE(roles.size() == 5);
  auto core = test::find_core(directory.path());
  if (!core) {
    WARN("the crash left no core in " << directory.path() << " (is RLIMIT_CORE capped by the hard limit?)");
    return;
  }
  cli::DumpOptions options;
  options.core_path = *core;
  options.grouping = report::TextOptions::Grouping::off;
  std::string text, err;
  cli::run_dump(options, text, err);
  INFO(text << err);
  CHECK(has(text, "crashed: SIGABRT"));
  CHECK_FALSE(has(text, "finding"));
  for (const auto& [role, goid] : roles) CHECK(!goroutine_entry(text, goid).empty());
  // Its thread took the crash signal inside C: the handler's frames, the C frames, then the cgo call's.
  const auto frames = frames_of(goroutine_entry(text, roles.at("in_c")));
  const std::size_t handler = find_frame(frames, "runtime.sighandler");
  const std::size_t c_block = find_frame(frames, "c_block");
  const std::size_t caller = find_frame(frames, "main.blockInC");
  REQUIRE(caller != std::string::npos);
  CHECK(handler < c_block);
  CHECK(c_block < find_function(frames, "runtime.cgocall"));
  CHECK(find_function(frames, "runtime.goexit") + 1 == frames.size());
}
