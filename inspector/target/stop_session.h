// StopSession: the part of a live capture that stops the target. It seizes every thread (PTRACE_SEIZE +
// PTRACE_INTERRUPT, rescanning /proc/PID/task until no thread appears), waits for the stops, reads the registers
// and detaches, on every path: its destructor detaches and restores the signal dispositions, and a
// SIGINT/SIGTERM/SIGHUP that arrives meanwhile detaches from its handler before the signal takes its course.
//
//   StopSession session(pid);
//   FS_TRY_DISCARD(session.begin());                      // one session at a time per process
//   FS_TRY_DISCARD(session.attach_all(tids, warnings));   // every thread stopped, gone or listed with an error
//   std::vector<ThreadState> threads = session.thread_states();
//   ... copy memory, checking session.not_interrupted() ...
//   session.detach_all();                                 // the target runs again
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"
#include "target/snapshot.h"

namespace fiberscope::target {

// Why ptrace may not attach to `pid`, most specific reason first (another tracer, uid, yama ptrace_scope,
// CAP_SYS_PTRACE), as one ErrorCode::permission_denied error that says what to change.
Error attach_permission_error(int pid);

// Names a file that the signal handler of a capture deletes before the signal takes its course (a partly written
// core, mode 0600, holding the target's memory); one at a time. False if the path is too long to be kept.
bool remove_if_interrupted(const std::string& path);
// Forgets that file (written in full and renamed, or deleted by its owner).
void keep_if_interrupted();

// One thread the session tried to seize.
struct Tracee {
  pid_t tid = 0;
  std::size_t table_index = 0;  // index in the signal handler's table of traced threads
  bool stopped = false;         // in a ptrace-stop: registers readable, must be detached
  bool gone = false;            // exited or reaped: nothing more to do
  bool timed_out = false;       // seized but never stopped (uninterruptible sleep): released by settle()
  bool zombie = false;          // an exited main thread whose siblings run on: listed, never seized
  int reinject_signal = 0;      // a signal-delivery-stop's signal, given back on detach
  std::string error;            // why its registers are unknown
};

class ExecReaper;

class StopSession {
 public:
  using Clock = std::chrono::steady_clock;

  explicit StopSession(int pid) : pid_(pid) {}
  ~StopSession();
  StopSession(const StopSession&) = delete;
  StopSession& operator=(const StopSession&) = delete;

  // Claims the signal handler's table (fails if another capture runs in this process) and installs the handlers.
  Result<void> begin();
  // Seizes every thread, starting with `first_tids` and rescanning until no new one appears; every thread ends
  // stopped, gone or timed out (with a warning). Fails if the process exited or exec'd (then, with
  // ErrorCode::target_exited, "exec'd during the capture; try again"), on a permission problem, or when interrupted.
  // Never blocks on an exec by one of the target's threads.
  Result<void> attach_all(const std::vector<int>& first_tids, std::vector<std::string>& warnings);
  // The threads of the process, sorted by tid: registers for the stopped ones, an error for the others. Threads
  // that exited during the attach are left out (a zombie main thread is listed).
  std::vector<ThreadState> thread_states() const;
  // Fails with ErrorCode::interrupted once SIGINT/SIGTERM/SIGHUP arrived during the session.
  Result<void> not_interrupted() const;
  // Detaches every stopped thread, giving back any signal it was about to receive.
  void detach_all();

  Clock::time_point first_interrupt() const { return first_interrupt_; }

 private:
  Result<void> attach_rounds(const std::vector<int>& first_tids, std::vector<std::string>& warnings);
  Result<void> seize(int tid);
  bool process_execd();
  void note_not_ours(Tracee& tracee);
  void adopt_exec_successors();
  std::unexpected<Error> execd() const;
  bool note_wait_status(Tracee& tracee, int status);
  void wait_for_stops(std::vector<std::string>& warnings);
  void settle();
  void uninstall();
  std::unexpected<Error> target_exited() const;

  int pid_;
  bool claimed_ = false;
  bool interrupted_any_ = false;
  bool exec_seen_ = false;             // evidence that the process exec'd; process_execd() confirms it
  ExecReaper* reaper_ = nullptr;       // during attach_all
  std::size_t table_size_ = 0;  // entries of the handler's table in use
  Clock::time_point first_interrupt_{};
  std::vector<Tracee> tracees_;
};

}  // namespace fiberscope::target
