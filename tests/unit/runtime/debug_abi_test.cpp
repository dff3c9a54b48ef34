// The debug ABI as the runtime publishes it: the exported root, its sizes, what each blocked fiber shows, and a
// reader thread that walks the table through the seqlocks while fibers churn.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "callback_helpers.h"
#include "fiberscope/runtime.h"
#include "own_debug_table.h"

using namespace std::chrono_literals;

namespace {

const std::string kTestBinDir = FIBERSCOPE_TEST_BIN_DIR;

std::string command_output(const std::string& command) {
  std::string output;
  if (std::FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, got);
    ::pclose(pipe);
  }
  return output;
}

bool dynsym_exports_root(const std::string& binary) {
  const std::string symbols = command_output("readelf --dyn-syms -W '" + binary + "' 2>&1");
  return symbols.find(std::string(" ") + FIBERSCOPE_DEBUG_ROOT_SYMBOL + "\n") != std::string::npos;
}

// Catch assertions are not thread-safe: the reader thread uses this, which reports failure as nullopt.
std::optional<fiberscope_debug_root> try_read_root() {
  const auto* root_address = runtime_test::find_debug_root();
  if (root_address == nullptr) return std::nullopt;
  return runtime_test::read_own<fiberscope_debug_root>(reinterpret_cast<std::uint64_t>(root_address));
}

fiberscope_debug_root read_root() {
  const auto* root_address = runtime_test::find_debug_root();
  REQUIRE(root_address != nullptr);
  auto root = runtime_test::read_own<fiberscope_debug_root>(reinterpret_cast<std::uint64_t>(root_address));
  REQUIRE(root.has_value());
  return *root;
}

bool in_object(std::uint64_t address, const void* object, std::size_t size_bytes) {
  const auto start = reinterpret_cast<std::uint64_t>(object);
  return address >= start && address < start + size_bytes;
}

}  // namespace

TEST_CASE("the debug root is exported in .dynsym of a program linked with the runtime, even stripped",
          "[runtime][debug_abi]") {
  const std::string program = kTestBinDir + "/runtime_faults";
  REQUIRE(::access(program.c_str(), X_OK) == 0);
  CHECK(dynsym_exports_root(program));
  // Not /proc/self/exe: that would be readelf's own.
  CHECK(dynsym_exports_root("/proc/" + std::to_string(::getpid()) + "/exe"));

  char stripped[] = "/tmp/fiberscope-stripped-XXXXXX";
  const int fd = ::mkstemp(stripped);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string strip_output = command_output("strip -o '" + std::string(stripped) + "' '" + program + "' 2>&1");
  INFO("strip said: " << strip_output);
  CHECK(dynsym_exports_root(stripped));
  ::unlink(stripped);
}

TEST_CASE("the debug root carries the magic, the ABI version and every struct size", "[runtime][debug_abi]") {
  const fiberscope_debug_root before = read_root();
  CHECK(before.magic == FIBERSCOPE_DEBUG_MAGIC);
  CHECK(before.abi_version == FIBERSCOPE_DEBUG_ABI_VERSION);
  CHECK(before.root_size == sizeof(fiberscope_debug_root));
  CHECK(before.fiber_record_size == sizeof(fiberscope_fiber));
  CHECK(before.worker_record_size == sizeof(fiberscope_worker));
  CHECK(before.transition_record_size == sizeof(fiberscope_transition));
  CHECK(before.chunk_header_size == sizeof(fiberscope_chunk));
  CHECK(before.running == 0);

  fiberscope_debug_root during{};
  fiber::run([&] { during = read_root(); }, fiber::Options{.workers = 3, .stack_bytes = 100 * 1024});
  CHECK(during.running == 1);
  CHECK(during.fiber_chunks != 0);
  CHECK(during.worker_chunks != 0);
  CHECK(during.processors == 3);
  CHECK(during.stack_bytes >= 100 * 1024);
  CHECK(during.stack_bytes % 4096 == 0);
  CHECK(during.guard_bytes >= 4096);
  CHECK(during.fibers_live >= 1);
  CHECK(during.clock_ns > 0);
  CHECK(read_root().running == 0);
}

TEST_CASE("each blocked fiber publishes its state, wait reason, wait object, name and origin",
          "[runtime][debug_abi]") {
  struct Expected {
    fiber::FiberId id;
    std::uint32_t state;
    std::uint32_t wait_reason;
    const void* object;
    std::size_t object_bytes;
    std::string name;
  };
  std::vector<Expected> expected;
  std::map<fiber::FiberId, runtime_test::FiberSnapshot> seen;
  std::map<fiber::FiberId, fiberscope_worker> worker_of;  // by the fiber each worker record names
  std::vector<std::string> problems;
  fiber::FiberId main_id = 0;
  fiberscope_debug_root root{};
  fiber::run(
      [&] {
        main_id = fiber::current();
        fiber::Channel<int> recv_channel, send_channel;
        fiber::Mutex held_mutex;
        fiber::Mutex condvar_mutex;
        fiber::CondVar condvar;
        bool condvar_released = false;
        fiber::WaitGroup group;
        group.add(1);
        int pipe_fds[2], c_pipe_fds[2];
        REQUIRE(::pipe(pipe_fds) == 0);
        REQUIRE(::pipe(c_pipe_fds) == 0);
        held_mutex.lock();

        fiber::WaitGroup finished;  // the primitives above outlive every fiber that uses them
        auto spawn_expecting = [&](std::function<void()> body, std::string name, std::uint32_t state,
                                   std::uint32_t reason, const void* object, std::size_t object_bytes) {
          finished.add(1);
          const fiber::FiberId id = fiber::spawn(
              [&finished, body = std::move(body)] {
                body();
                finished.done();
              },
              name);
          expected.push_back({id, state, reason, object, object_bytes, name});
        };
        spawn_expecting([&] { recv_channel.recv(); }, "chan-receiver", FIBERSCOPE_FIBER_WAITING,
                        FIBERSCOPE_WAIT_CHAN_RECV, &recv_channel, sizeof recv_channel);
        spawn_expecting([&] { send_channel.send(1); }, "chan-sender", FIBERSCOPE_FIBER_WAITING,
                        FIBERSCOPE_WAIT_CHAN_SEND, &send_channel, sizeof send_channel);
        spawn_expecting([&] { std::lock_guard<fiber::Mutex> guard(held_mutex); }, "mutex-waiter",
                        FIBERSCOPE_FIBER_WAITING, FIBERSCOPE_WAIT_MUTEX, &held_mutex, sizeof held_mutex);
        spawn_expecting(
            [&] {
              std::unique_lock<fiber::Mutex> guard(condvar_mutex);
              condvar.wait(guard, [&] { return condvar_released; });
            },
            "condvar-waiter", FIBERSCOPE_FIBER_WAITING, FIBERSCOPE_WAIT_CONDVAR, &condvar, sizeof condvar);
        spawn_expecting([&] { group.wait(); }, "group-waiter", FIBERSCOPE_FIBER_WAITING, FIBERSCOPE_WAIT_WAITGROUP,
                        &group, sizeof group);
        spawn_expecting([] { fiber::sleep_for(300ms); }, "sleeper", FIBERSCOPE_FIBER_WAITING, FIBERSCOPE_WAIT_SLEEP,
                        nullptr, 0);
        spawn_expecting(
            [read_fd = pipe_fds[0]] {
              char byte;
              fiber::syscall([&] { return ::read(read_fd, &byte, 1); });
            },
            "pipe-reader", FIBERSCOPE_FIBER_SYSCALL, FIBERSCOPE_WAIT_NONE, nullptr, 0);
        spawn_expecting(
            [read_fd = c_pipe_fds[0]]() mutable { fiber::foreign_call(c_read_one_byte, &read_fd); },
            "in-c-code", FIBERSCOPE_FIBER_FOREIGN, FIBERSCOPE_WAIT_NONE, nullptr, 0);

        fiber::sleep_for(50ms);  // every fiber above reaches its blocking point
        root = read_root();
        std::string workers_error;
        for (const auto& worker : runtime_test::read_workers(root, workers_error))
          if (worker && worker->current_fiber) worker_of[worker->current_fiber] = *worker;
        if (!workers_error.empty()) problems.push_back(workers_error);
        for (auto& snapshot : runtime_test::consistent_fibers()) {
          for (const Expected& e : expected) {
            if (snapshot.record.id != e.id) continue;
            for (auto& problem : runtime_test::implausibilities(snapshot, root, 64)) problems.push_back(problem);
            seen[e.id] = snapshot;
          }
        }

        recv_channel.send(1);
        send_channel.recv();
        held_mutex.unlock();
        {
          std::lock_guard<fiber::Mutex> guard(condvar_mutex);
          condvar_released = true;
          condvar.notify_all();
        }
        group.done();
        REQUIRE(::write(pipe_fds[1], "x", 1) == 1);
        REQUIRE(::write(c_pipe_fds[1], "x", 1) == 1);
        finished.wait();
        for (int fd : {pipe_fds[0], pipe_fds[1], c_pipe_fds[0], c_pipe_fds[1]}) ::close(fd);
      },
      fiber::Options{.workers = 2});

  for (const auto& problem : problems) FAIL_CHECK(problem);
  for (const Expected& e : expected) {
    INFO("fiber " << e.id << " \"" << e.name << "\"");
    auto found = seen.find(e.id);
    REQUIRE(found != seen.end());
    const fiberscope_fiber& record = found->second.record;
    CHECK(fiberscope_fiber_state_name(record.state) == std::string(fiberscope_fiber_state_name(e.state)));
    CHECK(fiberscope_wait_reason_name(record.wait_reason) ==
          std::string(fiberscope_wait_reason_name(e.wait_reason)));
    if (e.object != nullptr) CHECK(in_object(record.wait_object, e.object, e.object_bytes));
    CHECK(std::string(record.name, ::strnlen(record.name, sizeof record.name)) == e.name);
    CHECK(record.parent_id == main_id);
    CHECK(record.start_pc != 0);
    CHECK(record.spawn_pc != 0);
    CHECK(record.created_ns <= root.clock_ns + 5'000'000);
    CHECK((record.flags & FIBERSCOPE_FIBER_FLAG_MAIN) == 0);
    if (e.state == FIBERSCOPE_FIBER_SYSCALL || e.state == FIBERSCOPE_FIBER_FOREIGN) {
      // The blocked call's worker still names the fiber and says RUNNING: the fiber record carries the syscall.
      auto worker = worker_of.find(e.id);
      REQUIRE(worker != worker_of.end());
      CHECK(fiberscope_worker_state_name(worker->second.state) ==
            std::string(fiberscope_worker_state_name(FIBERSCOPE_WORKER_RUNNING)));
    }
    if (e.state == FIBERSCOPE_FIBER_FOREIGN) {
      CHECK(record.foreign_depth == 1);
      CHECK((record.flags & FIBERSCOPE_FIBER_FLAG_LOCKED) == 0);  // only a running fiber_callback locks
    }
  }
}

TEST_CASE("fibers parked by one primitive resume at one pc, whether they left to the next fiber or to the scheduler",
          "[runtime][debug_abi]") {
  // One worker: each sleeper but the last parks by switching straight to the next queued one, the last (nothing
  // left to run) to the scheduler. A dump groups fibers by their frames, so both must resume at the same place.
  constexpr int kSleepers = 6;
  std::vector<fiber::FiberId> sleepers;
  std::set<std::uint64_t> resume_pcs;
  int found = 0;
  fiber::run(
      [&] {
        fiber::WaitGroup finished;
        finished.add(kSleepers);
        for (int i = 0; i < kSleepers; ++i) {
          sleepers.push_back(fiber::spawn(
              [&finished] {
                fiber::sleep_for(200ms);
                finished.done();
              },
              "sleeper"));
        }
        fiber::sleep_for(50ms);  // every sleeper parks while this one sleeps less
        for (const auto& snapshot : runtime_test::consistent_fibers()) {
          if (std::find(sleepers.begin(), sleepers.end(), snapshot.record.id) == sleepers.end()) continue;
          if (snapshot.record.state != FIBERSCOPE_FIBER_WAITING) continue;
          ++found;
          resume_pcs.insert(snapshot.record.context.pc);
        }
        finished.wait();
      },
      fiber::Options{.workers = 1});
  CHECK(found == kSleepers);
  CHECK(resume_pcs.size() == 1);
}

TEST_CASE("the main fiber is flagged as main and the table counts live fibers", "[runtime][debug_abi]") {
  std::optional<runtime_test::FiberSnapshot> main_record;
  std::uint64_t live_with_ten_parked = 0;
  fiber::run([&] {
    main_record = runtime_test::own_fiber_snapshot();
    fiber::Channel<int> gate;
    fiber::WaitGroup finished;
    finished.add(10);
    for (int i = 0; i < 10; ++i)
      fiber::spawn([&] {
        gate.recv();
        finished.done();
      });
    fiber::sleep_for(5ms);
    live_with_ten_parked = read_root().fibers_live;
    gate.close();
    finished.wait();
  });
  REQUIRE(main_record.has_value());
  CHECK((main_record->record.flags & FIBERSCOPE_FIBER_FLAG_MAIN) != 0);
  CHECK(main_record->record.state == FIBERSCOPE_FIBER_RUNNING);
  CHECK(main_record->record.parent_id == 0);
  CHECK(live_with_ten_parked == 11);
}

namespace {

// What the reader thread found over all its passes.
struct ReaderTally {
  // Also read by the churning fibers, which keep going until the reader has seen the interesting states.
  std::atomic<std::uint64_t> passes{0};
  std::atomic<bool> saw_foreign{false};
  std::atomic<bool> saw_callback{false};
  std::uint64_t consistent = 0;
  std::uint64_t torn = 0;
  std::map<std::uint32_t, std::uint64_t> states_seen;  // state -> consistent records seen in it
  std::set<std::uint32_t> max_depth_seen;
  std::vector<std::string> problems;  // capped
};

void walk_table_until(const std::atomic<bool>& stop, ReaderTally& tally) {
  std::map<std::uint64_t, std::uint64_t> last_id_at;  // record address -> highest id seen there
  auto note = [&](std::string problem) {
    if (tally.problems.size() < 20) tally.problems.push_back(std::move(problem));
  };
  while (!stop.load()) {
    const auto root_read = try_read_root();
    if (!root_read) {
      note("debug root not found or unreadable");
      return;
    }
    const fiberscope_debug_root& root = *root_read;
    if (root.running == 0 || root.fiber_chunks == 0) {
      std::this_thread::yield();
      continue;
    }
    std::string error;
    const auto workers = runtime_test::read_workers(root, error);
    for (std::size_t i = 0; i < workers.size(); ++i)
      if (workers[i])
        for (auto& problem : runtime_test::implausibilities(*workers[i], i, root)) note(problem);
    std::set<std::uint64_t> ids_this_pass;
    const auto reads = runtime_test::read_all_fibers(root.fiber_chunks, error);
    // The ids checked against fibers_created as it is after the records were read: spawns during the pass count.
    fiberscope_debug_root root_after = root;
    if (const auto latest = try_read_root()) root_after.fibers_created = latest->fibers_created;
    for (const auto& read : reads) {
      const runtime_test::FiberSnapshot& snapshot = read.snapshot;
      const std::uint64_t address = snapshot.address;
      if (read.outcome == runtime_test::ReadOutcome::torn) {
        ++tally.torn;
        continue;
      }
      if (read.outcome == runtime_test::ReadOutcome::unreadable) {
        note("unreadable fiber record at " + std::to_string(address));
        continue;
      }
      ++tally.consistent;
      const fiberscope_fiber& record = snapshot.record;
      ++tally.states_seen[record.state];
      if (record.state == FIBERSCOPE_FIBER_FREE) continue;
      for (auto& problem : runtime_test::implausibilities(snapshot, root_after, workers.size() + 64)) note(problem);
      if (record.state != FIBERSCOPE_FIBER_DEAD) tally.max_depth_seen.insert(record.foreign_depth);
      if (record.state == FIBERSCOPE_FIBER_FOREIGN) tally.saw_foreign = true;
      if (record.state != FIBERSCOPE_FIBER_DEAD && record.foreign_depth >= 2) tally.saw_callback = true;
      auto& last_id = last_id_at[address];
      if (record.id < last_id)
        note("record at " + std::to_string(address) + " went back from id " + std::to_string(last_id) + " to " +
             std::to_string(record.id));
      last_id = std::max(last_id, record.id);
      if (!ids_this_pass.insert(record.id).second) note("id " + std::to_string(record.id) + " in two records");
    }
    if (!error.empty()) note(error);
    ++tally.passes;
    std::this_thread::sleep_for(1ms);  // leave the fibers some CPU on a small machine
  }
}

long churn_callback(void* feed_ptr) {
  auto& feed = *static_cast<fiber::Channel<int>*>(feed_ptr);
  fiber::yield();
  feed.recv();
  c_callback_request inner{+[](void*) -> long {
                             fiber::sleep_for(200us);
                             return 0;
                           },
                           nullptr, 100, 0};
  return fiber::foreign_call(c_call_back, &inner);
}

}  // namespace

TEST_CASE("a reader thread walking the table while fibers churn sees only plausible records",
          "[runtime][debug_abi][stress]") {
  std::atomic<bool> stop_reader{false};
  ReaderTally tally;
  std::thread reader([&] { walk_table_until(stop_reader, tally); });

  fiber::run(
      [&] {
        // At least 300 ms, 8 reader passes and until the reader has seen a fiber in C and one inside a callback
        // (slow to happen under sanitizers), at most 10 s. Once false, it stays false.
        const auto start = std::chrono::steady_clock::now();
        auto churning = [start, &tally] {
          const auto elapsed = std::chrono::steady_clock::now() - start;
          const bool seen_enough = tally.passes.load() >= 8 && tally.saw_foreign.load() && tally.saw_callback.load();
          return elapsed < 300ms || (!seen_enough && elapsed < 10s);
        };
        fiber::Channel<int> feed(4);
        fiber::Mutex lock;
        fiber::WaitGroup churners, feeders;
        churners.add(2 + 6 + 6);
        feeders.add(4);
        for (int i = 0; i < 2; ++i)  // spawners: short-lived fibers keep slots being reused
          fiber::spawn(
              [&] {
                while (churning()) {
                  fiber::WaitGroup children;
                  children.add(10);
                  for (int c = 0; c < 10; ++c)
                    fiber::spawn(
                        [&] {
                          fiber::yield();
                          children.done();
                        },
                        "short-lived");
                  children.wait();
                }
                churners.done();
              },
              "spawner");
        for (int i = 0; i < 6; ++i)  // nesting: foreign -> callback (channel) -> foreign -> callback (sleep)
          fiber::spawn(
              [&] {
                while (churning()) {
                  c_callback_request request{churn_callback, &feed, 2000, 0};  // 2 ms in C: often seen FOREIGN
                  fiber::foreign_call(c_call_back, &request);
                }
                churners.done();
              },
              "nester");
        for (int i = 0; i < 6; ++i)  // syscalls and mutexes
          fiber::spawn(
              [&] {
                while (churning()) {
                  fiber::syscall([] { ::usleep(100); });
                  std::lock_guard<fiber::Mutex> guard(lock);
                  fiber::yield();
                }
                churners.done();
              },
              "syscaller");
        for (int i = 0; i < 4; ++i)  // the nesters' food
          fiber::spawn(
              [&] {
                while (churning()) feed.send(1);
                feeders.done();
              },
              "feeder");
        // Winding down: once churning stops, a drainer unblocks feeders stuck on a full buffer, and closing the
        // channel gives nesters still waiting in a callback nullopt instead of food that never comes.
        while (churning()) fiber::sleep_for(5ms);
        fiber::WaitGroup drained;
        drained.add(1);
        fiber::spawn(
            [&] {
              while (feed.recv()) {
              }
              drained.done();
            },
            "drainer");
        feeders.wait();
        feed.close();
        churners.wait();
        drained.wait();
      },
      fiber::Options{.workers = 3});
  stop_reader = true;
  reader.join();

  std::string state_counts;
  for (auto [state, count] : tally.states_seen)
    state_counts += std::string(" ") + fiberscope_fiber_state_name(state) + "=" + std::to_string(count);
  INFO("passes " << tally.passes.load() << ", consistent records " << tally.consistent << ", torn " << tally.torn
                 << ", by state:" << state_counts);
  for (const auto& problem : tally.problems) FAIL_CHECK(problem);
  CHECK(tally.passes.load() >= 8);
  CHECK(tally.consistent >= 500);
  for (std::uint32_t state : {FIBERSCOPE_FIBER_RUNNABLE, FIBERSCOPE_FIBER_WAITING, FIBERSCOPE_FIBER_DEAD,
                              FIBERSCOPE_FIBER_FOREIGN}) {
    INFO("state " << fiberscope_fiber_state_name(state));
    CHECK(tally.states_seen.count(state) == 1);
  }
  CHECK(!tally.max_depth_seen.empty());
  CHECK(*tally.max_depth_seen.rbegin() >= 2);
}
