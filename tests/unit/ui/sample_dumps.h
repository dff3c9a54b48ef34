// Hand-built report::Dump models for the ui's tests: a small server with fibers in every state, a finding with
// evidence, errors, the same server as a core whose fiber crashed, and a crowd of look-alike fibers for the groups
// view.
#pragma once

#include <string>
#include <vector>

#include "report/dump.h"

namespace fiberscope::ui::testing {

inline report::Frame frame(std::uint64_t pc, std::string function, std::string file, unsigned line,
                           report::StackKind stack = report::StackKind::fiber) {
  report::Frame f;
  f.pc = pc;
  f.function = std::move(function);
  f.function_offset = 0x1c;
  f.module = "demo_server";
  f.file = std::move(file);
  f.line = line;
  f.stack = stack;
  return f;
}

inline report::Frame with_args(report::Frame f, std::vector<report::Argument> args) {
  f.args_known = true;
  f.args = std::move(args);
  return f;
}

inline report::Fiber fiber(std::uint64_t id, std::string name, std::string state, std::string wait_reason,
                           std::uint64_t ms_in_state, std::vector<report::Frame> frames) {
  report::Fiber f;
  f.id = id;
  f.name = std::move(name);
  f.state = std::move(state);
  f.wait_reason = std::move(wait_reason);
  f.time_in_state_ns = ms_in_state * 1'000'000;
  f.stack.frames = std::move(frames);
  f.created_by =
      std::make_shared<const report::CodeLocation>(report::CodeLocation{0x401234, "main", "/src/demo_server.cpp", 300});
  return f;
}

// Seven fibers, one per state (plus a second waiter), two threads, one finding, one error.
inline report::Dump small_server() {
  using report::Argument;
  using report::StackKind;
  report::Dump dump;
  dump.pid = 4242;
  dump.exe_path = "/opt/demo/demo_server";
  dump.pause_ms = 0.42;
  dump.has_fiber_table = true;
  dump.fibers_created = 30;

  dump.fibers.push_back(fiber(1, "main", "waiting", "waitgroup", 754'000,
                              {frame(0x402000, "fiber::WaitGroup::wait()", "/src/runtime/sync.cpp", 88),
                               frame(0x402100, "demo_main()", "/src/demo_server.cpp", 290),
                               frame(0x402200, "fiberscope_fiber_start", "", 0)}));
  dump.fibers.back().created_by.reset();
  auto reader = fiber(17, "conn-reader-3", "syscall", "", 192'000,
                      {frame(0x7f0000001000, "read", "", 0),
                       frame(0x402300, "fiber::syscall<long>", "/src/runtime/syscall.h", 40),
                       with_args(frame(0x402400, "read_request(int, char*)", "/src/conn.cpp", 57),
                                 {{"fd", "7", Argument::Status::ok, ""},
                                  {"buf", "0x7f0012345000", Argument::Status::ok, ""}}),
                       frame(0x402500, "fiberscope_fiber_start", "", 0)});
  reader.stack.frames.mutable_at(0).module = "libc.so.6";
  reader.stack.frames.mutable_at(0).stack = StackKind::system;
  reader.thread = 4244;
  dump.fibers.push_back(reader);
  auto hasher = fiber(18, "hash-worker-0", "running", "", 12,
                      {with_args(frame(0x403000, "checksum(unsigned long)", "/src/work.cpp", 21),
                                 {{"rounds", "", Argument::Status::optimized_out, ""}}),
                       frame(0x403100, "hash_worker(int)", "/src/work.cpp", 40)});
  hasher.thread = 4243;
  dump.fibers.push_back(hasher);
  dump.fibers.push_back(fiber(19, "request-handler-1", "waiting", "chan receive", 3'000,
                              {frame(0x402000, "fiber::Channel<Request>::recv()", "/src/runtime/channel.h", 120),
                               frame(0x404000, "handle_requests(int)", "/src/handlers.cpp", 33)}));
  dump.fibers.push_back(fiber(20, "request-handler-2", "waiting", "chan receive", 2'500,
                              {frame(0x402000, "fiber::Channel<Request>::recv()", "/src/runtime/channel.h", 120),
                               frame(0x404000, "handle_requests(int)", "/src/handlers.cpp", 33)}));
  dump.fibers.push_back(fiber(21, "idle-conn-0", "waiting", "sleep", 61'000,
                              {frame(0x402600, "fiber::sleep_for()", "/src/runtime/timer.cpp", 10),
                               frame(0x404100, "keep_alive(int)", "/src/conn.cpp", 90)}));
  auto resolver = fiber(22, "dns-resolver-0", "foreign", "", 4'000,
                        {frame(0x7f0000002000, "poll", "", 0, StackKind::system),
                         frame(0x405000, "c_resolve", "/src/demo_foreign.c", 14, StackKind::system),
                         frame(0x405100, "fiberscope_foreign_trampoline", "", 0, StackKind::system),
                         frame(0x405200, "fiber::foreign_call<long>", "/src/runtime/foreign.h", 30),
                         with_args(frame(0x405300, "resolve(char const*)", "/src/dns.cpp", 12),
                                   {{"host", "\"example.org\"", Argument::Status::ok, ""}})});
  resolver.stack.frames.mutable_at(0).module = "libc.so.6";
  resolver.thread = 4245;
  dump.fibers.push_back(resolver);
  auto fresh = fiber(23, "batch-part-2", "runnable", "", 0,
                     {frame(0x406000, "batch_part(int)", "/src/batch.cpp", 7)});
  fresh.stack.stop_reason = "no CFI for pc 0x406000";
  dump.fibers.push_back(fresh);

  report::Thread monitor;
  monitor.tid = 4242;
  monitor.name = "demo_server";
  dump.threads.push_back(monitor);
  report::Thread worker;
  worker.tid = 4243;
  worker.name = "fiber-worker-0";
  worker.fiber_id = 18;
  dump.threads.push_back(worker);

  dump.findings.push_back({"invalid-syscall-frame", 22, "fiber::foreign_call<long>",
                           "rule 2 (below-live-frame): syscall_sp 0x7f00aa001f00 lies below the deepest live frame "
                           "(sp 0x7f00aa002000): its frames were popped; "
                           "syscall_pc: 0x405210 (fiber::foreign_call<long> at /src/runtime/foreign.h:31); "
                           "stack: [0x7f00aa000000, 0x7f00aa010000)\nThe bug class of Go issue 7978."});
  dump.errors.push_back({"fiber 23: unwinding stopped early", 23, {}});
  return dump;
}

// The small server as a kernel core after hash-worker-0 (fiber 18, on thread 4243) dereferenced null.
inline report::Dump crashed_core() {
  report::Dump dump = small_server();
  dump.source = {report::Source::Kind::core, "/tmp/core.4242"};
  dump.pause_ms.reset();
  dump.crash = report::Crash{.tid = 4243, .signal = 11, .signal_name = "SIGSEGV", .fault_address = 0, .fiber_id = 18};
  for (report::Fiber& f : dump.fibers)
    if (f.id == 18) f.crashed = true;
  return dump;
}

// `count` request handlers in two look-alike groups plus the small server's fibers.
inline report::Dump crowded_server(std::size_t count) {
  report::Dump dump = small_server();
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t id = 100 + i;
    if (i % 3 == 0) {
      dump.fibers.push_back(fiber(id, "idle-conn-" + std::to_string(i), "waiting", "sleep", 1000 + i,
                                  {frame(0x402600, "fiber::sleep_for()", "/src/runtime/timer.cpp", 10),
                                   frame(0x404100, "keep_alive(int)", "/src/conn.cpp", 90)}));
    } else {
      dump.fibers.push_back(fiber(id, "request-handler-" + std::to_string(i), "waiting", "chan receive", 2000 + i,
                                  {frame(0x402000, "fiber::Channel<Request>::recv()", "/src/runtime/channel.h", 120),
                                   frame(0x404000, "handle_requests(int)", "/src/handlers.cpp", 33)}));
    }
  }
  return dump;
}

}  // namespace fiberscope::ui::testing
