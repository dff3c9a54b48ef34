#include "ui/top_command.h"

#include "base/arguments.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <utility>

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

// Blocks SIGINT/SIGTERM/SIGHUP on the ui thread for the session's lifetime: the pump's thread takes them (see
// snapshot_pump.h), so one during a capture runs the capture's own handler where it can detach the target at once.
// install() adds the quit handlers once the screen is up; until then the signals keep their default action.
class QuitSignals {
 public:
  QuitSignals() {
    sigset_t mask;
    sigemptyset(&mask);
    for (int signal_number : kSignals) sigaddset(&mask, signal_number);
    pthread_sigmask(SIG_BLOCK, &mask, &previous_mask_);
  }
  ~QuitSignals() {
    if (installed_)
      for (std::size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }
  QuitSignals(const QuitSignals&) = delete;
  QuitSignals& operator=(const QuitSignals&) = delete;

  void install() {
    g_quit_signal.store(0);
    struct sigaction action {};
    action.sa_handler = on_quit_signal;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &action, &previous_[i]);
    installed_ = true;
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction previous_[std::size(kSignals)] {};
  sigset_t previous_mask_{};
  bool installed_ = false;
};

// A test hook, deliberately not in --help: FIBERSCOPE_TOP_CRASH_FOR_TEST=SIGSEGV (or SIGBUS, SIGABRT, SIGFPE,
// SIGILL) makes top crash with that signal once its second snapshot is on the screen (between captures: the target
// runs), so that tests/unit/ui/top_tmux_test.cpp can check that a crash of fiberscope itself gives the terminal back
// (curses_terminal.cpp). Any other value does nothing.
std::optional<int> crash_signal_for_test() {
  const char* name = std::getenv("FIBERSCOPE_TOP_CRASH_FOR_TEST");
  if (!name) return std::nullopt;
  static constexpr std::pair<std::string_view, int> kNames[] = {
      {"SIGSEGV", SIGSEGV}, {"SIGBUS", SIGBUS}, {"SIGABRT", SIGABRT}, {"SIGFPE", SIGFPE}, {"SIGILL", SIGILL}};
  for (const auto& [text, signal_number] : kNames)
    if (text == name) return signal_number;
  return std::nullopt;
}

// An address in the first page, which is never mapped (vm.mmap_min_addr): a write there is a real fault. Not 0, so
// that UndefinedBehaviorSanitizer builds fault too instead of reporting a null store; read through a volatile so
// that the compiler cannot see the address and turn the write into a trap.
volatile std::uintptr_t g_nowhere = 16;

[[noreturn]] void crash_for_test(int signal_number) {
  // SIGSEGV as a real fault, as a bug would cause it; abort() as an assertion would; the others raised.
  if (signal_number == SIGSEGV) *reinterpret_cast<volatile int*>(g_nowhere) = 1;
  if (signal_number == SIGABRT) std::abort();
  ::raise(signal_number);
  std::abort();  // the signal was ignored or blocked: still a crash
}

bool target_is_gone(const Error& error) {
  return error.code == ErrorCode::no_such_process || error.code == ErrorCode::target_exited;
}

// A lean dump of `inspection` (no fiber arguments: only the details panel shows them, for one fiber), and the way
// to one fiber's stack with arguments, which keeps the inspection alive until the next snapshot replaces it.
// An inspection and the one reader of its fibers' arguments (declared after it: destroyed first).
struct KeptInspection {
  KeptInspection(session::Inspection kept, const session::BuildOptions& options)
      : inspection(std::move(kept)),
        reader(inspection.snapshot, inspection.table ? &*inspection.table : nullptr, *inspection.modules, options) {}
  session::Inspection inspection;
  session::FiberArgsReader reader;
};

LeanSnapshot lean_snapshot(session::Inspection inspection) {
  session::BuildOptions lean;  // the defaults (depth) of `fiberscope dump`, whose details top shows
  lean.fiber_args = false;
  auto kept = std::make_shared<KeptInspection>(std::move(inspection), lean);
  report::Dump dump = session::build_dump(kept->inspection, lean);
  auto stack_with_args = [kept](std::uint64_t fiber_id) {
    return kept->reader.stack_with_args(fiber_id).value_or(report::Stack{});
  };
  return {std::move(dump), std::move(stack_with_args)};
}

SnapshotSource live_source(const TopOptions& options) {
  auto cache = std::make_shared<session::ModuleCache>();
  return [pid = options.pid, stop = options.stop, cache]() -> Result<LeanSnapshot> {
    FS_TRY(inspection, session::inspect_live(pid, {.stop = stop, .cache = cache.get()}));
    return lean_snapshot(std::move(*inspection));
  };
}

// A core file: one snapshot, taken once (the screen does not refresh it).
SnapshotSource core_source(const TopOptions& options) {
  return [core_path = *options.core_path, core = session::CoreInspectOptions{options.exe_path, options.sysroot}]()
             -> Result<LeanSnapshot> {
    FS_TRY(inspection, session::inspect_core(core_path, core));
    return lean_snapshot(std::move(*inspection));
  };
}

}  // namespace

const char* const kTopHelp =
    "usage: fiberscope top PID [options]\n"
    "       fiberscope top --core FILE [--exe PATH] [--sysroot DIR]\n"
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
    "  --exe PATH      with --core: the executable (default: the one the core names)\n"
    "  --sysroot DIR   with --core: prefix for every file the core names (libraries from another host)\n"
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
      FS_TRY(seconds, args.number<double>("a number of seconds between 0.1 and 3600"));
      if (!std::isfinite(*seconds) || *seconds < 0.1 || *seconds > 3600)
        return fail("-d needs a number of seconds between 0.1 and 3600, not '", args.current(), "'");
      options.interval_seconds = *seconds;
    } else if (args.is("--no-stop")) {
      options.stop = false;
    } else {
      FS_TRY(core_argument, args.core_option(options.core_path, options.exe_path, options.sysroot));
      if (!*core_argument) FS_TRY_DISCARD(args.pid_operand(pid));
    }
  }
  if (options.core_path && pid) return fail("give a PID or --core FILE, not both");
  if (options.core_path) {
    if (!options.stop) return fail("--no-stop is for live processes, not --core");
    return options;
  }
  if (!options.exe_path.empty() || !options.sysroot.empty()) return fail("--exe and --sysroot go with --core FILE");
  if (!pid) return fail("missing PID (usage: fiberscope top PID [-d SECONDS])");
  options.pid = *pid;
  return options;
}

Result<void> run_top(const TopOptions& options) {
  QuitSignals quit_signals;
  // Declared after quit_signals: ended first, so the handlers stay until no capture can be in progress. Everything
  // that touches an inspection runs on the pump's thread, the first snapshot too.
  std::optional<SnapshotPump> pump;
  pump.emplace(options.core_path ? core_source(options) : live_source(options));
  // The first snapshot before the terminal is taken over: if the target cannot be inspected, the error is printed
  // like any other command's.
  pump->request();
  std::optional<PumpResult> first = pump->wait_result();
  if (!first) return fail("no first snapshot");  // the pump answers every request: cannot happen
  if (!first->dump) return std::unexpected(first->dump.error());

  const std::string target = options.core_path ? "core " + *options.core_path + " (pid " +
                                                    std::to_string(first->dump->pid) + " " + first->dump->exe_path + ")"
                                              : "pid " + std::to_string(options.pid) + " " + first->dump->exe_path;
  TopScreen screen({.target = target, .interval_seconds = options.interval_seconds, .live = !options.core_path});
  screen.show_snapshot(std::move(*first->dump), first->elapsed_ms, DumpArgs::on_request);
  std::uint64_t shown_generation = first->generation;

  quit_signals.install();
  FS_TRY(terminal, open_curses_terminal());
  const std::optional<int> crash_signal = crash_signal_for_test();

  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.interval_seconds));
  auto next_capture = Clock::now() + interval;
  std::optional<std::uint64_t> wanted;                     // the fiber the pump reads arguments for at each refresh
  std::optional<std::pair<std::uint64_t, std::uint64_t>> asked;  // (snapshot, fiber) of the last arguments request
  bool dirty = true;
  for (;;) {
    if (g_quit_signal.load() != 0) break;
    if (screen.refreshing() && Clock::now() >= next_capture && !pump->busy()) {
      pump->request();
      next_capture = Clock::now() + interval;
    }
    if (auto result = pump->take_result()) {
      if (result->dump) {
        screen.show_snapshot(std::move(*result->dump), result->elapsed_ms, DumpArgs::on_request);
        shown_generation = result->generation;
        if (auto& args = result->wanted_args) screen.show_fiber_args(args->fiber_id, std::move(args->stack));
      } else if (target_is_gone(result->dump.error())) {
        screen.stop_refreshing("target exited: showing its last snapshot (q quits)");
      } else {
        screen.show_message("snapshot failed: " + result->dump.error().message, true);
      }
      dirty = true;
    }
    if (auto args = pump->take_args(); args && args->generation == shown_generation) {
      screen.show_fiber_args(args->fiber_id, std::move(args->stack));
      dirty = true;
    }
    // The details of a fiber show its arguments: the pump reads them from the snapshot shown, and every refresh
    // comes with them while the details stay open.
    if (screen.details_fiber() != wanted) pump->want_args(wanted = screen.details_fiber());
    if (auto fiber = screen.fiber_needing_args(); fiber && asked != std::pair(shown_generation, *fiber)) {
      asked = std::pair(shown_generation, *fiber);
      pump->request_args(shown_generation, *fiber);
      // An idle pump answers in milliseconds: wait, so that the details appear with their arguments at once. A
      // busy one answers after its snapshot, and the details say meanwhile that the arguments are being read.
      if (!pump->busy() && pump->wait_args(std::chrono::milliseconds(250))) continue;
    }
    if (dirty) {
      Canvas canvas((*terminal)->width(), (*terminal)->height());
      screen.draw(canvas);
      (*terminal)->present(canvas);
      dirty = false;
      if (crash_signal && screen.snapshots() >= 2) crash_for_test(*crash_signal);
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
  return {};
}

}  // namespace fiberscope::ui
