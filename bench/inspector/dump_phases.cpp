// dump_phases: where `fiberscope dump PID` spends its time and memory, phase by phase, with the same session
// calls the CLI makes (inspect_live, build_dump, render_text/render_json). For profiling the inspector; the
// end-to-end comparison with other tools is bench/run_inspector.sh.
//
//   dump_phases PID [--format text|json] [--repeat R] [--no-args] [--exact-stacks]
//       --no-args: BuildOptions::fiber_args = false; --exact-stacks: LiveOptions::exact_stacks (every stack copied
//       inside the pause; by default parked fibers' stacks are copied before it, and a `precopy` line says how
//       many, how many were still valid at the stop, and what the scan and the copy cost)
//   dump_phases PID --pause-only [--reserve] [--repeat R]   the all-in-the-pause capture alone, with the planner's
//                                                           share of the pause; --reserve: expected_copy_bytes
//   dump_phases PID --proposed [--repeat R]   the whole text dump as the session could run it: maps read once
//       (CaptureOptions::mappings), the copy reserved before the stop (fibers::expected_copy_bytes) and no fiber
//       arguments (BuildOptions::fiber_args, grouped text does not print them); prints pause, total, CPU, peak RSS
//
// Prints one line per phase: `BENCH name=dump_phase phase=<phase> ms=<wall> rss_mb=<after> hwm_mb=<peak so far>`
// and the pause as `BENCH name=dump_phase phase=pause ms=<pause>`; with the pre-copy,
// `BENCH name=dump_phase phase=precopy stacks=<copied before> kept=<valid at the stop> mb=.. scan_ms=.. copy_ms=..`.
// With --repeat, the whole sequence runs R times
// in this process (the first run is cold, later ones reuse nothing but the page cache).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "fibers/capture_plan.h"
#include "report/json_reporter.h"
#include "report/text_reporter.h"
#include "session/inspection.h"
#include "target/live_capture.h"
#include "target/process_memory.h"
#include "target/proc_files.h"

namespace {

using Clock = std::chrono::steady_clock;

// VmRSS and VmHWM of this process, in MiB.
std::pair<double, double> memory_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  double rss = 0, hwm = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::strtod(line.c_str() + 6, nullptr) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::strtod(line.c_str() + 6, nullptr) / 1024;
  }
  return {rss, hwm};
}

// User + system CPU time of this process (all its threads), in ms: steadier than wall time on a busy machine.
double cpu_ms() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec);
  const double microseconds = static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  return seconds * 1e3 + microseconds / 1e3;
}

class PhaseClock {
 public:
  void end(const char* phase) {
    const auto now = Clock::now();
    const double cpu = cpu_ms();
    const auto [rss, hwm] = memory_mb();
    std::printf("BENCH name=dump_phase phase=%s ms=%.1f cpu_ms=%.1f rss_mb=%.0f hwm_mb=%.0f\n", phase,
                std::chrono::duration<double, std::milli>(now - last_).count(), cpu - last_cpu_, rss, hwm);
    last_ = Clock::now();
    last_cpu_ = cpu_ms();
  }

 private:
  Clock::time_point last_ = Clock::now();
  double last_cpu_ = cpu_ms();
};

// The capture as session::inspect_live does it, timing the planner (table read + plan), which runs while the
// target is stopped; `proposed` adds the rest of a text dump with the session-level speed options.
int pause_only(int pid, bool reserve, bool proposed) {
  using namespace fiberscope;
  const auto start = Clock::now();
  const double start_cpu = cpu_ms();
  auto mappings = target::read_maps(pid, nullptr);
  if (!mappings) {
    std::fprintf(stderr, "dump_phases: %s\n", mappings.error().message.c_str());
    return 1;
  }
  session::ModuleMap modules(*mappings, target::exe_path(pid).value_or(""));
  auto root = fibers::locate_debug_root(modules.symbols());
  double planner_ms = 0;
  std::size_t fibers = 0;
  std::optional<fibers::FiberTable> table;
  auto planner = [&](const target::Memory& live, const std::vector<target::ThreadState>& threads) {
    const auto planner_start = Clock::now();
    if (root)
      if (auto read = fibers::read_fiber_table(live, *root, {.target_stopped = true})) table = std::move(*read);
    auto ranges = fibers::plan_regions(table ? &*table : nullptr, threads, *mappings);
    fibers = table ? table->fibers.size() : 0;
    planner_ms = std::chrono::duration<double, std::milli>(Clock::now() - planner_start).count();
    return ranges;
  };
  target::CaptureOptions options;
  if ((reserve || proposed) && root)
    options.expected_copy_bytes = fibers::expected_copy_bytes(target::ProcessMemory(pid), *root);
  if (proposed) options.mappings = &*mappings;
  auto snapshot = target::capture_live(pid, options, planner);
  if (!snapshot) {
    std::fprintf(stderr, "dump_phases: %s\n", snapshot.error().message.c_str());
    return 1;
  }
  if (!proposed) {
    std::printf("BENCH name=dump_pause fibers=%zu pause_ms=%.2f planner_ms=%.2f reserved_mb=%.1f\n", fibers,
                snapshot->pause_ms.value_or(-1), planner_ms, options.expected_copy_bytes / 1048576.0);
    return 0;
  }
  session::BuildOptions build_options;
  build_options.fiber_args = false;
  report::Dump dump = session::build_dump(*snapshot, table ? &*table : nullptr, modules, build_options);
  const std::string out = report::render_text(dump);
  std::printf("BENCH name=dump_proposed fibers=%zu pause_ms=%.2f total_ms=%.1f cpu_ms=%.1f hwm_mb=%.0f "
              "output_bytes=%zu\n",
              dump.fibers.size(), snapshot->pause_ms.value_or(-1),
              std::chrono::duration<double, std::milli>(Clock::now() - start).count(), cpu_ms() - start_cpu,
              memory_mb().second, out.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dump_phases PID [--format text|json] [--repeat R]\n");
    return 2;
  }
  const int pid = std::atoi(argv[1]);
  bool json = false;
  bool with_args = true;
  bool exact_stacks = false;
  int repeat = 1;
  for (int i = 2; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--no-args") with_args = false;
    if (std::string_view(argv[i]) == "--exact-stacks") exact_stacks = true;
  }
  for (int i = 2; i < argc; ++i)
    if (std::string_view(argv[i]) == "--pause-only" || std::string_view(argv[i]) == "--proposed") {
      const bool proposed = std::string_view(argv[i]) == "--proposed";
      for (int j = i + 1; j + 1 < argc; ++j)
        if (std::string_view(argv[j]) == "--repeat") repeat = std::max(1, std::atoi(argv[j + 1]));
      bool reserve = false;
      for (int j = i + 1; j < argc; ++j) reserve |= std::string_view(argv[j]) == "--reserve";
      for (int run = 0; run < repeat; ++run)
        if (int failed = pause_only(pid, reserve, proposed)) return failed;
      return 0;
    }
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--format") json = std::string_view(argv[i + 1]) == "json";
    if (std::string_view(argv[i]) == "--repeat") repeat = std::max(1, std::atoi(argv[i + 1]));
  }
  for (int run = 0; run < repeat; ++run) {
    const auto start = Clock::now();
    const double start_cpu = cpu_ms();
    PhaseClock clock;
    auto inspection = fiberscope::session::inspect_live(pid, {.stop = true, .exact_stacks = exact_stacks});
    if (!inspection) {
      std::fprintf(stderr, "dump_phases: %s\n", inspection.error().message.c_str());
      return 1;
    }
    clock.end("inspect_live");
    std::printf("BENCH name=dump_phase phase=pause ms=%.2f\n", inspection->snapshot.pause_ms.value_or(-1));
    if (const auto& precopy = inspection->precopy)
      std::printf("BENCH name=dump_phase phase=precopy stacks=%zu kept=%zu mb=%.1f scan_ms=%.1f copy_ms=%.1f\n",
                  precopy->stacks_planned, precopy->stacks_kept, precopy->bytes_copied / 1048576.0,
                  precopy->scan_ms, precopy->copy_ms);
    fiberscope::session::BuildOptions build_options;
    build_options.fiber_args = with_args;
    fiberscope::report::Dump dump = fiberscope::session::build_dump(*inspection, build_options);
    clock.end("build_dump");
    std::string out = json ? fiberscope::report::render_json(dump) : fiberscope::report::render_text(dump);
    clock.end("render");
    std::size_t frames = 0;
    for (const auto& fiber : dump.fibers) frames += fiber.stack.frames.size();
    std::printf("BENCH name=dump_phase phase=total ms=%.1f cpu_ms=%.1f fibers=%zu frames=%zu output_bytes=%zu\n",
                std::chrono::duration<double, std::milli>(Clock::now() - start).count(), cpu_ms() - start_cpu,
                dump.fibers.size(), frames, out.size());
  }
  return 0;
}
