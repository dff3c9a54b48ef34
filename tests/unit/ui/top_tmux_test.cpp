// `fiberscope top` in a real terminal: tmux runs it against real fiber programs; the tests send keys and read the
// screen as a user would. Each test uses a private tmux server (-L) that is killed on every path.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "target/test_process.h"

using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;
using namespace std::chrono_literals;

// Catch2 v2 has no SKIP: say why, visibly, and end the test.
#define SKIP_BECAUSE(reason) \
  do {                       \
    WARN("skipped: " reason); \
    return;                  \
  } while (0)

namespace {

std::string run_output(const std::string& command, int* status = nullptr) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return output;
  char buffer[4096];
  while (std::size_t count = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, count);
  const int code = ::pclose(pipe);
  if (status) *status = WIFEXITED(code) ? WEXITSTATUS(code) : -1;
  return output;
}

// A tmux server of our own with one window running `command`; the pane stays after the command ends so its last
// words can be read.
class Tmux {
 public:
  Tmux(const std::string& command, int width = 120, int height = 40)
      : socket_("fiberscope-ui-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++)) {
    int status = -1;
    run_output(tmux() + " -f /dev/null new-session -d -s top -x " + std::to_string(width) + " -y " +
                   std::to_string(height) + " 'TERM=xterm-256color " + command + "; echo top exited with $?; sleep 60'",
               &status);
    started_ = status == 0;
  }
  ~Tmux() { run_output(tmux() + " kill-server 2>/dev/null"); }
  Tmux(const Tmux&) = delete;
  Tmux& operator=(const Tmux&) = delete;

  bool started() const { return started_; }
  void resize(int width, int height) {
    run_output(tmux() + " resize-window -t top -x " + std::to_string(width) + " -y " + std::to_string(height));
  }
  std::string screen() { return run_output(tmux() + " capture-pane -p -t top"); }
  // A pane flag from tmux's formats: "alternate_on" (1 in the alternate screen), "cursor_flag" (1: cursor shown),
  // "keypad_cursor_flag" (1: cursor keys in application mode).
  std::string flag(const std::string& name) {
    std::string value = run_output(tmux() + " display -p -t top '#{" + name + "}'");
    while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
    return value;
  }
  // Keys in tmux's send-keys syntax ("Enter", "Escape", "C-c") or literal text with `literal`.
  void send(const std::string& keys, bool literal = false) {
    run_output(tmux() + " send-keys -t top " + (literal ? "-l '" + keys + "'" : keys));
  }
  // Waits until the screen contains `text`; returns the last screen read either way.
  bool wait_for(const std::string& text, std::string* last = nullptr, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string shown;
    for (;;) {
      shown = screen();
      if (shown.find(text) != std::string::npos) break;
      if (std::chrono::steady_clock::now() > deadline) {
        if (last) *last = shown;
        UNSCOPED_INFO("screen while waiting for '" << text << "':\n" << shown);
        return false;
      }
      std::this_thread::sleep_for(100ms);
    }
    if (last) *last = shown;
    return true;
  }

 private:
  std::string tmux() const { return "tmux -L " + socket_; }
  static inline int counter_ = 0;
  std::string socket_;
  bool started_ = false;
};

std::string top_command(int pid, const std::string& options = "") {
  return bin("fiberscope") + " top " + std::to_string(pid) + (options.empty() ? "" : " " + options);
}

// The line of `screen` that contains `text`, or "".
std::string line_with(const std::string& screen, const std::string& text) {
  std::istringstream lines(screen);
  for (std::string line; std::getline(lines, line);)
    if (line.find(text) != std::string::npos) return line;
  return {};
}

// The state letter of /proc/PID/stat ('S', 'R', 't' when ptrace-stopped, ...), and the TracerPid.
char process_state(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const std::size_t paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() ? '?' : text[paren + 2];
}

int tracer_pid(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("TracerPid:", 0) == 0) return std::stoi(line.substr(10));
  return -1;
}

// After top quit: the target is alive, neither ptrace-stopped ('t') nor job-stopped ('T'), and not traced.
void check_left_running(int pid) {
  CHECK(::kill(pid, 0) == 0);
  CHECK(process_state(pid) != 't');
  CHECK(process_state(pid) != 'T');
  CHECK(tracer_pid(pid) == 0);
}

std::uint64_t snapshot_number(const std::string& screen) {
  std::smatch match;
  static const std::regex number("snapshot ([0-9]+),");
  return std::regex_search(screen, match, number) ? std::stoull(match[1]) : 0;
}

bool tmux_available() { return ::system("tmux -V >/dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("top shows a known fiber, its backtrace, a sorted list, and leaves the target running on q",
          "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  Tmux tmux(top_command(target.pid()));
  REQUIRE(tmux.started());

  std::string screen;
  REQUIRE(tmux.wait_for("chan-waiter", &screen));
  CHECK(screen.find("fiberscope top  pid " + std::to_string(target.pid())) != std::string::npos);
  CHECK(line_with(screen, "chan-waiter").find("chan receive") != std::string::npos);
  CHECK(line_with(screen, "sleeper").find("sleep") != std::string::npos);
  CHECK(line_with(screen, "syscaller").find("syscall") != std::string::npos);
  CHECK(line_with(screen, "nested-ffi").find("foreign") != std::string::npos);

  // Filter down to the fiber, open its details: the stitched backtrace with arguments.
  tmux.send("/");
  tmux.send("chan-waiter", true);
  tmux.send("Enter");
  REQUIRE(tmux.wait_for("1 of ", &screen));
  tmux.send("Enter");
  // Snapshots are lean: the details' arguments are read for this fiber alone, in milliseconds.
  REQUIRE(tmux.wait_for("chan_level_two(depth=7, tag=4660)", &screen, 5s));
  CHECK(screen.find("backtrace, innermost first:") != std::string::npos);
  CHECK(screen.find("chan_level_one(depth=7)") != std::string::npos);
  CHECK(screen.find("[fiber stack]") != std::string::npos);
  CHECK(screen.find("created by") != std::string::npos);

  // Back, clear the filter, sort by name: the names come in order.
  tmux.send("Escape");
  tmux.send("Escape");
  tmux.send("s");
  REQUIRE(tmux.wait_for("sorted by NAME", &screen));
  const std::size_t chan = screen.find("chan-waiter"), mutex = screen.find("mutex-waiter"),
                    runner = screen.find("runner"), sleeper = screen.find("sleeper");
  REQUIRE(chan != std::string::npos);
  REQUIRE(sleeper != std::string::npos);
  CHECK(chan < mutex);
  CHECK(mutex < runner);
  CHECK(runner < sleeper);

  tmux.send("q");
  REQUIRE(tmux.wait_for("top exited with 0", &screen));
  check_left_running(target.pid());
}

TEST_CASE("the details keep their arguments while snapshots without arguments refresh underneath", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  Tmux tmux(top_command(target.pid(), "-d 0.2"));
  REQUIRE(tmux.started());
  std::string screen;
  REQUIRE(tmux.wait_for("chan-waiter", &screen));
  tmux.send("/");
  tmux.send("chan-waiter", true);
  tmux.send("Enter");
  REQUIRE(tmux.wait_for("1 of ", &screen));
  tmux.send("Enter");
  REQUIRE(tmux.wait_for("chan_level_two(depth=7, tag=4660)", &screen, 5s));
  const std::uint64_t opened_at = snapshot_number(screen);
  // Five refreshes later (each a new lean dump), the details still show the arguments, not the note that they are
  // being read.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (snapshot_number(screen) < opened_at + 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    screen = tmux.screen();
  }
  INFO(screen);
  CHECK(snapshot_number(screen) >= opened_at + 5);
  CHECK(screen.find("chan_level_two(depth=7, tag=4660)") != std::string::npos);
  CHECK(screen.find("chan_level_one(depth=7)") != std::string::npos);
  CHECK(screen.find("reading the arguments") == std::string::npos);
  tmux.send("q");
  REQUIRE(tmux.wait_for("top exited with 0", &screen));
}

TEST_CASE("resizing the terminal lays the screen out again without leftovers", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  Tmux tmux(top_command(target.pid()), 120, 30);
  REQUIRE(tmux.started());
  std::string screen;
  REQUIRE(tmux.wait_for("THREAD", &screen));
  tmux.resize(64, 16);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::vector<std::string> lines;
  do {
    std::this_thread::sleep_for(200ms);
    screen = tmux.screen();
    std::istringstream stream(screen);
    lines.clear();
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    // Until the new layout is fully drawn: tmux may show the screen between curses' writes (slower under ASan).
  } while ((lines.size() != 16 || screen.find("THREAD") != std::string::npos ||
            lines.front().rfind("fiberscope top", 0) != 0) &&
           std::chrono::steady_clock::now() < deadline);
  INFO(screen);
  REQUIRE(lines.size() == 16);
  CHECK(screen.find("THREAD") == std::string::npos);  // the narrow layout
  CHECK(lines.front().rfind("fiberscope top", 0) == 0);
  CHECK(lines.back().rfind("?Help", 0) == 0);
  for (const std::string& line : lines) CHECK(line.size() <= 64);
  tmux.send("q");
  REQUIRE(tmux.wait_for("top exited with 0", &screen));
}

TEST_CASE("Ctrl-C ends top cleanly and the target is neither stopped nor traced", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("demo_server"), "--fibers", "200"});
  REQUIRE(target.wait_for("READY"));
  Tmux tmux(top_command(target.pid(), "-d 0.2"));
  REQUIRE(tmux.started());
  REQUIRE(tmux.wait_for("request-handler"));
  std::this_thread::sleep_for(500ms);  // let a few refreshes run so that Ctrl-C may land in one
  tmux.send("C-c");
  std::string screen;
  REQUIRE(tmux.wait_for("top exited with", &screen));
  CHECK(line_with(screen, "top exited with") == "top exited with 0");
  CHECK(::kill(target.pid(), 0) == 0);
  CHECK(process_state(target.pid()) != 't');
  CHECK(tracer_pid(target.pid()) == 0);
}

TEST_CASE("when the target exits top keeps its last snapshot, says so, and quits on q", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("demo_server"), "--fibers", "100"});
  REQUIRE(target.wait_for("READY"));
  Tmux tmux(top_command(target.pid(), "-d 0.2"));
  REQUIRE(tmux.started());
  REQUIRE(tmux.wait_for("request-handler"));
  ::kill(target.pid(), SIGKILL);
  target.reap();
  std::string screen;
  REQUIRE(tmux.wait_for("target exited", &screen));
  CHECK(screen.find("request-handler") != std::string::npos);  // the last snapshot is still shown
  tmux.send("Down");
  tmux.send("Enter");
  REQUIRE(tmux.wait_for("backtrace, innermost first", &screen));
  tmux.send("q");
  REQUIRE(tmux.wait_for("top exited with 0", &screen));
}

TEST_CASE("with ten thousand fibers and -d 0.5 the snapshot counter advances and the pause is shown",
          "[ui][tmux][10k]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("demo_server"), "--fibers", "10000"});
  REQUIRE(target.wait_for("READY", 60s));
  Tmux tmux(top_command(target.pid(), "-d 0.5"), 140, 40);
  REQUIRE(tmux.started());
  std::string screen;
  REQUIRE(tmux.wait_for("fibers 10000", &screen, 60s));
  const std::uint64_t first = snapshot_number(screen);
  // Refreshes keep coming; how fast depends on the machine (each takes a capture plus unwinding 10k stacks), so
  // the rate is printed, and only "it refreshes" is asserted.
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t later = first;
  while (later < first + 3 && std::chrono::steady_clock::now() - start < 30s) {
    std::this_thread::sleep_for(250ms);
    screen = tmux.screen();
    later = std::max(later, snapshot_number(screen));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("10k fibers, -d 0.5: snapshots " << first << " -> " << later << " in " << seconds << " s; "
                                        << line_with(screen, "pause "));
  CHECK(later >= first + 3);
  // Scrolling to the end of the list is one key, not ten thousand redraws.
  tmux.send("End");
  REQUIRE(tmux.wait_for("10000 of 10", &screen, 5s));
  tmux.send("q");
  REQUIRE(tmux.wait_for("top exited with 0", &screen, 30s));
  CHECK(process_state(target.pid()) != 't');
}

TEST_CASE("top shows the finding of a fault-injected program and jumps to its fiber", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  ::setenv("FIBERSCOPE_FAULTS", "stale-syscall-frame", 1);
  TestProcess target({bin("check_scenarios"), "stale-frame"});
  ::unsetenv("FIBERSCOPE_FAULTS");
  REQUIRE(target.wait_for("READY"));
  Tmux tmux(top_command(target.pid()));
  REQUIRE(tmux.started());
  std::string screen;
  REQUIRE(tmux.wait_for("findings 1", &screen));
  CHECK(line_with(screen, "callback-then-block").find("!") != std::string::npos);
  tmux.send("F");
  REQUIRE(tmux.wait_for("FINDINGS", &screen));
  CHECK(line_with(screen, "callback-then-block").find("invalid-syscall-frame") != std::string::npos);
  tmux.send("Enter");
  REQUIRE(tmux.wait_for("backtrace, innermost first", &screen));
  CHECK(screen.find("fiber") != std::string::npos);
  CHECK(screen.find("\"callback-then-block\"") != std::string::npos);
  CHECK(screen.find("[invalid-syscall-frame]") != std::string::npos);
  CHECK(screen.find("below-live-frame") != std::string::npos);
  tmux.send("q");
  REQUIRE(tmux.wait_for("top exited with 0", &screen));
  CHECK(tracer_pid(target.pid()) == 0);
}

TEST_CASE("a crash of top itself gives the terminal back: normal screen, cursor, the shell's modes, the real exit "
          "status, and the target runs on", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  const auto [signal_name, signal_number] =
      GENERATE(table<std::string, int>({{"SIGSEGV", SIGSEGV}, {"SIGABRT", SIGABRT}}));
  INFO(signal_name);
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  // A plain sh (dash) without line editing or job control: it restores no terminal modes itself, so what the pane
  // shows afterwards is what top left behind; and with the modes top sets (no echo, Enter not turned into a
  // newline), typed commands would not run at all.
  Tmux tmux("env -i TERM=xterm-256color PATH=/usr/bin:/bin sh");
  REQUIRE(tmux.started());
  tmux.send("ulimit -c 0; saved=$(stty -g)", true);  // no core files left behind by the test
  tmux.send("Enter");
  // FIBERSCOPE_TOP_CRASH_FOR_TEST (ui/top_command.cpp): crash once the second snapshot is on the screen.
  // ASan (sanitizer builds) would take SIGSEGV for itself and exit 1 instead of the crash being the program's.
  tmux.send("FIBERSCOPE_TOP_CRASH_FOR_TEST=" + signal_name + " ASAN_OPTIONS=handle_segv=0:detect_leaks=0 " +
                top_command(target.pid()) + "; echo exit-status-$?",
            true);
  tmux.send("Enter");
  std::string screen;
  REQUIRE(tmux.wait_for("fiberscope top  pid", &screen));
  CHECK(tmux.flag("alternate_on") == "1");  // curses had the terminal
  REQUIRE(tmux.wait_for("exit-status-1", &screen));
  CHECK(line_with(screen, "exit-status-1") == "exit-status-" + std::to_string(128 + signal_number));
  CHECK(tmux.flag("alternate_on") == "0");
  CHECK(tmux.flag("cursor_flag") == "1");
  CHECK(tmux.flag("keypad_cursor_flag") == "0");
  CHECK(screen.find("fiberscope top  pid") == std::string::npos);  // the shell's screen, not top's
  tmux.send("[ \"$(stty -g)\" = \"$saved\" ] && echo modes-restored-$((6*7))", true);
  tmux.send("Enter");
  CHECK(tmux.wait_for("modes-restored-42", &screen, 5s));
  check_left_running(target.pid());
}

TEST_CASE("top --core reads a core with --exe naming the executable, and its details show arguments", "[ui][tmux]") {
  if (!tmux_available()) SKIP_BECAUSE("tmux is not installed (scripts/setup.sh installs it)");
  TestProcess target({bin("fiber_states_O0")});
  REQUIRE(target.wait_for("READY"));
  char directory[] = "/tmp/fiberscope-top-core-XXXXXX";
  REQUIRE(::mkdtemp(directory) != nullptr);
  const std::string dir = directory, core = dir + "/core", exe = dir + "/copied_exe";
  int status = -1;
  run_output(bin("fiberscope") + " gcore " + std::to_string(target.pid()) + " -o " + core + " 2>&1", &status);
  REQUIRE(status == 0);
  run_output("cp " + bin("fiber_states_O0") + " " + exe, &status);
  REQUIRE(status == 0);
  {
    // Wide enough for the header's paths: it names the executable --exe gave.
    Tmux tmux(bin("fiberscope") + " top --core " + core + " --exe " + exe + " --sysroot /", 220, 40);
    REQUIRE(tmux.started());
    std::string screen;
    REQUIRE(tmux.wait_for("chan-waiter", &screen));
    CHECK(line_with(screen, "fiberscope top").find("copied_exe") != std::string::npos);
    CHECK(screen.find("static snapshot") != std::string::npos);
    tmux.send("/");
    tmux.send("chan-waiter", true);
    tmux.send("Enter");
    REQUIRE(tmux.wait_for("1 of ", &screen));
    tmux.send("Enter");
    REQUIRE(tmux.wait_for("chan_level_two(depth=7, tag=4660)", &screen, 5s));
    tmux.send("q");
    REQUIRE(tmux.wait_for("top exited with 0", &screen));
  }
  run_output("rm -rf " + dir);
}

TEST_CASE("top --help and bad arguments answer without touching the terminal", "[ui]") {
  int status = -1;
  const std::string help = run_output(bin("fiberscope") + " top --help", &status);
  CHECK(status == 0);
  CHECK(help.find("usage: fiberscope top PID") != std::string::npos);
  CHECK(help.find("-d SECONDS") != std::string::npos);
  const std::string bad = run_output(bin("fiberscope") + " top 1 -d 0 2>&1", &status);
  CHECK(status == 2);
  CHECK(bad.find("-d needs a number of seconds") != std::string::npos);
  const std::string missing = run_output(bin("fiberscope") + " top 999999999 2>&1 </dev/null", &status);
  CHECK(status == 2);
  CHECK(missing.find("no process with pid") != std::string::npos);
}
