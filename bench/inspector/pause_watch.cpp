// pause_watch: measures from outside how long a process is kept stopped by a debugger, for tools that do not
// report it themselves (Delve, eu-stack, gdb). Samples the state letter of every thread of the process
// (/proc/PID/task/TID/stat) every --interval-us microseconds (default 500) until it receives SIGTERM/SIGINT or the
// process exits, then prints
//   PAUSE pid=P stopped_ms=<time any thread was seen in a stop, 't' or 'T'> span_ms=<first such sample to last>
//         samples=N
// Each sample that finds a thread stopped counts the interval since the previous sample, so stopped_ms is good to
// about one interval per stop (a sample of 100 threads takes about a millisecond). Any thread, not only the main
// one: eu-stack stops and unwinds the threads one at a time.
#include <dirent.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

namespace {

std::atomic<bool> g_done{false};

void on_signal(int) { g_done = true; }

double now_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

// The state letter of /proc/PID/stat (after the last ')': comm may contain anything), or 0 if unreadable.
char state_of(const std::string& stat_path) {
  std::FILE* file = std::fopen(stat_path.c_str(), "re");
  if (!file) return 0;
  char text[512];
  const std::size_t size = std::fread(text, 1, sizeof text - 1, file);
  std::fclose(file);
  text[size] = '\0';
  const char* paren = std::strrchr(text, ')');
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

// True if some thread of `pid` is in a stop; false if none is; nullopt once the process is gone.
std::optional<bool> any_thread_stopped(const std::string& task_dir) {
  DIR* dir = ::opendir(task_dir.c_str());
  if (!dir) return std::nullopt;
  bool stopped = false;
  bool any = false;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const char state = state_of(task_dir + "/" + entry->d_name + "/stat");
    any |= state != 0;
    if (state == 't' || state == 'T') {
      stopped = true;
      break;
    }
  }
  ::closedir(dir);
  if (!any && !stopped) return std::nullopt;
  return stopped;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: pause_watch PID [--interval-us N]\n");
    return 2;
  }
  const int pid = std::atoi(argv[1]);
  long interval_us = 500;
  if (argc == 4 && std::strcmp(argv[2], "--interval-us") == 0) interval_us = std::max(50L, std::atol(argv[3]));
  struct sigaction action {};
  action.sa_handler = on_signal;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);

  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  double stopped_ms = 0, first_stopped = -1, last_stopped = -1, previous = now_ms();
  long samples = 0;
  while (!g_done) {
    const std::optional<bool> seen = any_thread_stopped(task_dir);
    const double now = now_ms();
    if (!seen) break;  // the process is gone
    const bool stopped = *seen;
    if (stopped) stopped_ms += now - previous;
    if (stopped) {
      if (first_stopped < 0) first_stopped = now;
      last_stopped = now;
    }
    previous = now;
    ++samples;
    timespec pause{0, interval_us * 1000};
    ::nanosleep(&pause, nullptr);
  }
  std::printf("PAUSE pid=%d stopped_ms=%.1f span_ms=%.1f samples=%ld\n", pid, stopped_ms,
              first_stopped < 0 ? 0.0 : last_stopped - first_stopped, samples);
  return 0;
}
