// The target survives: hundreds of attach/dump/detach rounds on a process whose fibers and threads churn under load,
// and an inspector killed (SIGKILL) or interrupted (SIGINT) while it holds the target seized.
//
// The stress rounds use the session API in-process: every round captures the target (ptrace-stop, copy, detach)
// and reads its fiber table, then builds the full dump (unwinding, symbols, checks) after the detach. The target
// (tests/programs/stress) counts messages, fibers and threads, so the test can prove it kept running and lost
// nothing, and /proc says after every round whether anything was left stopped or traced.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "session/inspection.h"
#include "target/proc_files.h"
#include "test_process.h"

namespace {

using namespace fiberscope;
using namespace std::chrono_literals;
using testing::TestProcess;

std::string bin(const std::string& name) { return std::string(FIBERSCOPE_TEST_BIN_DIR) + "/" + name; }

// The counters of a STATUS or DONE line ("sent=12 received=12 ...").
using Counters = std::map<std::string, unsigned long long>;

Counters parse_counters(const std::vector<std::string>& words) {
  Counters counters;
  for (const std::string& word : words) {
    if (auto equals = word.find('='); equals != std::string::npos)
      counters[word.substr(0, equals)] = std::stoull(word.substr(equals + 1));
  }
  return counters;
}

Counters status_of(TestProcess& target) {
  ::kill(target.pid(), SIGUSR1);
  auto words = target.wait_for("STATUS");
  REQUIRE(words);
  return parse_counters(*words);
}

// Threads of `pid` that are in a stop (ptrace 't' or job-control 'T') right now; threads that exit meanwhile are
// skipped.
int stopped_threads(int pid) {
  auto tids = target::list_threads(pid);
  if (!tids) return 0;
  int stopped = 0;
  for (int tid : *tids) {
    auto state = target::thread_state(pid, tid);
    if (state && (*state == 't' || *state == 'T')) ++stopped;
  }
  return stopped;
}

int tracer_of(int pid) {
  auto status = target::read_status(pid);
  return status ? status->tracer_pid : -1;
}

// Starts `fiberscope dump PID` and waits until it has the target seized (TracerPid names it); false if it finished
// before that was seen.
bool start_dump_and_catch_it_attached(int target_pid, pid_t& inspector) {
  inspector = ::fork();
  if (inspector == 0) {
    int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, STDOUT_FILENO);
    ::dup2(null_fd, STDERR_FILENO);
    const std::string fiberscope = bin("fiberscope");
    const std::string pid_text = std::to_string(target_pid);
    ::execl(fiberscope.c_str(), fiberscope.c_str(), "dump", pid_text.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (tracer_of(target_pid) == inspector) return true;
    int status = 0;
    if (::waitpid(inspector, &status, WNOHANG) == inspector) {
      inspector = -1;
      return false;
    }
  }
  return false;
}

// True once every thread of `pid` runs free again and the counters move on.
bool runs_free_and_progresses(TestProcess& target) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (tracer_of(target.pid()) != 0 || stopped_threads(target.pid()) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  const Counters before = status_of(target);
  std::this_thread::sleep_for(50ms);
  const Counters after = status_of(target);
  return after.at("sent") > before.at("sent") && after.at("threads") > before.at("threads");
}

// Stops the target with SIGTERM and checks its final account: everything sent was received, exit code 0.
void stop_and_check_nothing_lost(TestProcess& target) {
  ::kill(target.pid(), SIGTERM);
  auto done = target.wait_for("DONE", 30s);
  REQUIRE(done);
  const Counters counters = parse_counters(*done);
  CHECK(counters.at("sent") > 0);
  CHECK(counters.at("sent") == counters.at("received"));
  CHECK(counters.at("checksum_sent") == counters.at("checksum_received"));
  int status = 0;
  REQUIRE(target.reap(&status));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace

TEST_CASE("500 rounds of attach then full dump then detach leave a churning target unharmed") {
  TestProcess target({bin("stress_target"), "--churn-threads", "2"});
  REQUIRE(target.wait_for("READY"));
  const Counters start = status_of(target);
  Counters middle;

  constexpr int kRounds = 500;
  session::ModuleCache cache;
  int failed_rounds = 0, stopped_after_round = 0, traced_after_round = 0, full_dumps = 0;
  std::size_t most_threads = 0, most_fibers = 0;
  double longest_pause_ms = 0, total_pause_ms = 0;
  const auto began = std::chrono::steady_clock::now();
  for (int round = 1; round <= kRounds; ++round) {
    auto inspection = session::inspect_live(target.pid(), {.stop = true, .cache = &cache});
    if (!inspection || !inspection->table) {
      ++failed_rounds;
      UNSCOPED_INFO("round " << round << ": " << (inspection ? "no fiber table" : inspection.error().message));
    } else {
      most_threads = std::max(most_threads, inspection->snapshot.threads.size());
      most_fibers = std::max(most_fibers, inspection->table->fibers.size());
      const double pause = inspection->snapshot.pause_ms.value_or(0);
      longest_pause_ms = std::max(longest_pause_ms, pause);
      total_pause_ms += pause;
      report::Dump dump = session::build_dump(*inspection, {});
      CHECK(!dump.fibers.empty());
      ++full_dumps;
    }
    // Sampled right after the round: the inspector has detached, so nothing may be stopped or traced.
    if (stopped_threads(target.pid()) != 0) ++stopped_after_round;
    if (tracer_of(target.pid()) != 0) ++traced_after_round;
    if (round == kRounds / 2) middle = status_of(target);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  const Counters end = status_of(target);

  std::fprintf(stderr,
               "stress: %d rounds (%d full dumps) in %.1f s; pause mean %.2f ms, max %.2f ms; up to %zu threads and "
               "%zu fibers; target sent %llu messages, spawned %llu fibers, created %llu threads meanwhile\n",
               kRounds, full_dumps, seconds, total_pause_ms / kRounds, longest_pause_ms, most_threads, most_fibers,
               end.at("sent") - start.at("sent"), end.at("spawned") - start.at("spawned"),
               end.at("threads") - start.at("threads"));
  CHECK(failed_rounds == 0);
  CHECK(full_dumps == kRounds);
  CHECK(stopped_after_round == 0);
  CHECK(traced_after_round == 0);
  for (const char* counter : {"sent", "received", "spawned", "threads", "rounds"}) {
    INFO(counter);
    CHECK(middle.at(counter) > start.at(counter));
    CHECK(end.at(counter) > middle.at(counter));
  }
  stop_and_check_nothing_lost(target);
}

TEST_CASE("an inspector killed with SIGKILL while it holds the target seized leaves the target running") {
  TestProcess target({bin("stress_target"), "--churn-threads", "8"});
  REQUIRE(target.wait_for("READY"));
  // The pause lasts milliseconds: catch a `fiberscope dump` holding the target, freeze it there with SIGSTOP (the
  // target stays ptrace-stopped), check that, then SIGKILL it. The kernel must detach and resume every thread.
  bool caught = false;
  for (int attempt = 0; attempt < 100 && !caught; ++attempt) {
    pid_t inspector = -1;
    if (!start_dump_and_catch_it_attached(target.pid(), inspector)) continue;
    ::kill(inspector, SIGSTOP);
    // Caught when it really held the target stopped: seized (between PTRACE_SEIZE and the last PTRACE_DETACH) and
    // some thread in its ptrace-stop. Otherwise (just seized, or already resuming) kill it anyway and try again.
    std::this_thread::sleep_for(20ms);
    caught = tracer_of(target.pid()) == inspector && stopped_threads(target.pid()) > 0;
    ::kill(inspector, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(inspector, &status, 0) == inspector);
    CHECK(WIFSIGNALED(status));
    CHECK(runs_free_and_progresses(target));
  }
  if (!caught) WARN("skipped: no attempt caught fiberscope dump holding the target stopped (machine too fast?)");
  CHECK(tracer_of(target.pid()) == 0);
  stop_and_check_nothing_lost(target);
}

TEST_CASE("Ctrl-C to fiberscope dump while it holds the target stopped detaches and the dump dies by SIGINT") {
  // Shell exit status 130: the capture's handler releases every thread, then re-raises SIGINT with its previous
  // (default) disposition, so the inspector ends as any program interrupted by Ctrl-C does.
  TestProcess target({bin("stress_target"), "--churn-threads", "8"});
  REQUIRE(target.wait_for("READY"));
  bool caught = false;
  for (int attempt = 0; attempt < 100 && !caught; ++attempt) {
    pid_t inspector = -1;
    if (!start_dump_and_catch_it_attached(target.pid(), inspector)) continue;
    ::kill(inspector, SIGSTOP);  // hold it inside the capture, as a slow capture would be
    std::this_thread::sleep_for(20ms);
    caught = tracer_of(target.pid()) == inspector && stopped_threads(target.pid()) > 0;
    if (caught) ::kill(inspector, SIGINT);
    ::kill(inspector, SIGCONT);
    int status = 0;
    REQUIRE(::waitpid(inspector, &status, 0) == inspector);
    if (caught) {
      CHECK(WIFSIGNALED(status));
      CHECK(WTERMSIG(status) == SIGINT);
    } else {
      CHECK(WIFEXITED(status));  // a dump that was let go finishes normally
    }
    CHECK(runs_free_and_progresses(target));
  }
  if (!caught) WARN("skipped: no attempt caught fiberscope dump holding the target stopped (machine too fast?)");
  stop_and_check_nothing_lost(target);
}
