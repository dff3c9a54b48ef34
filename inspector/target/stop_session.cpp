#include "target/stop_session.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <thread>

#include "target/proc_files.h"
#include "target/registers.h"

namespace fiberscope::target {

namespace {

using Clock = StopSession::Clock;

// Threads created while we attach are found by rescanning /proc/PID/task; once every known thread is stopped no
// new one can appear, so a handful of rounds suffices. The cap only guards against a kernel that lies.
constexpr int kMaxAttachRounds = 64;
// The table the signal handler reads is static: a handler may not allocate.
constexpr std::size_t kMaxTracedThreads = 1u << 16;
// A thread that is not in a ptrace-stop after this long is in uninterruptible sleep (D state, a vfork parent).
constexpr auto kStopTimeout = std::chrono::seconds(2);
// After detaching the others, how long to wait for such a thread to stop so it can be detached too.
constexpr auto kStragglerTimeout = std::chrono::seconds(10);

std::string errno_text(int error) { return std::strerror(error); }

std::string pid_text(int pid) { return std::to_string(pid); }

// ---- The ptrace requests, each named after what it does when it fails (as rr's ptrace_if_alive) ----

// Every request goes through the system call itself, not glibc's ptrace(): the signal handler detaches too, and
// nothing promises that glibc's variadic wrapper is async-signal-safe (it also rewrites PEEK requests). One way
// for every request, so that errno means the same everywhere.
long raw_ptrace(long request, pid_t tid, std::uintptr_t data) {
  return ::syscall(SYS_ptrace, request, static_cast<long>(tid), 0L, data);
}

// PTRACE_SEIZE: 0, or the errno it failed with. PTRACE_O_TRACEEXEC makes an exec by a seized thread report a
// PTRACE_EVENT_EXEC stop, the one sure sign that the threads we stopped belong to an image that is gone.
int seize_or_errno(pid_t tid) { return raw_ptrace(PTRACE_SEIZE, tid, PTRACE_O_TRACEEXEC) == 0 ? 0 : errno; }

// PTRACE_INTERRUPT, failures ignored: ESRCH means the thread is exiting (it is still our tracee, and waitpid
// collects its exit); a thread that does not stop for any other reason is caught by wait_for_stops's timeout.
void interrupt_if_alive(pid_t tid) { raw_ptrace(PTRACE_INTERRUPT, tid, 0); }

// PTRACE_DETACH, giving back `signal`. False only when the thread is no longer in a ptrace-stop (ESRCH), which for
// a stopped tracee means SIGKILL woke it to die: it stays our tracee until settle() collects its exit, otherwise
// it would linger as a zombie its parent cannot reap. Any other failure leaves nothing to do: true.
bool detach_unless_dying(pid_t tid, int signal) {
  return raw_ptrace(PTRACE_DETACH, tid, static_cast<std::uintptr_t>(signal)) == 0 || errno != ESRCH;
}

// PTRACE_DETACH from the signal handler: failures ignored, as the handler can do nothing about them (the kernel
// detaches whatever is left when the inspector dies).
void detach_ignoring_errors(pid_t tid, int signal) {
  raw_ptrace(PTRACE_DETACH, tid, static_cast<std::uintptr_t>(signal));
}

// PTRACE_GETREGS of a stopped tracee, or why it failed.
Result<Registers> read_registers(pid_t tid) {
  // PTRACE_GETREGS fills a user_regs_struct, which registers.cpp asserts is kUserRegsWords words.
  std::array<std::uint64_t, kUserRegsWords> user_regs{};
  if (raw_ptrace(PTRACE_GETREGS, tid, reinterpret_cast<std::uintptr_t>(user_regs.data())) != 0)
    return fail("PTRACE_GETREGS failed: ", errno_text(errno));
  return registers_from_user_regs(user_regs);
}

// ---- State shared with the signal handler (async-signal-safe: fixed arrays and lock-free atomics only) ----

constexpr int kCaughtSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<bool> g_capture_active{false};
std::atomic<std::size_t> g_traced_count{0};
pid_t g_traced_tids[kMaxTracedThreads];
std::atomic<int> g_reinject_signal[kMaxTracedThreads];
struct sigaction g_previous_actions[std::size(kCaughtSignals)];
std::atomic<bool> g_installed[std::size(kCaughtSignals)];
std::atomic<int> g_interrupted_by{0};
// A file to delete if a signal ends the capture (gcore's OUT.tmp.XXXXXX: up to the whole process's memory).
char g_file_to_remove[4096];
std::atomic<bool> g_remove_file{false};
// Tracees whose exit the reaper collected: waitpid's ECHILD on them is not the trace of an exec.
std::atomic<bool> g_reaped_by_reaper[kMaxTracedThreads];

// SIGINT/SIGTERM/SIGHUP during a capture: release the target before anything else, then let the signal do what it
// would have done. PTRACE_DETACH only works from the tracing thread and on a stopped tracee; when it cannot (the
// signal landed on another thread, or a thread is still running towards its stop), the kernel detaches every
// tracee anyway when the default action ends this process.
void on_signal_during_capture(int signal_number) {
  int saved_errno = errno;
  std::size_t count = g_traced_count.exchange(0);
  for (std::size_t i = 0; i < count; ++i)
    detach_ignoring_errors(g_traced_tids[i], g_reinject_signal[i].load(std::memory_order_relaxed));
  g_interrupted_by.store(signal_number);
  if (g_remove_file.exchange(false)) ::unlink(g_file_to_remove);
  for (std::size_t i = 0; i < std::size(kCaughtSignals); ++i)
    if (kCaughtSignals[i] == signal_number && g_installed[i]) {
      ::sigaction(signal_number, &g_previous_actions[i], nullptr);
      g_installed[i] = false;
    }
  ::raise(signal_number);  // blocked until this handler returns, then acted on with the previous disposition
  errno = saved_errno;
}

// Tries again of a PTRACE_SEIZE refused with EPERM, which an exec can cause (see seize()).
constexpr int kSeizeRetries = 3;
// How long a PTRACE_SEIZE may be blocked before the reaper collects exited tracees, and how often it looks.
constexpr auto kSeizeStallTime = std::chrono::milliseconds(10);
constexpr auto kReaperPeriod = std::chrono::milliseconds(2);

}  // namespace

// A thread that execs while we attach runs de_thread: it kills its siblings and waits, holding the lock that
// PTRACE_SEIZE takes (cred_guard_mutex), until each of them is released. A sibling we traced is released only when
// its tracer reaps it, so a seize of any thread of the process blocks forever, and the target with it. While a
// seize is blocked, this thread reaps the tracees that exited (a thread of the tracer's thread group may wait for
// its tracees), so the exec completes, the seize returns, and attach_all reports the exec.
class ExecReaper {
 public:
  ExecReaper() : thread_([this](std::stop_token stop) { run(stop); }) {}
  void seize_started() { seize_started_ns_.store(now_ns()); }
  void seize_ended() { seize_started_ns_.store(0); }

 private:
  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  }
  void run(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(kReaperPeriod);
      std::int64_t started = seize_started_ns_.load();
      if (started == 0 || now_ns() - started < std::chrono::nanoseconds(kSeizeStallTime).count()) continue;
      std::size_t count = g_traced_count.load();
      for (std::size_t i = 0; i < count; ++i) reap_if_exited(i);
    }
  }
  // WNOWAIT peeks without consuming, so a ptrace-stop stays for the capturing thread's waitpid.
  static void reap_if_exited(std::size_t index) {
    if (g_reaped_by_reaper[index].load()) return;
    pid_t tid = g_traced_tids[index];
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(tid), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0) return;
    if (info.si_pid != tid || (info.si_code != CLD_EXITED && info.si_code != CLD_KILLED && info.si_code != CLD_DUMPED))
      return;
    g_reaped_by_reaper[index].store(true);  // before the reap: the capturing thread may see ECHILD right after
    int status = 0;
    ::waitpid(tid, &status, __WALL | WNOHANG);
  }

  std::atomic<std::int64_t> seize_started_ns_{0};
  std::jthread thread_;  // last: starts after, and is joined before, the member it reads
};

bool remove_if_interrupted(const std::string& path) {
  if (path.size() >= sizeof g_file_to_remove) return false;
  g_remove_file.store(false);  // the handler must not read the buffer while it changes
  std::memcpy(g_file_to_remove, path.c_str(), path.size() + 1);
  g_remove_file.store(true);
  return true;
}

void keep_if_interrupted() { g_remove_file.store(false); }

Error attach_permission_error(int pid) {
  std::vector<std::string> reasons;
  auto status = read_status(pid);
  if (status && status->tracer_pid != 0) {
    std::string tracer = "pid " + pid_text(status->tracer_pid);
    if (auto tracer_status = read_status(status->tracer_pid)) tracer += " (" + tracer_status->name + ")";
    reasons.push_back("it is already traced by " + tracer + "; only one debugger can attach, detach that one first");
  }
  if (status && ::geteuid() != 0 && status->real_uid != ::geteuid())
    reasons.push_back("you are uid " + std::to_string(::geteuid()) + ", not root, and it belongs to uid " +
                      std::to_string(status->real_uid) + "; run fiberscope as that user or as root");
  if (auto scope = read_proc_file("/proc/sys/kernel/yama/ptrace_scope", 64); scope && !scope->empty()) {
    char value = (*scope)[0];
    if (value == '1')
      reasons.push_back("kernel.yama.ptrace_scope is 1 (only ancestors may attach); run as root or set it to 0");
    else if (value == '2')
      reasons.push_back("kernel.yama.ptrace_scope is 2 (only CAP_SYS_PTRACE may attach); run as root");
    else if (value == '3')
      reasons.push_back("kernel.yama.ptrace_scope is 3 (attaching is disabled until reboot)");
  }
  if (auto self = read_proc_file("/proc/self/status", 64u << 10)) {
    std::size_t at = self->find("CapEff:");
    if (at != std::string::npos) {
      std::uint64_t effective = std::strtoull(self->c_str() + at + 7, nullptr, 16);
      constexpr int kCapSysPtrace = 19;
      if (!(effective & (std::uint64_t{1} << kCapSysPtrace)))
        reasons.push_back(::geteuid() == 0
                              ? "fiberscope lacks CAP_SYS_PTRACE (in a container, add it: --cap-add=SYS_PTRACE)"
                              : "fiberscope lacks CAP_SYS_PTRACE");
    }
  }
  std::string message = "cannot attach to process " + pid_text(pid) + ": permission denied";
  if (reasons.empty()) {
    message += " (the kernel refused ptrace; is it a setuid program or protected by an LSM?)";
  } else {
    message += ": ";
    for (std::size_t i = 0; i < reasons.size(); ++i) message += (i ? "; " : "") + reasons[i];
  }
  return Error{message, ErrorCode::permission_denied};
}


StopSession::~StopSession() {
  detach_all();
  settle();
  uninstall();
}

Result<void> StopSession::begin() {
  bool expected = false;
  if (!g_capture_active.compare_exchange_strong(expected, true))
    return fail("another live capture is already running in this process");
  claimed_ = true;
  g_traced_count.store(0);
  g_interrupted_by.store(0);
  for (std::size_t i = 0; i < std::size(kCaughtSignals); ++i) {
    struct sigaction current {};
    ::sigaction(kCaughtSignals[i], nullptr, &current);
    if (current.sa_handler == SIG_IGN) continue;  // e.g. SIGHUP under nohup: the signal cannot interrupt us
    g_previous_actions[i] = current;
    struct sigaction action {};
    action.sa_handler = on_signal_during_capture;
    sigemptyset(&action.sa_mask);
    for (int other : kCaughtSignals) sigaddset(&action.sa_mask, other);  // one handler run detaches everything
    g_installed[i] = true;
    ::sigaction(kCaughtSignals[i], &action, nullptr);
  }
  return {};
}

Result<void> StopSession::attach_all(const std::vector<int>& first_tids, std::vector<std::string>& warnings) {
  ExecReaper reaper;
  reaper_ = &reaper;
  auto attached = attach_rounds(first_tids, warnings);
  reaper_ = nullptr;
  if (!process_execd()) return attached;
  adopt_exec_successors();
  return execd();
}

Result<void> StopSession::attach_rounds(const std::vector<int>& first_tids, std::vector<std::string>& warnings) {
  std::vector<int> known;  // every tid ever tried, sorted: a thread that cannot be seized is not retried
  std::vector<int> tids = first_tids;
  for (int round = 0; round < kMaxAttachRounds; ++round) {
    if (round > 0) {
      FS_TRY(listed, replace_if_gone(with_context(list_threads(pid_), "rescanning threads"), target_exited()));
      tids = std::move(*listed);
    }
    std::vector<int> fresh;
    std::set_difference(tids.begin(), tids.end(), known.begin(), known.end(), std::back_inserter(fresh));
    if (fresh.empty()) {
      if (std::none_of(tracees_.begin(), tracees_.end(), [](const Tracee& t) { return t.stopped || t.timed_out; }))
        return target_exited();
      return {};
    }
    known.insert(known.end(), fresh.begin(), fresh.end());
    std::sort(known.begin(), known.end());
    for (int tid : fresh) FS_TRY_DISCARD(seize(tid));
    wait_for_stops(warnings);
    FS_TRY_DISCARD(not_interrupted());
  }
  return fail("threads of process ", pid_text(pid_), " kept appearing after ", pid_text(kMaxAttachRounds),
              " rescans of /proc/", pid_text(pid_), "/task");
}

std::vector<ThreadState> StopSession::thread_states() const {
  std::vector<ThreadState> threads;
  for (const Tracee& tracee : tracees_) {
    if (tracee.gone && !tracee.zombie) continue;  // exited during the attach: no longer part of the process
    ThreadState thread;
    thread.tid = tracee.tid;
    if (!tracee.stopped) {
      thread.error = tracee.error;
    } else if (auto registers = read_registers(tracee.tid)) {
      thread.registers = *registers;
    } else {
      thread.error = registers.error().message;
    }
    threads.push_back(std::move(thread));
  }
  std::sort(threads.begin(), threads.end(), [](const ThreadState& a, const ThreadState& b) { return a.tid < b.tid; });
  return threads;
}

Result<void> StopSession::not_interrupted() const {
  if (int signal_number = g_interrupted_by.load())
    return fail_code(ErrorCode::interrupted, "capture interrupted by signal ", pid_text(signal_number));
  return {};
}

void StopSession::detach_all() {
  g_traced_count.store(0);  // the handler must not detach what we are detaching
  for (Tracee& tracee : tracees_) {
    if (!tracee.stopped) continue;
    tracee.stopped = false;
    if (detach_unless_dying(tracee.tid, tracee.reinject_signal)) tracee.gone = true;
  }
}

std::unexpected<Error> StopSession::execd() const {
  return fail_code(ErrorCode::target_exited, "process ", pid_text(pid_),
                   " exec'd during the capture; try again");
}

// Whether the process replaced its image while we attached. Beyond a PTRACE_EVENT_EXEC, de_thread leaves two
// traces: the exec'ing thread takes the leader's tid, and the old leader is released without a word to its tracer,
// so a tracee we never saw exit is no longer ours (ECHILD) — a thread's own exit is always reported to its tracer.
// The leader, stopped before the exec, is probed last: ECHILD, or a new stop, means it is another thread now.
bool StopSession::process_execd() {
  if (!exec_seen_) {
    for (const Tracee& tracee : tracees_)
      if (tracee.stopped && tracee.tid == pid_) {
        int status = 0;
        pid_t waited = ::waitpid(pid_, &status, __WALL | WNOHANG);
        if ((waited < 0 && errno == ECHILD) || waited == pid_) exec_seen_ = true;
      }
  }
  if (!exec_seen_) return false;
  // An exit of the whole process can look alike (its leader reaped by its parent): the process must live on.
  auto state = thread_state(pid_, pid_);
  return state && *state != 'Z' && *state != 'X';
}

// A seize that waited for the exec attached the exec'ing thread, which now has the leader's tid, while our
// PTRACE_INTERRUPT went to its old tid: it runs on, traced, and no stop will ever let us detach it. Any thread of
// the process that is still ours (PTRACE_INTERRUPT fails on others) and not known as stopped is interrupted again
// and entered as pending, for settle() to wait for and detach.
void StopSession::adopt_exec_successors() {
  auto listed = list_threads(pid_);
  if (!listed) return;
  for (int tid : *listed) {
    if (raw_ptrace(PTRACE_INTERRUPT, tid, 0) != 0) continue;  // not our tracee
    auto known = std::find_if(tracees_.begin(), tracees_.end(), [&](const Tracee& t) { return t.tid == tid; });
    if (known != tracees_.end() && known->stopped) continue;  // detached with the others, or settled if running
    if (known == tracees_.end()) {
      // The handler's table is not extended: settle() never reads it, and the kernel detaches on our death anyway.
      tracees_.push_back(Tracee{.tid = tid, .error = {}});
      known = std::prev(tracees_.end());
    }
    known->gone = false;
    known->timed_out = false;
  }
}

// Marks a tracee that waitpid no longer knows (ECHILD).
void StopSession::note_not_ours(Tracee& tracee) {
  tracee.gone = true;
  tracee.error = "thread exited during capture";
  if (!g_reaped_by_reaper[tracee.table_index].load()) exec_seen_ = true;
}

std::unexpected<Error> StopSession::target_exited() const {
  return fail_code(ErrorCode::target_exited, "process ", pid_text(pid_), " exited while fiberscope was attaching");
}

Result<void> StopSession::seize(int tid) {
  if (table_size_ >= kMaxTracedThreads)
    return fail("process ", pid_text(pid_), " has more than ", pid_text(kMaxTracedThreads), " threads");
  if (reaper_) reaper_->seize_started();
  int error = seize_or_errno(tid);
  // A seize that waited for an exec looked the tid up before it: it met the old thread, which the exec killed
  // (EPERM), while the tid now names the exec'ing thread. Another try meets the thread the tid names now.
  // A thread that is ours already (PTRACE_INTERRUPT works only on our tracees) is that exec'ing thread, seized
  // under its old tid: the process exec'd.
  if (error == EPERM && raw_ptrace(PTRACE_INTERRUPT, tid, 0) == 0) {
    exec_seen_ = true;
    error = 0;
  }
  for (int retry = 0; retry < kSeizeRetries && error == EPERM; ++retry) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    error = seize_or_errno(tid);
  }
  if (reaper_) reaper_->seize_ended();
  if (exec_seen_) return execd();
  if (error != 0) {
    if (error == ESRCH) return {};  // exited between the listing and now
    if (error != EPERM)
      return fail("PTRACE_SEIZE of thread ", pid_text(tid), " of process ", pid_text(pid_), ": ", errno_text(error));
    // A zombie thread (an exited main thread whose siblings run on) cannot be seized; neither can a process that
    // has just exited. Anything else is a real permission problem.
    auto state = thread_state(pid_, tid);
    if (!state && state.error().code == ErrorCode::no_such_process) return {};
    // An exec in progress refuses the threads it is killing: that is no permission problem either.
    if (!state || (*state != 'Z' && *state != 'X'))
      return process_execd() ? execd() : std::unexpected(attach_permission_error(pid_));
    Tracee zombie;
    zombie.tid = tid;
    zombie.gone = true;
    zombie.zombie = true;
    zombie.error = "thread has exited (zombie)";
    tracees_.push_back(std::move(zombie));
    return {};
  }
  Tracee tracee{.tid = tid, .table_index = table_size_++, .error = {}};
  g_traced_tids[tracee.table_index] = tid;
  g_reinject_signal[tracee.table_index].store(0, std::memory_order_relaxed);
  g_reaped_by_reaper[tracee.table_index].store(false);
  g_traced_count.store(tracee.table_index + 1);
  if (!interrupted_any_) {
    first_interrupt_ = Clock::now();
    interrupted_any_ = true;
  }
  interrupt_if_alive(tid);
  tracees_.push_back(std::move(tracee));
  return {};
}


// Records what waitpid said about a tracee; true once it needs no more waiting.
bool StopSession::note_wait_status(Tracee& tracee, int status) {
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    tracee.gone = true;
    tracee.error = "thread exited during capture";
    return true;
  }
  if (!WIFSTOPPED(status)) return false;
  int event = status >> 16;
  int signal_number = WSTOPSIG(status);
  tracee.stopped = true;
  if (event == PTRACE_EVENT_EXEC) exec_seen_ = true;
  // PTRACE_EVENT_STOP is our interrupt (SIGTRAP) or a group-stop (SIGSTOP and friends), which the kernel restores
  // by itself on detach. A plain stop is a signal-delivery-stop: the signal was meant for the target, so it is
  // handed back on detach instead of being swallowed.
  if (event == 0 && signal_number != 0) {
    tracee.reinject_signal = signal_number;
    g_reinject_signal[tracee.table_index].store(signal_number, std::memory_order_relaxed);
  }
  return true;
}

// Waits until every seized thread is stopped or gone. Polls with WNOHANG so a thread stuck in uninterruptible
// sleep cannot hang the capture; the others are stopped within microseconds of PTRACE_INTERRUPT.
void StopSession::wait_for_stops(std::vector<std::string>& warnings) {
  auto deadline = Clock::now() + kStopTimeout;
  for (int pass = 0;; ++pass) {
    bool pending = false;
    for (Tracee& tracee : tracees_) {
      if (tracee.stopped || tracee.gone || tracee.timed_out) continue;
      int status = 0;
      pid_t waited = ::waitpid(tracee.tid, &status, __WALL | WNOHANG);
      if (waited == tracee.tid) {
        if (note_wait_status(tracee, status)) continue;
      } else if (waited < 0 && errno != EINTR) {
        note_not_ours(tracee);  // ECHILD: reaped or no longer ours
        continue;
      }
      pending = true;
    }
    if (!pending || g_interrupted_by.load()) return;
    if (Clock::now() > deadline) {
      for (Tracee& tracee : tracees_) {
        if (tracee.stopped || tracee.gone || tracee.timed_out) continue;
        tracee.timed_out = true;
        auto state = thread_state(pid_, tracee.tid);
        tracee.error = std::string("thread did not stop within 2 s (state ") + (state ? *state : '?') +
                       ", uninterruptible sleep?): registers unknown";
        warnings.push_back("thread " + pid_text(tracee.tid) + ": " + tracee.error);
      }
      return;
    }
    if (pass < 64) {
      std::this_thread::yield();
    } else {
      timespec pause{0, 20'000};
      ::nanosleep(&pause, nullptr);
    }
  }
}

// Collects every tracee still ours: threads that never stopped (PTRACE_DETACH needs a stopped tracee, so we wait
// for the stop our interrupt left pending and detach then) and threads that exit (a traced thread's exit must be
// reaped by its tracer, or it stays a zombie and its process can never be reaped). Polls because a thread
// group leader's exit is reported only after its siblings', whatever order we visit them in.
void StopSession::settle() {
  auto deadline = Clock::now() + kStragglerTimeout;
  for (int pass = 0;; ++pass) {
    bool pending = false;
    for (Tracee& tracee : tracees_) {
      if (tracee.stopped || tracee.gone) continue;
      int status = 0;
      pid_t waited = ::waitpid(tracee.tid, &status, __WALL | WNOHANG);
      if (waited == tracee.tid && WIFSTOPPED(status)) {
        int event = status >> 16;
        if (detach_unless_dying(tracee.tid, event == 0 ? WSTOPSIG(status) : 0)) tracee.gone = true;
      } else if (waited == tracee.tid || (waited < 0 && errno != EINTR)) {
        tracee.gone = true;  // exited and reaped, or not ours any more (ECHILD)
      }
      pending |= !tracee.gone;
    }
    // Past the deadline (a thread in uninterruptible sleep for good) the kernel detaches it when we exit.
    if (!pending || Clock::now() > deadline) return;
    if (pass < 16) {
      std::this_thread::yield();
    } else {
      timespec pause{0, 1'000'000};
      ::nanosleep(&pause, nullptr);
    }
  }
}

void StopSession::uninstall() {
  g_traced_count.store(0);
  for (std::size_t i = 0; i < std::size(kCaughtSignals); ++i) {
    if (!g_installed[i]) continue;
    g_installed[i] = false;
    ::sigaction(kCaughtSignals[i], &g_previous_actions[i], nullptr);
  }
  if (claimed_) g_capture_active.store(false);
}

}  // namespace fiberscope::target
