#include "ui/top_command.h"

#include "base/arguments.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "session/inspection.h"
#include "ui/snapshot_pump.h"
#include "ui/terminal.h"
#include "ui/top_screen.h"

namespace fiberscope::ui {
namespace {

using Clock = std::chrono::steady_clock;

// Set by SIGINT/SIGTERM/SIGHUP: the loop notices within one key timeout and ends the session cleanly.
std::atomic<int> g_quit_signal{0};

void on_quit_signal(int signal_number) { g_quit_signal.store(signal_number); }

// Installs the quit handlers for the session's lifetime and blocks those signals on the ui thread (the pump's
// thread takes them; see snapshot_pump.h).
class QuitSignals {
 public:
  QuitSignals() {
    g_quit_signal.store(0);
    struct sigaction action {};
    action.sa_handler = on_quit_signal;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &action, &previous_[i]);
  }
  ~QuitSignals() {
    for (std::size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
  }
  QuitSignals(const QuitSignals&) = delete;
  QuitSignals& operator=(const QuitSignals&) = delete;

  static void block_on_this_thread(sigset_t* previous) {
    sigset_t mask;
    sigemptyset(&mask);
    for (int signal_number : kSignals) sigaddset(&mask, signal_number);
    pthread_sigmask(SIG_BLOCK, &mask, previous);
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction previous_[std::size(kSignals)] {};
};

bool target_is_gone(const Error& error) {
  return error.code == ErrorCode::no_such_process || error.code == ErrorCode::target_exited;
}

DumpSource live_source(const TopOptions& options) {
  auto cache = std::make_shared<session::ModuleCache>();
  return [pid = options.pid, stop = options.stop, cache]() -> Result<report::Dump> {
    auto inspection = session::inspect_live(pid, {.stop = stop, .cache = cache.get()});
    if (!inspection) return std::unexpected(inspection.error());
    return session::build_dump(*inspection, {});
  };
}

// A core file: one snapshot, taken once (the screen does not refresh it).
DumpSource core_source(const TopOptions& options) {
  return [core_path = *options.core_path]() -> Result<report::Dump> {
    auto inspection = session::inspect_core(core_path, {});
    if (!inspection) return std::unexpected(inspection.error());
    return session::build_dump(*inspection, {});
  };
}

}  // namespace

const char* const kTopHelp =
    "usage: fiberscope top PID [options]\n"
    "       fiberscope top --core FILE\n"
    "\n"
    "A live view of every fiber of process PID, refreshed every second: a header with the process, its threads,\n"
    "its fibers by state (running, runnable, syscall, foreign, waiting, sleeping), the pause of the last snapshot\n"
    "and the number of findings; a list of fibers (id, name, state, time in state, worker thread and where in\n"
    "user code) that can be sorted and filtered; each fiber's full backtrace with arguments and the stack each\n"
    "frame lives on; groups of identical stacks; and the findings of the checks. Each snapshot stops the target\n"
    "only while it is copied (the pause is shown), and the target is always left running.\n"
    "\n"
    "options:\n"
    "  -d SECONDS      refresh interval (default 1; at least 0.1)\n"
    "  --no-stop       never stop the target: read it while it runs (records caught changing are marked torn)\n"
    "  --core FILE     one static snapshot from a core file (fiberscope gcore, gdb's gcore or the kernel's)\n"
    "  -h, --help      this help\n"
    "\n"
    "keys (? inside top shows them too):\n"
    "  arrows, PgUp/PgDn, Home/End, j/k  move      Enter  details / group members / finding's fiber\n"
    "  Esc  back, or clear filters               Tab  next view (fibers, groups, findings); 1 2 3; g; F\n"
    "  s > <  sort column   r  reverse           f  filter by state     /  filter by name or function\n"
    "  n  next fiber with findings  !  only fibers with findings        Space  pause   q  quit\n"
    "\n"
    "exit codes: 0 after q; 2 when the target cannot be inspected (no such process, no permission) or there is\n"
    "no terminal.\n";

Result<TopOptions> parse_top_arguments(const std::vector<std::string>& arguments, bool& help) {
  TopOptions options;
  std::optional<int> pid;
  help = false;
  Arguments args(arguments, "top");
  while (args.next()) {
    if (args.is_help()) {
      help = true;
      return options;
    } else if (args.is("-d") || args.is("--delay")) {
      auto seconds = args.number<double>("a number of seconds between 0.1 and 3600");
      if (!seconds) return std::unexpected(seconds.error());
      if (!std::isfinite(*seconds) || *seconds < 0.1 || *seconds > 3600)
        return fail("-d needs a number of seconds between 0.1 and 3600, not '", args.current(), "'");
      options.interval_seconds = *seconds;
    } else if (args.is("--no-stop")) {
      options.stop = false;
    } else if (args.is("--core")) {
      auto path = args.value();
      if (!path) return std::unexpected(path.error());
      options.core_path = *path;
    } else if (auto operand = args.pid_operand(pid); !operand) {
      return std::unexpected(operand.error());
    }
  }
  if (options.core_path && pid) return fail("give a PID or --core FILE, not both");
  if (options.core_path) return options;
  if (!pid) return fail("missing PID (usage: fiberscope top PID [-d SECONDS])");
  options.pid = *pid;
  return options;
}

Result<void> run_top(const TopOptions& options) {
  DumpSource source = options.core_path ? core_source(options) : live_source(options);
  // The first snapshot before the terminal is taken over: if the target cannot be inspected, the error is
  // printed like any other command's.
  const auto start = Clock::now();
  auto first = source();
  if (!first) return std::unexpected(first.error());
  const std::chrono::duration<double, std::milli> first_elapsed = Clock::now() - start;

  const std::string target = options.core_path ? "core " + *options.core_path + " (pid " +
                                                    std::to_string(first->pid) + " " + first->exe_path + ")"
                                              : "pid " + std::to_string(options.pid) + " " + first->exe_path;
  TopScreen screen({.target = target, .interval_seconds = options.interval_seconds, .live = !options.core_path});
  screen.show_snapshot(std::move(*first), first_elapsed.count());

  QuitSignals quit_signals;
  auto terminal = open_curses_terminal();
  if (!terminal) return std::unexpected(terminal.error());
  // Ended explicitly below, after the terminal was given back: a snapshot in progress is finished first (the
  // capture releases the target before returning), so the process never exits with the target stopped.
  std::optional<SnapshotPump> pump;
  sigset_t previous_mask;
  pump.emplace(source);
  QuitSignals::block_on_this_thread(&previous_mask);

  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.interval_seconds));
  auto next_capture = Clock::now() + interval;
  bool dirty = true;
  for (;;) {
    if (g_quit_signal.load() != 0) break;
    if (screen.refreshing() && Clock::now() >= next_capture && !pump->busy()) {
      pump->request();
      next_capture = Clock::now() + interval;
    }
    if (auto result = pump->take_result()) {
      if (result->dump) {
        screen.show_snapshot(std::move(*result->dump), result->elapsed_ms);
      } else if (target_is_gone(result->dump.error())) {
        screen.stop_refreshing("target exited: showing its last snapshot (q quits)");
      } else {
        screen.show_message("snapshot failed: " + result->dump.error().message, true);
      }
      dirty = true;
    }
    if (dirty) {
      Canvas canvas((*terminal)->width(), (*terminal)->height());
      screen.draw(canvas);
      (*terminal)->present(canvas);
      dirty = false;
    }
    // Short waits keep snapshots on time and Ctrl-C prompt; a wait costs nothing while no key comes.
    auto key = (*terminal)->read_key(50);
    if (!key) continue;
    const KeyResult result = screen.on_key(*key);
    if (result.action == KeyResult::Action::quit) break;
    dirty = true;
  }
  terminal->reset();
  pump.reset();
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  return {};
}

}  // namespace fiberscope::ui
