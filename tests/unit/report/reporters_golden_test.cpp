#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include "golden.h"
#include "report/folded_reporter.h"
#include "report/json_reporter.h"
#include "report/text_reporter.h"

using namespace fiberscope::report;
using fiberscope::testing::check_golden;

namespace {

Frame frame(std::uint64_t pc, std::string function, std::string file, unsigned line, StackKind stack) {
  Frame f;
  f.pc = pc;
  f.function = std::move(function);
  f.function_offset = 0x1c;
  f.module = "demo_server";
  f.file = std::move(file);
  f.line = line;
  f.stack = stack;
  return f;
}

Frame with_args(Frame f, std::vector<Argument> args) {
  f.args_known = true;
  f.args = std::move(args);
  return f;
}

// A small process: a waiting fiber with arguments, a running one with an inlined frame, one in a foreign call
// stitched across the system stack whose unwind stopped early, a thread with no fiber, a finding and errors.
Dump sample_dump() {
  Dump dump;
  dump.pid = 4242;
  dump.exe_path = "/opt/demo/demo_server";
  dump.pause_ms = 3.14;
  dump.has_fiber_table = true;
  dump.fibers_created = 17;
  dump.warnings.push_back("no DWARF in /usr/lib/libfoo.so: functions from symbols, no lines or arguments");

  Fiber reader;
  reader.id = 17;
  reader.name = "conn-reader";
  reader.state = "waiting";
  reader.wait_reason = "chan receive";
  reader.wait_object = 0x7f0000001000;
  reader.state_since_ns = 1'000'000'000;
  reader.time_in_state_ns = 192'000'000'000;
  reader.created_by =
      std::make_shared<const CodeLocation>(CodeLocation{0x401234, "accept_loop(int)", "/src/server.cpp", 88});
  reader.stack.frames = {
      with_args(frame(0x402000, "fiber::Channel<int>::recv", "/src/channel.h", 40, StackKind::fiber), {}),
      with_args(frame(0x402100, "handle_conn", "/src/server.cpp", 42, StackKind::fiber),
                {{"fd", "7", Argument::Status::ok, ""},
                 {"buf", "0x7f0012345000", Argument::Status::ok, ""},
                 {"len", "", Argument::Status::optimized_out, ""}}),
  };
  dump.fibers.push_back(reader);

  Fiber worker;
  worker.id = 18;
  worker.name = "cruncher";
  worker.state = "running";
  worker.state_since_ns = 1'500'000'000;
  worker.time_in_state_ns = 412'000'000;
  worker.thread = 4243;
  worker.stack.frames = {
      with_args(frame(0x403000, "square", "/src/math.h", 3, StackKind::fiber),
                {{"x", "", Argument::Status::entry_value, ""}}),
      with_args(frame(0x403000, "crunch", "/src/math.cpp", 10, StackKind::fiber),
                {{"n", "", Argument::Status::error, "memory at 0x10 unreadable"}}),
  };
  worker.stack.frames.mutable_at(0).inlined = true;
  worker.stack.frames.push_back(frame(0x7f00000abc, "", "", 0, StackKind::fiber));
  worker.stack.frames.mutable_back().module = "libfoo.so";
  worker.stack.frames.mutable_back().function_offset = 0xabc;
  worker.stack.truncated = true;
  dump.fibers.push_back(worker);

  Fiber foreign;
  foreign.id = 19;
  foreign.name = "cgo\x1b[2J";  // hostile name: must not reach the terminal raw
  foreign.state = "foreign";
  foreign.thread = 4244;
  foreign.integrity = "in transition";
  foreign.stack.frames = {
      with_args(frame(0x404000, "on_callback", "/src/ffi.cpp", 20, StackKind::fiber), {}),
      frame(0x7f0000100000, "c_library_loop(int)", "", 0, StackKind::system),
      with_args(frame(0x404100, "call_into_c", "/src/ffi.cpp", 30, StackKind::fiber), {}),
  };
  foreign.stack.stop_reason = "no CFI for pc 0x0";
  dump.fibers.push_back(foreign);

  Thread main_thread;
  main_thread.tid = 4242;
  main_thread.name = "demo_server";
  main_thread.stack.frames = {
      frame(0x7f0000200000, "__futex_abstimed_wait_common", "", 0, StackKind::thread),
      with_args(frame(0x405000, "fiber::run", "/src/runtime.cpp", 300,
                      StackKind::thread),
                {}),
      with_args(frame(0x405100, "main", "/src/main.cpp", 5, StackKind::thread), {}),
  };
  main_thread.stack.frames.mutable_at(0).module = "libc.so.6";
  dump.threads.push_back(main_thread);
  Thread worker_thread;
  worker_thread.tid = 4243;
  worker_thread.name = "fiber-worker-0";
  worker_thread.fiber_id = 18;
  dump.threads.push_back(worker_thread);

  dump.findings.push_back(Finding{"invalid-syscall-frame", 19, "call_into_c()",
                                  "syscall_sp 0x7f0000300000 is below the deepest live frame"});
  dump.errors.push_back(DumpError{"fiber 19: transition chain at 0x7f00: unreadable", 19, std::nullopt});
  dump.errors.push_back(DumpError{"fiber record 3 at 0x7f0000050000: state value 99 is not a fiber state",
                                  std::nullopt, std::nullopt});
  return dump;
}

// 150 fibers in three shapes: grouping turns on by itself.
Dump crowded_dump() {
  Dump dump;
  dump.pid = 7;
  dump.exe_path = "/bin/scale";
  dump.source.kind = Source::Kind::live_no_stop;
  dump.has_fiber_table = true;
  for (std::uint64_t id = 1; id <= 150; ++id) {
    Fiber fiber;
    fiber.id = id;
    fiber.name = "f";
    fiber.state = "waiting";
    const bool sleeper = id % 3 == 0;
    fiber.wait_reason = sleeper ? "sleep" : "chan receive";
    fiber.stack.frames.push_back(frame(0x1000, sleeper ? "fiber::sleep_for" : "recv", "/src/a.cpp", 1,
                                       StackKind::fiber));
    fiber.stack.frames.push_back(frame(0x2000 + id, id == 150 ? "odd_one" : "work", "/src/a.cpp", 2,
                                       StackKind::fiber));
    fiber.stack.frames.mutable_back().line = static_cast<unsigned>(id);  // lines differ; the function sequence groups
    dump.fibers.push_back(fiber);
  }
  return dump;
}

// A kernel core of a process whose fiber 5 dereferenced null on worker thread 4322, with a fiber asleep beside it.
Dump crashed_core_dump() {
  Dump dump;
  dump.pid = 4321;
  dump.exe_path = "/opt/demo/fiber_crashers";
  dump.source = {Source::Kind::core, "/tmp/core.4321"};
  dump.has_fiber_table = true;
  dump.fibers_created = 6;
  dump.crash = Crash{.tid = 4322, .signal = 11, .signal_name = "SIGSEGV", .fault_address = 0, .fiber_id = 5};

  Fiber crashed;
  crashed.id = 5;
  crashed.name = "segv-fiber";
  crashed.state = "running";
  crashed.time_in_state_ns = 3'000'000;
  crashed.thread = 4322;
  crashed.crashed = true;
  crashed.stack.frames = {
      with_args(frame(0x401500, "crash_in_fiber", "/src/fiber_crashers.cpp", 31, StackKind::fiber),
                {{"target", "0x0", Argument::Status::ok, ""}}),
      frame(0x402600, "fiberscope_fiber_start", "", 0, StackKind::fiber),
  };
  dump.fibers.push_back(crashed);

  Fiber bystander;
  bystander.id = 6;
  bystander.name = "bystander";
  bystander.state = "waiting";
  bystander.wait_reason = "sleep";
  bystander.time_in_state_ns = 40'000'000;
  bystander.stack.frames = {
      frame(0x402700, "fiber::sleep_for", "/src/runtime/timer.cpp", 10, StackKind::fiber),
      frame(0x401600, "bystander_loop", "/src/fiber_crashers.cpp", 50, StackKind::fiber),
  };
  dump.fibers.push_back(bystander);

  Thread main_thread;
  main_thread.tid = 4321;
  main_thread.name = "fiber_crashers";
  main_thread.stack.frames = {frame(0x405100, "main", "/src/fiber_crashers.cpp", 80, StackKind::thread)};
  dump.threads.push_back(main_thread);
  Thread worker_thread;
  worker_thread.tid = 4322;
  worker_thread.name = "fiber-worker-0";
  worker_thread.fiber_id = 5;
  dump.threads.push_back(worker_thread);
  return dump;
}

}  // namespace

TEST_CASE("the text dump matches its golden file") {
  check_golden("report/sample.txt", render_text(sample_dump(), {.grouping = TextOptions::Grouping::off}));
}

TEST_CASE("the JSON dump matches its golden file") { check_golden("report/sample.json", render_json(sample_dump())); }

TEST_CASE("the folded dump matches its golden file") {
  check_golden("report/sample.folded", render_folded(sample_dump()));
}

TEST_CASE("past 100 fibers the text dump groups identical stacks, biggest group first") {
  const std::string text = render_text(crowded_dump());
  check_golden("report/crowded_grouped.txt", text);
  CHECK(text.find("not stopped (--no-stop)") != std::string::npos);
  CHECK(text.find("100 fibers [chan receive]: 1-2, 4-5") == text.find("\n\n") + 2);
}

TEST_CASE("grouping can be forced on for a small dump and off for a big one") {
  const std::string grouped = render_text(sample_dump(), {.grouping = TextOptions::Grouping::on});
  // A group of one is printed as the fiber itself, with its header.
  CHECK(grouped.find("fiber 17 \"conn-reader\" [chan receive, 3m12s]:") != std::string::npos);
  CHECK(grouped.find("1 fiber [") == std::string::npos);
  // Fibers with findings, errors or a suspicious record stay on their own even when grouped.
  CHECK(grouped.find("fiber 19 \"cgo\\x1b[2J\" [foreign, thread 4244, record in transition]:") != std::string::npos);
  const std::string flat = render_text(crowded_dump(), {.grouping = TextOptions::Grouping::off});
  CHECK(flat.find("fiber 149 \"f\" [chan receive]:") != std::string::npos);
  CHECK(flat.find("fibers [") == std::string::npos);
}

TEST_CASE("a dump without a fiber table says so in its header") {
  Dump dump;
  dump.pid = 12;
  dump.pause_ms = 0.5;
  CHECK(render_text(dump).starts_with("pid 12: 0 fibers, 0 threads, paused 0.5 ms, no fiber table\n"));
}

TEST_CASE("a core's dump says core file, names the crashed thread and marks the fiber it ran, in text and JSON") {
  const Dump dump = crashed_core_dump();
  const std::string text = render_text(dump, {.grouping = TextOptions::Grouping::off});
  check_golden("report/crashed_core.txt", text);
  CHECK(text.starts_with("pid 4321 /opt/demo/fiber_crashers: 2 fibers, 2 threads, core file\n"
                         "warning: thread 4322 crashed: SIGSEGV at 0x0, running fiber 5 \"segv-fiber\"\n"));
  CHECK(text.find("fiber 5 \"segv-fiber\" [running, crashed: SIGSEGV at 0x0, 3ms, thread 4322]:") !=
        std::string::npos);
  CHECK(text.find("fiber 6 \"bystander\" [sleep, 40ms]:") != std::string::npos);

  const std::string json = render_json(dump);
  check_golden("report/crashed_core.json", json);
  CHECK(json.find("\"source\": {\n    \"kind\": \"core\",\n    \"core_path\": \"/tmp/core.4321\"\n  }") !=
        std::string::npos);
  CHECK(json.find("\"signal_name\": \"SIGSEGV\"") != std::string::npos);
  CHECK(json.find("\"fault_address\": \"0x0\"") != std::string::npos);
  // The runtime's state stays in the fiber; the crash is a field of its own, never part of wait_reason.
  CHECK(json.find("crashed:") == std::string::npos);
  CHECK(json.find("\"crashed\": true") != std::string::npos);
}

TEST_CASE("grouped text keeps the crashed fiber on its own, and a crash without a fault address or fiber says so") {
  Dump dump = crashed_core_dump();
  // Five more fibers running the same stack as the crashed one: a group, which must not swallow it.
  for (std::uint64_t id = 10; id < 15; ++id) {
    Fiber twin = dump.fibers.front();
    twin.id = id;
    twin.crashed = false;
    twin.thread.reset();
    dump.fibers.push_back(twin);
  }
  const std::string grouped = render_text(dump, {.grouping = TextOptions::Grouping::on});
  CHECK(grouped.find("5 fibers [running]: 10-14") != std::string::npos);
  CHECK(grouped.find("fiber 5 \"segv-fiber\" [running, crashed: SIGSEGV at 0x0, 3ms, thread 4322]:") !=
        std::string::npos);
  // Streamed with a stack source: it is asked for the fibers printed alone only (6, asleep alone in its group, and
  // the crashed 5, kept out of the group), never for the group's members.
  std::vector<std::uint64_t> asked;
  std::ostringstream streamed;
  write_text(dump, streamed, {.grouping = TextOptions::Grouping::on}, [&asked](const Fiber& fiber) {
    asked.push_back(fiber.id);
    return fiber.stack;
  });
  CHECK(asked == std::vector<std::uint64_t>{6, 5});
  CHECK(streamed.str() == grouped);

  // An abort carries no fault address; with --fiber the crashed fiber may be outside the dump.
  dump.crash = Crash{.tid = 4322, .signal = 6, .signal_name = "SIGABRT", .fault_address = {}, .fiber_id = 99};
  dump.fibers.front().crashed = false;
  const std::string text = render_text(dump, {.grouping = TextOptions::Grouping::off});
  CHECK(text.find("warning: thread 4322 crashed: SIGABRT, running fiber 99\n") != std::string::npos);
  CHECK(text.find("crashed: SIGABRT,") == text.find("crashed: SIGABRT, running fiber 99"));
  const std::string json = render_json(dump);
  CHECK(json.find("\"fault_address\": null,\n    \"fiber\": 99") != std::string::npos);
}

TEST_CASE("the source says live, --no-stop or core in the text header and in JSON") {
  Dump dump;
  dump.pid = 12;
  dump.has_fiber_table = true;
  dump.pause_ms = 0.5;
  CHECK(render_text(dump).starts_with("pid 12: 0 fibers, 0 threads, paused 0.5 ms\n"));
  CHECK(render_json(dump).find("\"kind\": \"live\",\n    \"core_path\": null") != std::string::npos);
  CHECK(render_json(dump).find("\"target_stopped\": true") != std::string::npos);
  dump.source.kind = Source::Kind::live_no_stop;
  dump.pause_ms.reset();
  CHECK(render_text(dump).starts_with("pid 12: 0 fibers, 0 threads, not stopped (--no-stop)\n"));
  CHECK(render_json(dump).find("\"kind\": \"live-no-stop\"") != std::string::npos);
  CHECK(render_json(dump).find("\"target_stopped\": false") != std::string::npos);
  dump.source = {Source::Kind::core, "core.12"};
  CHECK(render_text(dump).starts_with("pid 12: 0 fibers, 0 threads, core file\n"));
  CHECK(render_json(dump).find("\"crash\": null") != std::string::npos);
}

TEST_CASE("streamed text and JSON are the bytes of the string forms, with or without a stack source") {
  const FiberStackSource own_stack = [](const Fiber& fiber) { return fiber.stack; };
  for (const Dump& dump : {sample_dump(), crowded_dump(), crashed_core_dump()}) {
    for (auto grouping : {TextOptions::Grouping::automatic, TextOptions::Grouping::on, TextOptions::Grouping::off}) {
      INFO("pid " << dump.pid << ", grouping " << static_cast<int>(grouping));
      std::ostringstream plain, sourced;
      write_text(dump, plain, {.grouping = grouping});
      write_text(dump, sourced, {.grouping = grouping}, own_stack);
      const std::string expected = render_text(dump, {.grouping = grouping});
      CHECK(plain.str() == expected);
      CHECK(sourced.str() == expected);
    }
    std::ostringstream plain, sourced;
    write_json(dump, plain);
    write_json(dump, sourced, own_stack);
    CHECK(plain.str() == render_json(dump));
    CHECK(sourced.str() == render_json(dump));
  }
}

namespace {

// crowded_dump's stacks with arguments: what the stack source below gives, one fiber at a time.
Stack stack_with_marker(const Fiber& fiber) {
  Stack stack = fiber.stack;
  Argument id{.name = "fiber_arg", .value = std::to_string(fiber.id), .status = Argument::Status::ok, .detail = {}};
  stack.frames.mutable_at(0) = with_args(stack.frames[0], {std::move(id)});
  return stack;
}

}  // namespace

TEST_CASE("a lean dump prints the arguments its stack source gives: each fiber in JSON and ungrouped text, "
          "only the fibers printed alone in grouped text") {
  Dump lean = crowded_dump();
  Dump full = crowded_dump();
  for (Fiber& fiber : full.fibers) fiber.stack = stack_with_marker(fiber);

  std::ostringstream json;
  write_json(lean, json, stack_with_marker);
  CHECK(json.str() == render_json(full));
  CHECK(json.str().find("\"value\": \"150\"") != std::string::npos);

  std::ostringstream flat;
  write_text(lean, flat, {.grouping = TextOptions::Grouping::off}, stack_with_marker);
  CHECK(flat.str() == render_text(full, {.grouping = TextOptions::Grouping::off}));
  CHECK(flat.str().find("recv(fiber_arg=1)") != std::string::npos);

  // Grouped: fiber 150 ("odd_one") is alone in its group and gets its arguments; the groups print none.
  std::ostringstream grouped;
  write_text(lean, grouped, {.grouping = TextOptions::Grouping::on}, stack_with_marker);
  CHECK(grouped.str() == render_text(full, {.grouping = TextOptions::Grouping::on}));
  CHECK(grouped.str().find("fiber_arg=150") != std::string::npos);
  CHECK(grouped.str().find("fiber_arg=1)") == std::string::npos);
}
