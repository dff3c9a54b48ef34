// Reading a live process's /proc files: its memory map, threads, names, executable, status and the syscall a
// thread is blocked in.
//
//   auto mappings = read_maps(pid);          // resolve modules before stopping the target
//   auto tids = list_threads(pid);
//
// /proc text is hostile like everything else from the target (a mapped file's name is chosen by the target):
// parsers skip lines they do not understand, with a warning, and never trust a length or count they read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "target/snapshot.h"

namespace fiberscope::target {

// Parses the text of /proc/PID/maps. Malformed lines are skipped; if `warnings` is given, each skip is described
// there ("maps line 7: bad address range"), at most a few dozen. " (deleted)" is taken off the path and noted.
std::vector<Mapping> parse_maps(std::string_view text, std::vector<std::string>* warnings = nullptr);

// Reads and parses /proc/PID/maps.
Result<std::vector<Mapping>> read_maps(int pid, std::vector<std::string>* warnings = nullptr);

// The thread ids in /proc/PID/task, sorted.
Result<std::vector<int>> list_threads(int pid);

// /proc/PID/task/TID/comm without its newline.
Result<std::string> thread_name(int pid, int tid);

// The path of the main executable (readlink /proc/PID/exe), " (deleted)" removed.
Result<std::string> exe_path(int pid);

// The fields of /proc/PID/status the capture needs to explain a failure.
struct ProcessStatus {
  char state = '?';      // R, S, D, T, t, Z, X ...
  int tracer_pid = 0;    // 0 when not traced
  int parent_pid = 0;
  unsigned real_uid = 0;
  unsigned effective_uid = 0;
  std::string name;
};
Result<ProcessStatus> read_status(int pid);

// The state letter of one thread, from /proc/PID/task/TID/stat (after the parenthesised comm, which may itself
// contain ") ").
Result<char> thread_state(int pid, int tid);

// What /proc/PID/task/TID/syscall says about a thread that runs on: the stack and instruction pointers the kernel
// saved when it entered the kernel, if it is blocked there.
struct SyscallState {
  bool running = false;                   // "running": on a CPU, nothing saved
  std::optional<long> syscall_number;     // empty when blocked but not in a system call ("-1 sp pc")
  std::uint64_t stack_pointer = 0;
  std::uint64_t program_counter = 0;
};
// Parses the text of /proc/PID/task/TID/syscall.
Result<SyscallState> parse_syscall(std::string_view text);
Result<SyscallState> read_syscall(int pid, int tid);

// `result`, its error replaced by `instead` when it says the process or thread is gone (no_such_process): for
// callers that explain a vanished target in their own terms.
//   FS_TRY(tids, replace_if_gone(list_threads(pid), fail_code(ErrorCode::target_exited, "process exited")));
template <class T>
Result<T> replace_if_gone(Result<T> result, std::unexpected<Error> instead) {
  if (!result && result.error().code == ErrorCode::no_such_process) return instead;
  return result;
}

// Reads a whole /proc file (whose reported size is 0) up to `max_bytes`; fails if it is longer.
Result<std::string> read_proc_file(const std::string& path, std::uint64_t max_bytes);

}  // namespace fiberscope::target
