// `fiberscope top`'s plumbing without a terminal: its arguments, the snapshot pump (with an in-memory source: the
// pump's threads and requests are what is under test, not the target) and lean snapshots whose details get their
// arguments later.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "sample_dumps.h"
#include "ui/details_panel.h"
#include "ui/snapshot_pump.h"
#include "ui/top_command.h"
#include "ui/top_model.h"

using namespace fiberscope;
using namespace fiberscope::ui;
using namespace std::chrono_literals;

TEST_CASE("top --core takes --exe and --sysroot, which go with --core only", "[ui]") {
  bool help = false;
  auto options = parse_top_arguments({"--core", "/tmp/core.1", "--exe", "/opt/app", "--sysroot", "/srv/root"}, help);
  REQUIRE(options);
  CHECK(!help);
  CHECK(options->core_path == "/tmp/core.1");
  CHECK(options->exe_path == "/opt/app");
  CHECK(options->sysroot == "/srv/root");

  auto without_core = parse_top_arguments({"12", "--exe", "/opt/app"}, help);
  REQUIRE(!without_core);
  CHECK(without_core.error().message == "--exe and --sysroot go with --core FILE");
  auto missing_value = parse_top_arguments({"--core", "c", "--sysroot"}, help);
  REQUIRE(!missing_value);
  CHECK(missing_value.error().message == "--sysroot needs a value");
  auto no_stop = parse_top_arguments({"--core", "c", "--no-stop"}, help);
  REQUIRE(!no_stop);
  CHECK(no_stop.error().message == "--no-stop is for live processes, not --core");

  const std::string text = kTopHelp;
  CHECK(text.find("fiberscope top --core FILE [--exe PATH] [--sysroot DIR]") != std::string::npos);
  CHECK(text.find("  --exe PATH      with --core: the executable") != std::string::npos);
  CHECK(text.find("  --sysroot DIR   with --core: prefix for every file the core names") != std::string::npos);
  CHECK(text.find("CRASH") == std::string::npos);  // the tests' crash hook stays out of the help
}

namespace {

// A source whose snapshots hold fiber 7 and whose "arguments" name the snapshot they were read from and the
// thread that read them.
class CountingSource {
 public:
  SnapshotSource source() {
    return [this]() -> Result<LeanSnapshot> {
      std::lock_guard lock(mutex_);
      if (fail_next_) {
        fail_next_ = false;
        return fail("capture failed");
      }
      const int number = ++taken_;
      report::Dump dump;
      dump.fibers.emplace_back().id = 7;
      return LeanSnapshot{std::move(dump), [this, number](std::uint64_t fiber_id) {
                            std::lock_guard inner(mutex_);
                            args_thread_ = std::this_thread::get_id();
                            report::Stack stack;
                            stack.frames = {ui::testing::frame(1, "fiber " + std::to_string(fiber_id) +
                                                                      " of snapshot " + std::to_string(number),
                                                               "", 0)};
                            return stack;
                          }};
    };
  }
  void fail_next() {
    std::lock_guard lock(mutex_);
    fail_next_ = true;
  }
  std::thread::id args_thread() {
    std::lock_guard lock(mutex_);
    return args_thread_;
  }

 private:
  std::mutex mutex_;
  int taken_ = 0;
  bool fail_next_ = false;
  std::thread::id args_thread_;
};

}  // namespace

TEST_CASE("the pump reads a fiber's arguments from the snapshot shown, on its own thread, and drops requests about a "
          "replaced snapshot", "[ui]") {
  CountingSource counting;
  SnapshotPump pump(counting.source());
  pump.request();
  auto first = pump.wait_result();
  REQUIRE(first);
  REQUIRE(first->dump);
  CHECK(first->generation == 1);
  CHECK(!first->wanted_args);

  pump.request_args(1, 7);
  REQUIRE(pump.wait_args(10s));
  auto args = pump.take_args();
  REQUIRE(args);
  CHECK(args->generation == 1);
  CHECK(args->fiber_id == 7);
  CHECK(args->stack.frames.front().function == "fiber 7 of snapshot 1");
  CHECK(counting.args_thread() != std::thread::id());
  CHECK(counting.args_thread() != std::this_thread::get_id());
  CHECK(!pump.take_args());  // once

  // The details stay open: every snapshot comes with their fiber's arguments, read from that snapshot.
  pump.want_args(7);
  pump.request();
  auto second = pump.wait_result();
  REQUIRE(second);
  CHECK(second->generation == 2);
  REQUIRE(second->wanted_args);
  CHECK(second->wanted_args->stack.frames.front().function == "fiber 7 of snapshot 2");

  // Snapshot 1 was replaced: its inspection is gone, and a late request about it gets no answer.
  pump.request_args(1, 7);
  CHECK(!pump.wait_args(200ms));
  CHECK(!pump.take_args());

  // A failed snapshot replaces nothing: the one shown can still be read.
  counting.fail_next();
  pump.request();
  auto failed = pump.wait_result();
  REQUIRE(failed);
  CHECK(!failed->dump);
  pump.request_args(2, 7);
  REQUIRE(pump.wait_args(10s));
  CHECK(pump.take_args()->stack.frames.front().function == "fiber 7 of snapshot 2");

  // A fiber not in the snapshot comes with nothing.
  pump.want_args(99);
  pump.request();
  auto third = pump.wait_result();
  REQUIRE(third);
  CHECK(third->generation == 3);
  CHECK(!third->wanted_args);
}

TEST_CASE("a lean snapshot's details say the arguments are being read, then show them, and a new snapshot resets "
          "that", "[ui]") {
  report::Dump full = ui::testing::small_server();
  report::Dump lean = full;
  report::Stack with_args;
  for (report::Fiber& fiber : lean.fibers) {
    if (fiber.id == 17) with_args = fiber.stack;
    report::Stack stack;
    for (const report::Frame& frame : fiber.stack.frames) {
      report::Frame bare = frame;
      bare.args_known = false;
      bare.args.clear();
      stack.frames.push_back(std::move(bare));
    }
    fiber.stack = std::move(stack);
  }
  TopModel model;
  DetailsPanel details(model);
  details.show(17);
  auto text_of = [&] {
    std::string text;
    for (const DetailsPanel::Line& line : details.lines()) text += line.text + "\n";
    return text;
  };

  model.set_dump(full);
  const std::string expected = text_of();
  CHECK(model.has_args(17));

  model.set_dump(lean, DumpArgs::on_request);
  CHECK(!model.has_args(17));
  const std::string waiting = text_of();
  CHECK(waiting.find("backtrace, innermost first (reading the arguments...):") != std::string::npos);
  CHECK(waiting.find("(...)") != std::string::npos);

  const std::string where_before = model.row_of(17)->where;
  model.add_args(17, with_args);
  CHECK(model.has_args(17));
  CHECK(!model.has_args(19));
  CHECK(model.row_of(17)->where == where_before);
  CHECK(text_of() == expected);  // exactly what a dump built with every fiber's arguments shows
  model.add_args(12345, with_args);  // not in the dump: nothing happens
  CHECK(!model.has_args(12345));

  model.set_dump(lean, DumpArgs::on_request);
  CHECK(!model.has_args(17));
}
