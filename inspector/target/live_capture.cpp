#include "target/live_capture.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>
#include <thread>

#include "target/copy_plan.h"
#include "target/proc_files.h"
#include "target/process_memory.h"
#include "target/registers.h"

namespace fiberscope::target {

namespace {

using Clock = std::chrono::steady_clock;

// Threads created while we attach are found by rescanning /proc/PID/task; once every known thread is stopped no
// new one can appear, so a handful of rounds suffices. The cap only guards against a kernel that lies.
constexpr int kMaxAttachRounds = 64;
// The table the signal handler reads is static: a handler may not allocate.
constexpr std::size_t kMaxTracedThreads = 1u << 16;
// A thread that is not in a ptrace-stop after this long is in uninterruptible sleep (D state, a vfork parent).
constexpr auto kStopTimeout = std::chrono::seconds(2);
// After detaching the others, how long to wait for such a thread to stop so it can be detached too.
constexpr auto kStragglerTimeout = std::chrono::seconds(10);
constexpr std::uint64_t kHugePageBytes = 2u << 20;

// ---- State shared with the signal handler (async-signal-safe: fixed arrays and lock-free atomics only) ----

constexpr int kCaughtSignals[] = {SIGINT, SIGTERM, SIGHUP};
std::atomic<bool> g_capture_active{false};
std::atomic<std::size_t> g_traced_count{0};
pid_t g_traced_tids[kMaxTracedThreads];
std::atomic<int> g_reinject_signal[kMaxTracedThreads];
struct sigaction g_previous_actions[std::size(kCaughtSignals)];
std::atomic<bool> g_installed[std::size(kCaughtSignals)];
std::atomic<int> g_interrupted_by{0};

long raw_ptrace(long request, pid_t tid, long data) {
  return ::syscall(SYS_ptrace, request, static_cast<long>(tid), 0L, data);
}

// SIGINT/SIGTERM/SIGHUP during a capture: release the target before anything else, then let the signal do what it
// would have done. PTRACE_DETACH only works from the tracing thread and on a stopped tracee; when it cannot (the
// signal landed on another thread, or a thread is still running towards its stop), the kernel detaches every
// tracee anyway when the default action ends this process.
void on_signal_during_capture(int signal_number) {
  int saved_errno = errno;
  std::size_t count = g_traced_count.exchange(0);
  for (std::size_t i = 0; i < count; ++i)
    raw_ptrace(PTRACE_DETACH, g_traced_tids[i], g_reinject_signal[i].load(std::memory_order_relaxed));
  g_interrupted_by.store(signal_number);
  for (std::size_t i = 0; i < std::size(kCaughtSignals); ++i)
    if (kCaughtSignals[i] == signal_number && g_installed[i]) {
      ::sigaction(signal_number, &g_previous_actions[i], nullptr);
      g_installed[i] = false;
    }
  ::raise(signal_number);  // blocked until this handler returns, then acted on with the previous disposition
  errno = saved_errno;
}

// ---- One thread we seized ----

struct Tracee {
  pid_t tid = 0;
  std::size_t table_index = 0;  // index in g_traced_tids
  bool stopped = false;         // in a ptrace-stop: registers readable, must be detached
  bool gone = false;            // exited or reaped: nothing more to do
  bool timed_out = false;       // seized but never stopped (uninterruptible sleep): released by settle()
  bool zombie = false;          // an exited main thread whose siblings run on: listed, never seized
  int reinject_signal = 0;      // a signal-delivery-stop's signal, given back on detach
  std::string error;            // why its registers are unknown
};

std::string errno_text(int error) { return std::strerror(error); }

std::string pid_text(int pid) { return std::to_string(pid); }

// The reasons a ptrace attach can be refused, most specific first, as one line that says what to change.
Error permission_error(int pid) {
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

// Explains a failure to read /proc/PID/maps in the terms the CLI maps to advice and exit codes.
Error maps_error(int pid, const Error& error) {
  if (error.code == ErrorCode::permission_denied) return permission_error(pid);
  if (error.code == ErrorCode::no_such_process)
    return Error{"process " + pid_text(pid) + " exited before it could be attached", ErrorCode::target_exited};
  return error.with_context("reading the memory map");
}

// Owns everything a stopping capture sets up: the claim on the signal-handler table, the installed handlers and
// the seized threads. Its destructor detaches and restores on every path, exceptions included.
class StopSession {
 public:
  explicit StopSession(int pid) : pid_(pid) {}
  ~StopSession() {
    detach_all();
    settle();
    uninstall();
  }
  StopSession(const StopSession&) = delete;
  StopSession& operator=(const StopSession&) = delete;

  Result<void> begin() {
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

  // Seizes every thread, rescanning until no new one appears; every thread is stopped or recorded as gone.
  Result<void> attach_all(const std::vector<int>& first_tids, std::vector<std::string>& warnings) {
    std::vector<int> known;  // every tid ever tried, sorted: a thread that cannot be seized is not retried
    std::vector<int> tids = first_tids;
    for (int round = 0; round < kMaxAttachRounds; ++round) {
      if (round > 0) {
        auto listed = list_threads(pid_);
        if (!listed) {
          if (listed.error().code == ErrorCode::no_such_process) return target_exited();
          return std::unexpected(listed.error().with_context("rescanning threads"));
        }
        tids = std::move(*listed);
      }
      std::vector<int> fresh;
      std::set_difference(tids.begin(), tids.end(), known.begin(), known.end(), std::back_inserter(fresh));
      if (fresh.empty()) {
        if (std::none_of(tracees_.begin(), tracees_.end(),
                         [](const Tracee& t) { return t.stopped || t.timed_out; }))
          return target_exited();
        return {};
      }
      known.insert(known.end(), fresh.begin(), fresh.end());
      std::sort(known.begin(), known.end());
      for (int tid : fresh)
        if (auto seized = seize(tid); !seized) return seized;
      wait_for_stops(warnings);
      if (int signal_number = g_interrupted_by.load())
        return fail_code(ErrorCode::interrupted, "capture interrupted by signal ", pid_text(signal_number));
    }
    return fail("threads of process ", pid_text(pid_), " kept appearing after ", pid_text(kMaxAttachRounds),
                " rescans of /proc/", pid_text(pid_), "/task");
  }

  std::vector<Tracee>& tracees() { return tracees_; }
  Clock::time_point first_interrupt() const { return first_interrupt_; }

  // Detaches every stopped thread, giving back any signal it was about to receive.
  void detach_all() {
    g_traced_count.store(0);  // the handler must not detach what we are detaching
    for (Tracee& tracee : tracees_) {
      if (!tracee.stopped) continue;
      tracee.stopped = false;
      // ESRCH: no longer in a ptrace-stop, which for a stopped tracee means SIGKILL woke it to die. It stays our
      // tracee until settle() collects its exit; otherwise it would linger as a zombie its parent cannot reap.
      if (raw_ptrace(PTRACE_DETACH, tracee.tid, tracee.reinject_signal) == 0 || errno != ESRCH) tracee.gone = true;
    }
  }

 private:
  Error target_exited_error() const {
    return Error{"process " + pid_text(pid_) + " exited while fiberscope was attaching", ErrorCode::target_exited};
  }
  std::unexpected<Error> target_exited() const { return std::unexpected(target_exited_error()); }

  Result<void> seize(int tid) {
    if (table_size_ >= kMaxTracedThreads)
      return fail("process ", pid_text(pid_), " has more than ", pid_text(kMaxTracedThreads), " threads");
    if (raw_ptrace(PTRACE_SEIZE, tid, 0) < 0) {
      int error = errno;
      if (error == ESRCH) return {};  // exited between the listing and now
      if (error == EPERM) {
        // A zombie thread (an exited main thread whose siblings run on) cannot be seized; neither can a process
        // that has just exited. Anything else is a real permission problem.
        auto state = thread_state(pid_, tid);
        if (!state && state.error().code == ErrorCode::no_such_process) return {};
        if (state && (*state == 'Z' || *state == 'X')) {
          Tracee zombie;
          zombie.tid = tid;
          zombie.gone = true;
          zombie.zombie = true;
          zombie.error = "thread has exited (zombie)";
          tracees_.push_back(std::move(zombie));
          return {};
        }
        return std::unexpected(permission_error(pid_));
      }
      return fail("PTRACE_SEIZE of thread ", pid_text(tid), " of process ", pid_text(pid_), ": ", errno_text(error));
    }
    Tracee tracee;
    tracee.tid = tid;
    tracee.table_index = table_size_++;
    g_traced_tids[tracee.table_index] = tid;
    g_reinject_signal[tracee.table_index].store(0, std::memory_order_relaxed);
    g_traced_count.store(tracee.table_index + 1);
    if (!interrupted_any_) {
      first_interrupt_ = Clock::now();
      interrupted_any_ = true;
    }
    // ESRCH here means the thread is exiting; it is still our tracee and its exit is collected by waitpid below.
    raw_ptrace(PTRACE_INTERRUPT, tid, 0);
    tracees_.push_back(std::move(tracee));
    return {};
  }

  // Records what waitpid said about a tracee; true once it needs no more waiting.
  bool note_wait_status(Tracee& tracee, int status) {
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      tracee.gone = true;
      tracee.error = "thread exited during capture";
      return true;
    }
    if (!WIFSTOPPED(status)) return false;
    int event = status >> 16;
    int signal_number = WSTOPSIG(status);
    tracee.stopped = true;
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
  void wait_for_stops(std::vector<std::string>& warnings) {
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
          tracee.gone = true;  // ECHILD: reaped or no longer ours
          tracee.error = "thread exited during capture";
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
  void settle() {
    auto deadline = Clock::now() + kStragglerTimeout;
    for (int pass = 0;; ++pass) {
      bool pending = false;
      for (Tracee& tracee : tracees_) {
        if (tracee.stopped || tracee.gone) continue;
        int status = 0;
        pid_t waited = ::waitpid(tracee.tid, &status, __WALL | WNOHANG);
        if (waited == tracee.tid && WIFSTOPPED(status)) {
          int event = status >> 16;
          if (raw_ptrace(PTRACE_DETACH, tracee.tid, event == 0 ? WSTOPSIG(status) : 0) == 0 || errno != ESRCH)
            tracee.gone = true;
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

  void uninstall() {
    g_traced_count.store(0);
    for (std::size_t i = 0; i < std::size(kCaughtSignals); ++i) {
      if (!g_installed[i]) continue;
      g_installed[i] = false;
      ::sigaction(kCaughtSignals[i], &g_previous_actions[i], nullptr);
    }
    if (claimed_) g_capture_active.store(false);
  }

  int pid_;
  bool claimed_ = false;
  bool interrupted_any_ = false;
  std::size_t table_size_ = 0;  // entries of g_traced_tids in use
  Clock::time_point first_interrupt_{};
  std::vector<Tracee> tracees_;
};

// One anonymous mapping for every copied byte: no per-region allocation and no zero-filling by us. Its pages are
// faulted in up front (MADV_POPULATE_WRITE, as huge pages when big enough): faulting 4 KiB pages one by one inside
// process_vm_readv costs several times the copy itself (measured: 220 ms vs 30 ms for 156 MB).
struct Arena {
  std::shared_ptr<const std::byte[]> owner;
  std::byte* bytes = nullptr;
  std::uint64_t size_bytes = 0;
};
// Faults in the pages of [bytes, bytes + size_bytes) (Linux 5.14+; older kernels fault during the copy instead).
// Zeroing fresh pages costs about as much as the copy (measured: ~100 ms for 95 MB on a loaded 2-CPU machine),
// and when no reservation was made it happens inside the pause: big arenas are populated by two threads.
void populate(std::byte* bytes, std::uint64_t size_bytes) {
#ifdef MADV_POPULATE_WRITE
  constexpr std::uint64_t kParallelFromBytes = 16u << 20;
  const std::uint64_t half = (size_bytes / 2) & ~(kHugePageBytes - 1);  // page-aligned, whole huge pages
  if (size_bytes < kParallelFromBytes || std::thread::hardware_concurrency() < 2) {
    ::madvise(bytes, size_bytes, MADV_POPULATE_WRITE);
    return;
  }
  std::thread helper;
  try {
    helper = std::thread([=] { ::madvise(bytes + half, size_bytes - half, MADV_POPULATE_WRITE); });
  } catch (const std::system_error&) {
    ::madvise(bytes + half, size_bytes - half, MADV_POPULATE_WRITE);  // no thread to spare: do it here
  }
  ::madvise(bytes, half, MADV_POPULATE_WRITE);
  if (helper.joinable()) helper.join();
#else
  (void)bytes;
  (void)size_bytes;
#endif
}

Arena allocate_arena(std::uint64_t size_bytes) {
  if (size_bytes == 0) return {};
  void* memory = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return {};
  if (size_bytes >= kHugePageBytes) ::madvise(memory, size_bytes, MADV_HUGEPAGE);
  auto* bytes = static_cast<std::byte*>(memory);
  populate(bytes, size_bytes);
  return {std::shared_ptr<const std::byte[]>(
              bytes, [size_bytes](const std::byte* p) { ::munmap(const_cast<std::byte*>(p), size_bytes); }),
          bytes, size_bytes};
}

// Splits a large batch over a few threads. With thousands of small ranges the cost is per range (the kernel pins
// each remote range's pages under the target's mmap lock, which it takes shared), so threads scale it.
void read_in_parallel(const ProcessMemory& live, std::span<ProcessMemory::BatchRead> requests) {
  constexpr std::size_t kMinRequestsPerThread = 2048;
  std::size_t threads = std::min<std::size_t>({std::max(1u, std::thread::hardware_concurrency()), 4,
                                               requests.size() / kMinRequestsPerThread});
  if (threads <= 1) {
    live.read_batch(requests);
    return;
  }
  std::vector<std::thread> helpers;
  std::size_t per_thread = (requests.size() + threads - 1) / threads;
  for (std::size_t first = per_thread; first < requests.size(); first += per_thread) {
    auto part = requests.subspan(first, std::min(per_thread, requests.size() - first));
    try {
      helpers.emplace_back([&live, part] { live.read_batch(part); });
    } catch (const std::system_error&) {
      live.read_batch(part);  // no thread to spare (RLIMIT_NPROC): read it here
    }
  }
  live.read_batch(requests.first(per_thread));
  for (std::thread& helper : helpers) helper.join();
}

std::uint64_t total_bytes(std::span<const AddressRange> ranges) {
  std::uint64_t total = 0;
  for (AddressRange range : ranges) total += range.size_bytes();
  return total;
}

// Copies `ranges` (sorted, disjoint, none already in `memory`) into `memory` with batched reads. The ranges that
// fit in `reserved` go there, in order; the rest get an arena of their own, faulted in now (inside the pause), so an
// under-estimated reservation costs only its shortfall. Unreadable parts become warnings.
void copy_ranges(RegionMemory& memory, const ProcessMemory& live, const std::vector<AddressRange>& ranges,
                 Arena reserved, std::vector<std::string>& warnings) {
  const std::uint64_t total = total_bytes(ranges);
  if (total == 0) return;

  struct Part {
    Arena arena;
    std::size_t first = 0, end = 0;  // ranges[first, end) live in this arena, back to back
    std::uint64_t used_bytes = 0;
  };
  std::vector<Part> parts;
  std::size_t fitting = 0;
  std::uint64_t prefix_bytes = 0;
  while (fitting < ranges.size() && ranges[fitting].size_bytes() <= reserved.size_bytes - prefix_bytes)
    prefix_bytes += ranges[fitting++].size_bytes();
  if (fitting > 0) parts.push_back({std::move(reserved), 0, fitting, prefix_bytes});
  if (fitting < ranges.size()) {
    Arena rest = allocate_arena(total - prefix_bytes);
    if (!rest.bytes) {
      warnings.push_back("cannot allocate " + hex(total - prefix_bytes) + " bytes to copy target memory: " +
                         std::to_string(ranges.size() - fitting) + " ranges not copied");
    } else {
      parts.push_back({std::move(rest), fitting, ranges.size(), total - prefix_bytes});
    }
  }

  std::vector<ProcessMemory::BatchRead> requests;
  requests.reserve(ranges.size());
  for (const Part& part : parts) {
    std::uint64_t offset = 0;
    for (std::size_t i = part.first; i < part.end; ++i) {
      requests.push_back({ranges[i].start, std::span<std::byte>(part.arena.bytes + offset, ranges[i].size_bytes())});
      offset += ranges[i].size_bytes();
    }
  }
  read_in_parallel(live, requests);

  std::size_t failures = 0;
  std::size_t request_index = 0;
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  for (Part& part : parts) {
    std::vector<RegionMemory::ArenaSlice> slices;
    slices.reserve(part.end - part.first);
    std::uint64_t offset = 0;
    for (std::size_t i = part.first; i < part.end; ++i) {
      const auto& request = requests[request_index++];
      AddressRange copied{ranges[i].start, ranges[i].start + request.bytes_read};
      // Ranges split at a mapping boundary that were both read lie back to back in the arena too: one region, so
      // reads may span them.
      if (!slices.empty() && slices.back().range.end == copied.start &&
          slices.back().arena_offset + slices.back().range.size_bytes() == offset) {
        slices.back().range.end = copied.end;
      } else if (!copied.empty()) {
        slices.push_back({copied, offset});
      }
      if (request.bytes_read < request.out.size() && failures++ < 8)
        warnings.push_back("could not copy " + hex(request.out.size() - request.bytes_read) + " bytes at " +
                           (ranges[i].start + request.bytes_read).to_string() + " (unreadable)");
      offset += ranges[i].size_bytes();
    }
    // An over-estimated reservation gives its unused whole pages back (the mapping itself stays until the
    // snapshot goes, so nothing else can be mapped there before the final munmap).
    const std::uint64_t used_pages_end = (part.used_bytes + page - 1) / page * page;
    if (part.arena.size_bytes > used_pages_end)
      ::madvise(part.arena.bytes + used_pages_end, part.arena.size_bytes - used_pages_end, MADV_DONTNEED);
    if (auto added = memory.add_arena(std::move(part.arena.owner), part.arena.size_bytes, slices); !added)
      warnings.push_back("copied memory dropped: " + added.error().message);  // our own invariant; never expected
  }
  if (failures > 8) warnings.push_back(std::to_string(failures - 8) + " more ranges could not be copied fully");
}

// What the planner reads inside the pause when CaptureOptions::copy_first was given: those ranges from their copy
// (already in the snapshot), everything else from the stopped target.
class PauseMemory final : public Memory {
 public:
  PauseMemory(const RegionMemory& copied, const ProcessMemory& live) : copied_(copied), live_(live) {}
  Result<void> read(RemoteAddress address, std::span<std::byte> out) const override {
    if (auto region = copied_.region_containing(address); region && region->contains(address, out.size()))
      return copied_.read(address, out);
    return live_.read(address, out);
  }

 private:
  const RegionMemory& copied_;
  const ProcessMemory& live_;
};

std::uint64_t monotonic_now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

// Fills in names of threads whose name was not read before the stop.
void fill_names(int pid, std::vector<ThreadState>& threads) {
  for (ThreadState& thread : threads) {
    if (!thread.name.empty()) continue;
    if (auto name = thread_name(pid, thread.tid)) thread.name = std::move(*name);
  }
}

// The memory map: the caller's fresh copy when it passed one, else /proc/PID/maps read now.
Result<std::vector<Mapping>> current_maps(int pid, const CaptureOptions& options, std::vector<std::string>& warnings) {
  if (options.mappings) return *options.mappings;
  auto mappings = read_maps(pid, &warnings);
  if (!mappings) return std::unexpected(maps_error(pid, mappings.error()));
  return mappings;
}

// --no-stop: the target runs on; a thread blocked in the kernel still tells its sp and pc through /proc.
Result<Snapshot> capture_running(Snapshot snapshot, const std::vector<int>& tids, const CaptureOptions& options,
                                 const RegionPlanner& planner) {
  int pid = snapshot.pid;
  std::vector<SyscallState> blocked_in;  // per thread of the snapshot: its state when its registers were read
  for (int tid : tids) {
    ThreadState thread;
    thread.tid = tid;
    if (auto name = thread_name(pid, tid)) thread.name = std::move(*name);
    auto syscall_state = read_syscall(pid, tid);
    if (!syscall_state) {
      if (syscall_state.error().code == ErrorCode::permission_denied) return std::unexpected(permission_error(pid));
      if (syscall_state.error().code == ErrorCode::no_such_process) continue;  // the thread exited meanwhile
      thread.error = syscall_state.error().message;
    } else if (syscall_state->running) {
      thread.error = "running on a CPU: registers unknown without stopping the target";
    } else {
      Registers registers;
      registers.set(Reg::rsp, syscall_state->stack_pointer);
      registers.set(Reg::rip, syscall_state->program_counter);
      thread.registers = registers;
    }
    snapshot.threads.push_back(std::move(thread));
    blocked_in.push_back(syscall_state.value_or(SyscallState{}));
  }
  if (snapshot.threads.empty())
    return fail_code(ErrorCode::target_exited, "process ", pid_text(pid), " exited while being read");
  auto mappings = current_maps(pid, options, snapshot.warnings);
  if (!mappings) return std::unexpected(mappings.error());
  snapshot.mappings = std::move(*mappings);

  ProcessMemory live(pid);
  std::vector<AddressRange> requested = planner ? planner(live, snapshot.threads) : std::vector<AddressRange>{};
  auto ranges = plan_copies(requested, snapshot.mappings, options, snapshot.warnings);
  auto memory = std::make_unique<RegionMemory>();
  copy_ranges(*memory, live, ranges, Arena{}, snapshot.warnings);
  // The registers were read before the table and the stacks: a thread that left its system call meanwhile (and
  // maybe entered another, deeper in the same fiber's stack) would be unwound over stack memory that no longer
  // holds its frames. Its registers are kept only if the kernel still shows the same call, sp and pc.
  for (std::size_t i = 0; i < snapshot.threads.size(); ++i) {
    ThreadState& thread = snapshot.threads[i];
    if (!thread.registers) continue;
    auto again = read_syscall(pid, thread.tid);
    if (!again || again->running || again->syscall_number != blocked_in[i].syscall_number ||
        again->stack_pointer != blocked_in[i].stack_pointer ||
        again->program_counter != blocked_in[i].program_counter) {
      thread.registers.reset();
      thread.error = "left its system call while the running target was read: registers unknown";
    }
  }
  snapshot.memory = std::move(memory);
  snapshot.target_clock_ns = monotonic_now_ns();
  snapshot.target_was_stopped = false;
  snapshot.pause_ms.reset();
  return snapshot;
}

}  // namespace

Precopy Precopy::copy(int pid, std::vector<AddressRange> ranges, std::span<const Mapping> mappings,
                      std::uint64_t max_total_bytes) {
  Precopy precopy;
  const std::size_t count = ranges.size();
  precopy.ranges_ = std::move(ranges);
  precopy.arena_offsets_.assign(count, 0);
  precopy.copied_.assign(count, false);
  precopy.kept_.assign(count, false);

  // Which ranges may be copied: inside one readable mapping (a guard page or a hole would make a partial copy)
  // and disjoint from every other range (a snapshot's regions are disjoint; overlapping requests come from a
  // hostile table and are simply left to the pause).
  std::vector<std::size_t> order;
  order.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const AddressRange range = precopy.ranges_[i];
    if (range.empty()) continue;
    auto mapping = std::upper_bound(mappings.begin(), mappings.end(), range.start,
                                    [](RemoteAddress start, const Mapping& m) { return start < m.range.end; });
    if (mapping == mappings.end() || !mapping->readable || !mapping->range.contains(range.start) ||
        range.end > mapping->range.end)
      continue;
    order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return precopy.ranges_[a].start < precopy.ranges_[b].start;
  });
  std::vector<bool> usable(count, false);
  for (std::size_t k = 0; k < order.size(); ++k) {
    const AddressRange range = precopy.ranges_[order[k]];
    const bool overlaps_previous = k > 0 && precopy.ranges_[order[k - 1]].end > range.start;
    const bool overlaps_next = k + 1 < order.size() && precopy.ranges_[order[k + 1]].start < range.end;
    usable[order[k]] = !overlaps_previous && !overlaps_next;
  }

  std::uint64_t total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!usable[i]) continue;
    const std::uint64_t size = precopy.ranges_[i].size_bytes();
    if (size > max_total_bytes - total) {
      usable[i] = false;
      continue;
    }
    precopy.arena_offsets_[i] = total;
    total += size;
  }
  if (total == 0) return precopy;
  Arena arena = allocate_arena(total);
  if (!arena.bytes) return precopy;

  std::vector<ProcessMemory::BatchRead> requests;
  std::vector<std::size_t> request_index;
  requests.reserve(count);
  request_index.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (!usable[i]) continue;
    requests.push_back({precopy.ranges_[i].start, std::span<std::byte>(arena.bytes + precopy.arena_offsets_[i],
                                                                        precopy.ranges_[i].size_bytes())});
    request_index.push_back(i);
  }
  ProcessMemory live(pid);
  read_in_parallel(live, requests);
  for (std::size_t r = 0; r < requests.size(); ++r) {
    if (requests[r].bytes_read != requests[r].out.size()) continue;
    precopy.copied_[request_index[r]] = true;
    precopy.copied_bytes_ += requests[r].bytes_read;
  }
  precopy.arena_ = std::move(arena.owner);
  precopy.arena_bytes_ = total;
  return precopy;
}

void Precopy::keep(std::size_t index) {
  if (copied(index)) kept_[index] = true;
}

void Precopy::discard(std::size_t index) {
  if (index < kept_.size()) kept_[index] = false;
}

std::size_t Precopy::kept_count() const {
  return static_cast<std::size_t>(std::count(kept_.begin(), kept_.end(), true));
}

void Precopy::add_kept_to(RegionMemory& memory, std::vector<std::string>& warnings) const {
  std::vector<RegionMemory::ArenaSlice> slices;
  slices.reserve(kept_count());
  for (std::size_t i = 0; i < ranges_.size(); ++i)
    if (kept(i)) slices.push_back({ranges_[i], arena_offsets_[i]});
  if (auto added = memory.add_arena(arena_, arena_bytes_, slices); !added)
    warnings.push_back("stacks copied before the stop dropped: " + added.error().message);  // never expected
}

Result<Snapshot> capture_live(int pid, const CaptureOptions& options, const RegionPlanner& planner) {
  if (pid <= 0) return fail_code(ErrorCode::no_such_process, "no process with pid ", pid_text(pid));
  auto status = read_status(pid);
  if (!status) {
    if (status.error().code == ErrorCode::no_such_process)
      return fail_code(ErrorCode::no_such_process, "no process with pid ", pid_text(pid));
    return std::unexpected(status.error());
  }
  auto tids = list_threads(pid);
  if (!tids) {
    if (tids.error().code == ErrorCode::no_such_process)
      return fail_code(ErrorCode::target_exited, "process ", pid_text(pid), " exited before it could be attached");
    return std::unexpected(tids.error());
  }
  // A zombie main thread with live siblings is a running process; a zombie with no other thread has exited.
  if ((status->state == 'Z' || status->state == 'X') && tids->size() <= 1)
    return fail_code(ErrorCode::target_exited, "process ", pid_text(pid),
                     " is a zombie: it has exited and its parent (pid ", pid_text(status->parent_pid),
                     ") has not reaped it yet; there is nothing left to inspect");
  if (options.stop && status->tracer_pid != 0) return std::unexpected(permission_error(pid));

  Snapshot snapshot;
  snapshot.pid = pid;
  if (auto path = exe_path(pid)) {
    snapshot.exe_path = std::move(*path);
  } else {
    snapshot.warnings.push_back(path.error().message);
  }
  if (!options.stop) return capture_running(std::move(snapshot), *tids, options, planner);

  // The memory map now, while the target runs: with one mapping per fiber stack the kernel takes ~2 ms per 1000
  // mappings to print it, far more than the whole stop may last. plan_copies copes with mappings made since.
  auto mappings = current_maps(pid, options, snapshot.warnings);
  if (!mappings) return std::unexpected(mappings.error());
  snapshot.mappings = std::move(*mappings);

  // Names now, while the target runs, to keep the stop short; threads found later are named after detaching.
  std::vector<std::pair<int, std::string>> early_names;
  early_names.reserve(tids->size());
  for (int tid : *tids)
    if (auto name = thread_name(pid, tid)) early_names.emplace_back(tid, std::move(*name));

  Arena reserved = allocate_arena(std::min(options.expected_copy_bytes, options.max_total_bytes));
  // copy_first is known now: planned against the maps and given its own arena before the stop.
  std::vector<AddressRange> first_ranges =
      plan_copies(options.copy_first, snapshot.mappings, options, snapshot.warnings);
  Arena first_arena = allocate_arena(total_bytes(first_ranges));

  StopSession session(pid);
  if (auto begun = session.begin(); !begun) return std::unexpected(begun.error());
  if (auto attached = session.attach_all(*tids, snapshot.warnings); !attached)
    return std::unexpected(attached.error());

  // ---- The target is stopped from here until detach_all(): nothing slow in between. ----
  for (Tracee& tracee : session.tracees()) {
    if (tracee.gone && !tracee.zombie) continue;  // exited during the attach: no longer part of the process
    ThreadState thread;
    thread.tid = tracee.tid;
    if (tracee.stopped) {
      // PTRACE_GETREGS fills a user_regs_struct, which registers.cpp asserts is kUserRegsWords words.
      std::array<std::uint64_t, kUserRegsWords> user_regs{};
      if (::ptrace(PTRACE_GETREGS, tracee.tid, nullptr, user_regs.data()) == 0) {
        thread.registers = registers_from_user_regs(user_regs);
      } else {
        thread.error = "PTRACE_GETREGS failed: " + errno_text(errno);
      }
    } else {
      thread.error = tracee.error;
    }
    snapshot.threads.push_back(std::move(thread));
  }
  std::sort(snapshot.threads.begin(), snapshot.threads.end(),
            [](const ThreadState& a, const ThreadState& b) { return a.tid < b.tid; });
  for (ThreadState& thread : snapshot.threads) {
    auto found = std::lower_bound(early_names.begin(), early_names.end(), thread.tid,
                                  [](const auto& entry, int tid) { return entry.first < tid; });
    if (found != early_names.end() && found->first == thread.tid) thread.name = std::move(found->second);
  }

  ProcessMemory live(pid);
  auto memory = std::make_unique<RegionMemory>();
  copy_ranges(*memory, live, first_ranges, std::move(first_arena), snapshot.warnings);
  const std::vector<AddressRange> copied_first = memory->ranges();
  PauseMemory pause_memory(*memory, live);
  const Memory& planner_memory = first_ranges.empty() ? static_cast<const Memory&>(live) : pause_memory;
  std::vector<AddressRange> requested =
      planner ? planner(planner_memory, snapshot.threads) : std::vector<AddressRange>{};
  if (int signal_number = g_interrupted_by.load())
    return fail_code(ErrorCode::interrupted, "capture interrupted by signal ", pid_text(signal_number));
  auto ranges = plan_copies(requested, snapshot.mappings, options, snapshot.warnings);
  if (options.precopy) {
    // A kept range must not overlap anything copied now (regions of a snapshot are disjoint): it is dropped and
    // copied again with the rest, which only costs time. Planners that keep what they do not ask for never do this.
    std::vector<AddressRange> again;
    for (std::size_t i = 0; i < options.precopy->size(); ++i) {
      if (!options.precopy->kept(i)) continue;
      const AddressRange range = options.precopy->range(i);
      if (overlaps_any(range, ranges) || overlaps_any(range, copied_first)) {
        options.precopy->discard(i);
        again.push_back(range);
      }
    }
    if (!again.empty()) {
      requested.insert(requested.end(), again.begin(), again.end());
      ranges = plan_copies(requested, snapshot.mappings, options, snapshot.warnings);
    }
  }
  if (!copied_first.empty()) ranges = subtract_ranges(ranges, copied_first);
  copy_ranges(*memory, live, ranges, std::move(reserved), snapshot.warnings);
  snapshot.target_clock_ns = monotonic_now_ns();

  session.detach_all();
  auto pause_end = Clock::now();
  // ---- The target runs again. ----

  if (int signal_number = g_interrupted_by.load())
    return fail_code(ErrorCode::interrupted, "capture interrupted by signal ", pid_text(signal_number));
  if (options.precopy) options.precopy->add_kept_to(*memory, snapshot.warnings);
  snapshot.memory = std::move(memory);
  snapshot.pause_ms = std::chrono::duration<double, std::milli>(pause_end - session.first_interrupt()).count();
  snapshot.target_was_stopped = true;
  fill_names(pid, snapshot.threads);
  return snapshot;
}

}  // namespace fiberscope::target
