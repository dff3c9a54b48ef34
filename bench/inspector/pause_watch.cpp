// pause_watch: measures from outside how long a process is kept stopped by a debugger, for tools that do not
// report it themselves (Delve, eu-stack, gdb). Samples the state letter of the process's main thread in
// /proc/PID/stat every --interval-us microseconds (default 500) until it receives SIGTERM/SIGINT or the process
// exits, then prints
//   PAUSE pid=P stopped_ms=<time seen in a stop, 't' or 'T'> span_ms=<first stopped sample to last> samples=N
// Each sample that finds the thread stopped counts the interval since the previous sample, so stopped_ms is good
// to about one interval per stop. A debugger that stops all threads stops the main one too.
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

  const std::string stat_path = "/proc/" + std::to_string(pid) + "/stat";
  double stopped_ms = 0, first_stopped = -1, last_stopped = -1, previous = now_ms();
  long samples = 0;
  while (!g_done) {
    const char state = state_of(stat_path);
    const double now = now_ms();
    if (state == 0) break;  // the process is gone
    const bool stopped = state == 't' || state == 'T';
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
