// Threads interrupted by a signal, the handler on an alternate signal stack (sigaltstack) or on the thread's own:
// the dump follows the handler's frames across the signal frame into the interrupted code, live and from the kernel
// core of a stack overflow caught on the altstack (tests/programs/signals/altstack.c).
#include <catch2/catch.hpp>

#include <algorithm>
#include <regex>
#include <sstream>

#include "cli/dump_command.h"
#include "core/core_test_support.h"
#include "target/test_process.h"

using namespace fiberscope;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

struct DumpRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

DumpRun dump(cli::DumpOptions options) {
  options.grouping = report::TextOptions::Grouping::off;
  DumpRun run;
  std::ostringstream out;
  run.exit_code = cli::run_dump(options, out, run.err);
  run.out = out.str();
  return run;
}

// The entry of the thread whose stack holds `function` (from its header to the blank line), or "".
std::string thread_entry_with(const std::string& text, const std::string& function) {
  const auto at = text.find("\n" + function + "(");
  if (at == std::string::npos) return {};
  const auto start = text.rfind("\nthread ", at);
  return text.substr(start + 1, text.find("\n\n", at) - start - 1);
}

// Positions of the lines naming `functions`, in order; false if one is missing or out of order.
bool in_order(const std::string& entry, const std::vector<std::string>& functions) {
  std::size_t from = 0;
  for (const std::string& function : functions) {
    const auto at = entry.find("\n" + function + "(", from);
    if (at == std::string::npos) return false;
    from = at + 1;
  }
  return true;
}

}  // namespace

TEST_CASE("a handler on the alternate signal stack is unwound into the code it interrupted, in a syscall or not") {
  for (const char* mode : {"syscall", "computing", "off-stack"}) {
    INFO(mode);
    TestProcess target({bin("signals_altstack"), mode});
    REQUIRE(target.wait_for("READY"));
    cli::DumpOptions options;
    options.pid = target.pid();
    DumpRun run = dump(options);
    INFO(run.out << run.err);
    CHECK(run.exit_code == cli::kExitClean);
    const std::string handler = std::string(mode) == "computing" ? "altstack_handler_spins" : "altstack_handler_blocks";
    const std::string entry = thread_entry_with(run.out, handler);
    REQUIRE_FALSE(entry.empty());
    // The signal frame is named as gdb names it, and the interrupted code follows it on the thread's stack.
    CHECK(in_order(entry, {handler, "on_signal", "__restore_rt", "altstack_interrupted_level2"}));
    if (std::string(mode) == "off-stack") {
      CHECK(in_order(entry, {"altstack_interrupted_level2", "altstack_interrupted_level1", "altstack_thread"}));
      CHECK(entry.find("unwinding stopped") == std::string::npos);
    } else {
      // Live, the capture copies each thread's stack from its sp, which is on the altstack: the thread's own stack
      // is not copied, so the unwind stops there saying so (from a core, below, it goes on to the end).
      CHECK(entry.find("CFA outside the stack") == std::string::npos);
      CHECK(entry.find("is outside the stack") == std::string::npos);
    }
  }
}

TEST_CASE("the kernel core of a stack overflow caught on the altstack shows every recursion frame below the handler") {
  test::TempDir dir;
  if (auto why = test::kernel_core_unavailable()) {
    WARN("skipped: " << *why);
    return;
  }
  test::ChildRun run = test::run_to_end(bin("signals_altstack"), "overflow", dir.path());
  REQUIRE(std::find(run.lines.begin(), run.lines.end(), "OVERFLOW") != run.lines.end());
  auto core = test::find_core(dir.path());
  if (!core) {
    WARN("skipped: the crash left no core in " << dir.path());
    return;
  }
  cli::DumpOptions options;
  options.core_path = *core;
  options.max_depth = 4096;
  DumpRun dumped = dump(options);
  INFO(dumped.err);
  const std::string entry = thread_entry_with(dumped.out, "on_signal");
  REQUIRE_FALSE(entry.empty());
  CHECK(in_order(entry, {"on_signal", "__restore_rt", "altstack_recurse", "altstack_recurse",
                         "altstack_interrupted_level2", "altstack_interrupted_level1", "altstack_thread"}));
  // 256 KiB of stack at about 272 bytes a frame: hundreds of recursion frames, all of them shown.
  std::size_t recursion_frames = 0;
  for (std::size_t at = entry.find("\naltstack_recurse("); at != std::string::npos;
       at = entry.find("\naltstack_recurse(", at + 1))
    ++recursion_frames;
  CHECK(recursion_frames > 500);
  CHECK(entry.find("unwinding stopped") == std::string::npos);
}
