#include <catch2/catch.hpp>

#include <sys/ptrace.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "target/live_capture.h"
#include "target/proc_files.h"
#include "target/process_memory.h"
#include "test_process.h"

using namespace fiberscope;
using namespace fiberscope::target;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;
using namespace std::chrono_literals;

namespace {

std::uint64_t parse_address(const std::string& text) { return std::strtoull(text.c_str(), nullptr, 16); }

// What threads_blocked printed: its buffer and counters, and each worker's tid, name and an address on its stack.
struct BlockedProgram {
  RemoteAddress buffer;
  std::uint64_t buffer_bytes = 0;
  RemoteAddress progress_counter;
  RemoteAddress signal_count;
  struct Worker {
    int tid;
    std::string name;
    RemoteAddress local;
  };
  std::vector<Worker> workers;
};

BlockedProgram start_blocked(TestProcess& target) {
  BlockedProgram program;
  for (;;) {
    auto line = target.next_line();
    REQUIRE(line);
    std::istringstream words(*line);
    std::string kind;
    words >> kind;
    if (kind == "THREAD") {
      BlockedProgram::Worker worker;
      std::string local;
      words >> worker.tid >> worker.name >> local;
      worker.local = RemoteAddress(parse_address(local));
      program.workers.push_back(worker);
    } else if (kind == "READY") {
      std::string pid, buffer, counter, signals;
      words >> pid >> buffer >> program.buffer_bytes >> counter >> signals;
      program.buffer = RemoteAddress(parse_address(buffer));
      program.progress_counter = RemoteAddress(parse_address(counter));
      program.signal_count = RemoteAddress(parse_address(signals));
      return program;
    }
  }
}

const Mapping* mapping_containing(const Snapshot& snapshot, std::uint64_t address) {
  for (const Mapping& mapping : snapshot.mappings)
    if (mapping.range.contains(RemoteAddress(address))) return &mapping;
  return nullptr;
}

char state_of(int pid) { return thread_state(pid, pid).value_or('?'); }

// Polls `condition` for up to two seconds.
template <class Condition>
bool eventually(Condition condition) {
  for (int i = 0; i < 400; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

// True if the counter threads_blocked ticks every millisecond moves on.
bool keeps_running(int pid, RemoteAddress counter) {
  ProcessMemory memory(pid);
  auto before = memory.read_u64(counter);
  if (!before) return false;
  return eventually([&] {
    auto now = memory.read_u64(counter);
    return now && *now > *before;
  });
}

// READY comes when every worker has started, a moment before each reaches its read(); waits for that.
bool workers_blocked_in_read(int pid, const BlockedProgram& program) {
  return eventually([&] {
    return std::all_of(program.workers.begin(), program.workers.end(), [&](const BlockedProgram::Worker& worker) {
      auto state = read_syscall(pid, worker.tid);
      return state && state->syscall_number == 0;
    });
  });
}

RegionPlanner plan_nothing() {
  return [](const Memory&, const std::vector<ThreadState>&) { return std::vector<AddressRange>{}; };
}

}  // namespace

TEST_CASE("capturing a blocked multi-threaded process finds every thread with its name, registers and stack") {
  TestProcess target({bin("threads_blocked"), "4"});
  BlockedProgram program = start_blocked(target);
  REQUIRE(program.workers.size() == 4);

  auto snapshot = capture_live(target.pid(), {}, plan_nothing());
  REQUIRE(snapshot);
  CHECK(snapshot->pid == target.pid());
  CHECK(snapshot->exe_path == bin("threads_blocked"));
  CHECK(snapshot->target_was_stopped);
  REQUIRE(snapshot->threads.size() == 5);
  CHECK(snapshot->target_clock_ns > 0);

  const ThreadState& main_thread = snapshot->threads.front();
  CHECK(main_thread.tid == target.pid());
  CHECK(main_thread.name == "threads_blocked");
  REQUIRE(main_thread.registers);
  const Mapping* main_stack = mapping_containing(*snapshot, main_thread.registers->sp());
  REQUIRE(main_stack);
  CHECK(main_stack->path == "[stack]");

  for (const auto& worker : program.workers) {
    auto thread = std::find_if(snapshot->threads.begin(), snapshot->threads.end(),
                               [&](const ThreadState& t) { return t.tid == worker.tid; });
    REQUIRE(thread != snapshot->threads.end());
    CHECK(thread->name == worker.name);
    REQUIRE(thread->registers);
    CHECK(thread->registers->has(Reg::rbx));
    // The stack pointer lies in the same mapping as a local variable of the thread's deepest frame, below it.
    const Mapping* stack = mapping_containing(*snapshot, thread->registers->sp());
    REQUIRE(stack);
    CHECK(stack->range.contains(worker.local));
    CHECK(thread->registers->sp() < worker.local.value());
    // Blocked in read(): the pc is in executable code (libc's syscall wrapper).
    const Mapping* code = mapping_containing(*snapshot, thread->registers->pc());
    REQUIRE(code);
    CHECK(code->executable);
  }
}

TEST_CASE("planned regions are copied and read back equal to what the program wrote") {
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  std::size_t threads_seen_by_planner = 0;
  auto planner = [&](const Memory& live, const std::vector<ThreadState>& threads) {
    threads_seen_by_planner = threads.size();
    std::vector<AddressRange> ranges;
    // The planner reads the stopped target directly: a pointer-sized value from the buffer.
    if (live.read_u64(program.buffer)) {
      ranges.push_back({program.buffer, program.buffer + 4096});
      ranges.push_back({program.buffer + 2048, program.buffer + program.buffer_bytes});  // overlaps the first
    }
    for (const ThreadState& thread : threads)
      if (thread.registers)
        ranges.push_back({RemoteAddress(thread.registers->sp()), RemoteAddress(thread.registers->sp() + 256)});
    ranges.push_back({RemoteAddress(0x10), RemoteAddress(0x20)});  // unmapped: a warning, not a failure
    return ranges;
  };
  auto snapshot = capture_live(target.pid(), {}, planner);
  REQUIRE(snapshot);
  CHECK(threads_seen_by_planner == 3);
  REQUIRE(snapshot->memory);
  std::vector<std::byte> copy(program.buffer_bytes);
  REQUIRE(snapshot->memory->read(program.buffer, copy));
  for (std::size_t i = 0; i < copy.size(); ++i)
    REQUIRE(copy[i] == std::byte(static_cast<std::uint8_t>(i * 7 + 3)));
  for (const ThreadState& thread : snapshot->threads)
    CHECK(snapshot->memory->read_u64(RemoteAddress(thread.registers->sp())));  // return address at the top
  CHECK_FALSE(snapshot->memory->read_u64(RemoteAddress(0x10)));
  CHECK(std::any_of(snapshot->warnings.begin(), snapshot->warnings.end(),
                    [](const std::string& w) { return w.find("0x10") != std::string::npos; }));
}

TEST_CASE("thousands of small ranges are copied exactly, with or without a pre-faulted reservation") {
  TestProcess target({bin("threads_blocked"), "1"});
  BlockedProgram program = start_blocked(target);
  CaptureOptions options;
  options.expected_copy_bytes = GENERATE(0u, 16u, 1u << 20);  // none, too small, plenty
  // Every other byte of the buffer: 4096 ranges that cannot merge, enough to be split over threads.
  auto snapshot = capture_live(target.pid(), options, [&](const Memory&, const std::vector<ThreadState>&) {
    std::vector<AddressRange> ranges;
    for (std::uint64_t i = 0; i < program.buffer_bytes; i += 2)
      ranges.push_back({program.buffer + i, program.buffer + i + 1});
    return ranges;
  });
  REQUIRE(snapshot);
  auto* copied = dynamic_cast<RegionMemory*>(snapshot->memory.get());
  REQUIRE(copied);
  CHECK(copied->region_count() == program.buffer_bytes / 2);
  CHECK(copied->total_bytes() == program.buffer_bytes / 2);
  for (std::uint64_t i = 0; i < program.buffer_bytes; i += 2) {
    auto byte = snapshot->memory->read_object<std::uint8_t>(program.buffer + i);
    REQUIRE(byte);
    REQUIRE(*byte == static_cast<std::uint8_t>(i * 7 + 3));
    REQUIRE_FALSE(snapshot->memory->read_object<std::uint8_t>(program.buffer + i + 1));
  }
  CHECK(snapshot->warnings.empty());
}

TEST_CASE("the target runs again after a capture and the pause is measured") {
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  auto snapshot = capture_live(target.pid(), {}, plan_nothing());
  REQUIRE(snapshot);
  REQUIRE(snapshot->pause_ms);
  CHECK(*snapshot->pause_ms > 0.0);
  CHECK(*snapshot->pause_ms < 2000.0);
  auto status = read_status(target.pid());
  REQUIRE(status);
  CHECK(status->tracer_pid == 0);
  CHECK(state_of(target.pid()) != 't');
  CHECK(keeps_running(target.pid(), program.progress_counter));
}

TEST_CASE("a no-stop capture never stops the target and takes sp and pc of blocked threads from /proc") {
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  REQUIRE(workers_blocked_in_read(target.pid(), program));
  CaptureOptions options;
  options.stop = false;
  auto snapshot = capture_live(target.pid(), options, [&](const Memory&, const std::vector<ThreadState>&) {
    // Called while the target runs: its state is never 't' here.
    CHECK(state_of(target.pid()) != 't');
    return std::vector<AddressRange>{{program.buffer, program.buffer + 64}};
  });
  REQUIRE(snapshot);
  CHECK_FALSE(snapshot->target_was_stopped);
  CHECK_FALSE(snapshot->pause_ms);
  CHECK(snapshot->threads.size() == 3);
  CHECK(snapshot->memory->read_u64(program.buffer + 8));
  for (const auto& worker : program.workers) {
    auto thread = std::find_if(snapshot->threads.begin(), snapshot->threads.end(),
                               [&](const ThreadState& t) { return t.tid == worker.tid; });
    REQUIRE(thread != snapshot->threads.end());
    REQUIRE(thread->registers);  // blocked in read()
    CHECK(thread->registers->has(Reg::rsp));
    CHECK_FALSE(thread->registers->has(Reg::rbx));
    const Mapping* stack = mapping_containing(*snapshot, thread->registers->sp());
    REQUIRE(stack);
    CHECK(stack->range.contains(worker.local));
  }
}

TEST_CASE("a no-stop capture drops the registers of a thread that left its system call while the target was read") {
  // The registers come first, the table and stacks after: a thread that moved on meanwhile would be unwound over
  // stack memory that no longer holds its frames. threads_churn's short-lived threads are gone 50 ms later.
  TestProcess target({bin("threads_churn")});
  REQUIRE(target.wait_for("READY"));
  CaptureOptions options;
  options.stop = false;
  std::size_t dropped = 0;
  for (int round = 0; round < 20 && dropped == 0; ++round) {
    std::vector<int> blocked_when_read;
    auto snapshot = capture_live(target.pid(), options, [&](const Memory&, const std::vector<ThreadState>& threads) {
      for (const ThreadState& thread : threads)
        if (thread.registers && thread.tid != target.pid()) blocked_when_read.push_back(thread.tid);
      std::this_thread::sleep_for(50ms);
      return std::vector<AddressRange>{};
    });
    REQUIRE(snapshot);
    for (const ThreadState& thread : snapshot->threads) {
      if (std::find(blocked_when_read.begin(), blocked_when_read.end(), thread.tid) == blocked_when_read.end())
        continue;
      INFO("thread " << thread.tid << ": " << thread.error);
      CHECK_FALSE(thread.registers);  // it lived for microseconds: it cannot be in the same call 50 ms later
      CHECK_THAT(thread.error, Catch::Contains("left its system call"));
      ++dropped;
    }
  }
  CHECK(dropped > 0);
}

TEST_CASE("capturing a pid that does not exist fails with no_such_process") {
  auto snapshot = capture_live(0x3ffffff0, {}, plan_nothing());
  REQUIRE_FALSE(snapshot);
  CHECK(snapshot.error().code == ErrorCode::no_such_process);
  CHECK(snapshot.error().message == "no process with pid 1073741808");
  CHECK(capture_live(-1, {}, plan_nothing()).error().code == ErrorCode::no_such_process);
}

TEST_CASE("capturing a zombie says it has exited and names the parent that has not reaped it") {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(eventually([&] { return state_of(child) == 'Z'; }));
  auto snapshot = capture_live(child, {}, plan_nothing());
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE_FALSE(snapshot);
  CHECK(snapshot.error().code == ErrorCode::target_exited);
  CHECK_THAT(snapshot.error().message, Catch::Contains("zombie") && Catch::Contains(std::to_string(::getpid())));
}

TEST_CASE("a process already traced by another debugger is refused with the tracer named") {
  TestProcess target({bin("threads_blocked"), "1"});
  BlockedProgram program = start_blocked(target);
  int release[2];
  REQUIRE(::pipe(release) == 0);
  pid_t tracer = ::fork();
  if (tracer == 0) {
    ::close(release[1]);
    if (::ptrace(PTRACE_SEIZE, target.pid(), nullptr, nullptr) != 0) ::_exit(1);
    char byte;
    while (::read(release[0], &byte, 1) < 0) {
    }
    ::_exit(0);  // exiting detaches the target
  }
  ::close(release[0]);
  REQUIRE(eventually([&] { return read_status(target.pid()).value_or(ProcessStatus{}).tracer_pid == tracer; }));

  auto snapshot = capture_live(target.pid(), {}, plan_nothing());
  ::close(release[1]);
  int status = 0;
  ::waitpid(tracer, &status, 0);
  REQUIRE_FALSE(snapshot);
  CHECK(snapshot.error().code == ErrorCode::permission_denied);
  CHECK_THAT(snapshot.error().message, Catch::Contains("already traced by pid " + std::to_string(tracer)));
  CHECK(snapshot.error().message.find('\n') == std::string::npos);
  CHECK(keeps_running(target.pid(), program.progress_counter));
}

TEST_CASE("an inspector without privileges is told which uid owns the target and what to change") {
  TestProcess target({bin("threads_blocked"), "1"});
  start_blocked(target);
  if (::geteuid() != 0) {
    WARN("skipped: needs root to start a target owned by another uid");
    return;
  }
  int report[2];
  REQUIRE(::pipe(report) == 0);
  pid_t inspector = ::fork();
  if (inspector == 0) {
    ::close(report[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    auto snapshot = capture_live(target.pid(), {}, plan_nothing());
    std::string message = snapshot ? std::string("OK") : std::to_string(static_cast<int>(snapshot.error().code)) +
                                                          " " + snapshot.error().message;
    (void)!::write(report[1], message.data(), message.size());
    ::_exit(0);
  }
  ::close(report[1]);
  std::string message;
  char buffer[1024];
  for (ssize_t count; (count = ::read(report[0], buffer, sizeof buffer)) > 0;) message.append(buffer, count);
  ::close(report[0]);
  int status = 0;
  ::waitpid(inspector, &status, 0);
  CHECK_THAT(message, Catch::StartsWith(std::to_string(static_cast<int>(ErrorCode::permission_denied)) + " "));
  CHECK_THAT(message, Catch::Contains("you are uid 65534") && Catch::Contains("belongs to uid 0"));
}

TEST_CASE("capturing a process whose threads come and go 50 times never hangs and never leaves it stopped") {
  TestProcess target({bin("threads_churn")});
  auto ready = target.wait_for("READY");
  REQUIRE(ready);
  RemoteAddress started(parse_address((*ready)[2]));
  ProcessMemory memory(target.pid());
  std::uint64_t first = memory.read_u64(started).value_or(0);
  for (int round = 0; round < 50; ++round) {
    auto snapshot = capture_live(target.pid(), {}, [&](const Memory& live, const std::vector<ThreadState>&) {
      CHECK(live.read_u64(started));
      return std::vector<AddressRange>{{started, started + 8}};
    });
    REQUIRE(snapshot);
    CHECK(snapshot->threads.size() >= 1);
    CHECK(snapshot->memory->read_u64(started));
    CHECK(state_of(target.pid()) != 't');
  }
  CHECK(eventually([&] { return memory.read_u64(started).value_or(0) > first + 10; }));
  auto status = read_status(target.pid());
  REQUIRE(status);
  CHECK(status->tracer_pid == 0);
}

TEST_CASE("a target that exits during the attach gives a snapshot or a clear error, never a hang") {
  int outcomes_ok = 0, outcomes_exited = 0;
  for (int round = 0; round < 20; ++round) {
    TestProcess target({bin("threads_exit_soon"), std::to_string(round * 150)});
    REQUIRE(target.wait_for("READY"));
    auto snapshot = capture_live(target.pid(), {}, plan_nothing());
    if (snapshot) {
      ++outcomes_ok;
      continue;
    }
    ++outcomes_exited;
    INFO(snapshot.error().message);
    CHECK((snapshot.error().code == ErrorCode::target_exited || snapshot.error().code == ErrorCode::no_such_process));
    CHECK(snapshot.error().message.find('\n') == std::string::npos);
  }
  CHECK(outcomes_ok + outcomes_exited == 20);
}

TEST_CASE("a process whose main thread has exited is captured, its zombie main thread listed with the reason") {
  TestProcess target({bin("threads_main_exited")});
  REQUIRE(target.wait_for("READY"));
  auto snapshot = capture_live(target.pid(), {}, plan_nothing());
  REQUIRE(snapshot);
  REQUIRE(snapshot->threads.size() == 3);
  CHECK(snapshot->threads[0].tid == target.pid());
  CHECK_FALSE(snapshot->threads[0].registers);
  CHECK_THAT(snapshot->threads[0].error, Catch::Contains("zombie"));
  CHECK(snapshot->threads[1].registers);
  CHECK(snapshot->threads[2].registers);
  CHECK(state_of(snapshot->threads[1].tid) != 't');
}

TEST_CASE("a target killed while it is stopped does not break the capture") {
  TestProcess target({bin("threads_blocked"), "3"});
  start_blocked(target);
  auto snapshot = capture_live(target.pid(), {}, [&](const Memory&, const std::vector<ThreadState>&) {
    ::kill(target.pid(), SIGKILL);
    return std::vector<AddressRange>{};
  });
  CHECK(snapshot);
  int status = 0;
  target.reap(&status);  // may already have been collected by the capture
  CHECK(eventually([&] { return !read_status(target.pid()); }));
}

TEST_CASE("a signal sent to the target around a capture is delivered exactly once") {
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  ProcessMemory memory(target.pid());
  for (int round = 1; round <= 10; ++round) {
    ::kill(target.pid(), SIGUSR1);
    auto snapshot = capture_live(target.pid(), {}, plan_nothing());
    REQUIRE(snapshot);
    CHECK(eventually([&] { return memory.read_object<int>(program.signal_count).value_or(0) >= round; }));
  }
  std::this_thread::sleep_for(20ms);
  CHECK(memory.read_object<int>(program.signal_count).value_or(0) == 10);
}

TEST_CASE("a process stopped by SIGSTOP is captured and stays stopped until SIGCONT") {
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  ::kill(target.pid(), SIGSTOP);
  REQUIRE(eventually([&] { return state_of(target.pid()) == 'T'; }));
  auto snapshot = capture_live(target.pid(), {}, plan_nothing());
  REQUIRE(snapshot);
  for (const ThreadState& thread : snapshot->threads) CHECK(thread.registers);
  std::this_thread::sleep_for(20ms);
  CHECK(state_of(target.pid()) == 'T');
  ::kill(target.pid(), SIGCONT);
  CHECK(keeps_running(target.pid(), program.progress_counter));
}

TEST_CASE("SIGINT, SIGTERM or SIGHUP to an inspector mid-capture leaves the target running") {
  int signal_number = GENERATE(SIGINT, SIGTERM, SIGHUP);
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  TestProcess inspector({bin("capture_loop"), std::to_string(target.pid()), "5000"});
  REQUIRE(inspector.wait_for("STOPPED"));
  CHECK(state_of(target.pid()) == 't');  // really mid-capture: stopped by its tracer
  ::kill(inspector.pid(), signal_number);
  int status = 0;
  REQUIRE(inspector.reap(&status));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == signal_number);
  CHECK(state_of(target.pid()) != 't');
  CHECK(keeps_running(target.pid(), program.progress_counter));
}

TEST_CASE("SIGINT, SIGTERM or SIGHUP to an inspector writing a core deletes the partly written OUT.tmp file") {
  int signal_number = GENERATE(SIGINT, SIGTERM, SIGHUP);
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  char pattern[] = "/tmp/fiberscope-gcore-XXXXXX";
  std::filesystem::path dir = ::mkdtemp(pattern);
  auto temporaries = [&] {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      count += entry.path().filename().string().starts_with("core.tmp.");
    return count;
  };
  TestProcess inspector(
      {bin("capture_loop"), std::to_string(target.pid()), "5000", "write-core", (dir / "core").string()});
  REQUIRE(inspector.wait_for("WRITING"));
  CHECK(temporaries() == 1);  // mode 0600, holding the target's memory
  ::kill(inspector.pid(), signal_number);
  int status = 0;
  REQUIRE(inspector.reap(&status));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == signal_number);
  CHECK(temporaries() == 0);
  CHECK_FALSE(std::filesystem::exists(dir / "core"));
  CHECK(keeps_running(target.pid(), program.progress_counter));
  std::filesystem::remove_all(dir);
}

TEST_CASE("an inspector whose own SIGINT handler returns gets an interrupted error and the target runs on") {
  TestProcess target({bin("threads_blocked"), "2"});
  BlockedProgram program = start_blocked(target);
  TestProcess inspector({bin("capture_loop"), std::to_string(target.pid()), "300", "own-handler"});
  REQUIRE(inspector.wait_for("STOPPED"));
  ::kill(inspector.pid(), SIGINT);
  CHECK(inspector.wait_for("INTERRUPTED"));
  int status = 0;
  REQUIRE(inspector.reap(&status));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 3);
  CHECK(state_of(target.pid()) != 't');
  CHECK(read_status(target.pid()).value_or(ProcessStatus{}).tracer_pid == 0);
  CHECK(keeps_running(target.pid(), program.progress_counter));
}

TEST_CASE("a target that execs from a thread in a loop never blocks a capture and is said to have exec'd") {
  // The exec'ing thread's de_thread waits, holding the lock PTRACE_SEIZE takes, for the siblings the capture
  // traced to be reaped: before the fix a capture seizing meanwhile blocked forever, target frozen with it.
  TestProcess target({bin("threads_exec_loop")});
  REQUIRE(target.wait_for("READY"));
  constexpr int kCaptures = 150;
  std::atomic<int> finished{0};
  std::vector<Result<Snapshot>> outcomes;
  outcomes.reserve(kCaptures);
  std::thread capturing([&] {
    for (int round = 0; round < kCaptures; ++round) {
      outcomes.push_back(capture_live(target.pid(), {}, plan_nothing()));
      finished.fetch_add(1);
    }
  });
  int last = -1;
  auto last_progress = std::chrono::steady_clock::now();
  bool hung = false;
  while (finished.load() < kCaptures) {
    std::this_thread::sleep_for(20ms);
    if (finished.load() != last) {
      last = finished.load();
      last_progress = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_progress > 20s) {
      hung = true;
      ::kill(target.pid(), SIGKILL);  // the exec'ing thread dies, releasing the lock the blocked capture waits for
      break;
    }
  }
  capturing.join();
  REQUIRE_FALSE(hung);
  int snapshots = 0, execs = 0;
  for (const auto& outcome : outcomes) {
    if (outcome) {
      ++snapshots;
      continue;
    }
    INFO(outcome.error().message);
    CHECK(outcome.error().code == ErrorCode::target_exited);
    CHECK_THAT(outcome.error().message, Catch::Contains("exec'd during the capture; try again"));
    ++execs;
  }
  CHECK(snapshots + execs == kCaptures);
  CHECK(snapshots > 0);
  CHECK(eventually([&] { return state_of(target.pid()) != 't'; }));
  auto status = read_status(target.pid());
  REQUIRE(status);
  CHECK(status->tracer_pid == 0);
}
