// fiberscope: the command line. Subcommands share the exit codes of cli/dump_command.h.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/check_command.h"
#include "cli/dump_command.h"
#include "cli/gcore_command.h"
#include "fiberscope/debug_abi.h"
#include "ui/top_command.h"

namespace {

const char* const kHelp =
    "usage: fiberscope <command> [arguments]\n"
    "\n"
    "Looks inside processes built on the fiberscope fiber runtime (and, for threads, any process) on Linux\n"
    "x86-64, without leaving them stopped.\n"
    "\n"
    "commands:\n"
    "  dump PID     every fiber's and thread's stack, symbolized, with arguments (fiberscope dump --help;\n"
    "               parked fibers' stacks are copied just before the stop, --exact-stacks copies all in it);\n"
    "  dump --core FILE, check --core FILE, top --core FILE: the same from a core file\n"
    "  check PID    the runtime's invariants checked from outside: invalid syscall frames, stale live\n"
    "               arguments (fiberscope check --help)\n"
    "  gcore PID    write a core file of a running process, which keeps running; dump, check and top read it\n"
    "               with --core FILE, gdb too (fiberscope gcore --help)\n"
    "  top PID      a live, refreshing view of the fibers, like htop (fiberscope top --help)\n"
    "\n"
    "options:\n"
    "  -h, --help   this help\n"
    "  --version    the version of fiberscope and of the debug ABI it reads\n"
    "\n"
    "exit codes:\n"
    "  0  clean  1  findings reported  2  error (usage, no such process, no permission, ABI mismatch)\n"
    "  3  partial: output printed, but some records or stacks could not be read\n"
    "  interrupted by SIGINT, SIGTERM or SIGHUP: the target is released first, then fiberscope ends by that\n"
    "  signal (shell status 130 for Ctrl-C)\n"
    "\n"
    "Attaching needs ptrace permission: the same user and kernel.yama.ptrace_scope=0, or root / CAP_SYS_PTRACE.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace fiberscope::cli;
  std::vector<std::string> arguments(argv + 1, argv + argc);
  if (arguments.empty()) {
    std::fputs(kHelp, stderr);
    return kExitError;
  }
  const std::string command = arguments.front();
  if (command == "-h" || command == "--help" || command == "help") {
    std::fputs(kHelp, stdout);
    return kExitClean;
  }
  if (command == "--version") {
    std::printf("fiberscope %s (debug ABI version %u)\n", FIBERSCOPE_VERSION, FIBERSCOPE_DEBUG_ABI_VERSION_READ);
    return kExitClean;
  }
  if (command == "dump") {
    bool help = false;
    auto options = parse_dump_arguments({arguments.begin() + 1, arguments.end()}, help);
    if (help) {
      std::fputs(kDumpHelp, stdout);
      return kExitClean;
    }
    if (!options) {
      std::fprintf(stderr, "fiberscope dump: %s\n", options.error().message.c_str());
      return kExitError;
    }
    // The report streams to stdout as it is made (a JSON dump of 100k fibers is about a gigabyte); errors and
    // warnings follow it, as with every other command.
    std::string err;
    const int code = run_dump(*options, std::cout, err);
    std::cout.flush();
    std::fwrite(err.data(), 1, err.size(), stderr);
    return code;
  }
  if (command == "top") {
    bool help = false;
    auto options = fiberscope::ui::parse_top_arguments({arguments.begin() + 1, arguments.end()}, help);
    if (help) {
      std::fputs(fiberscope::ui::kTopHelp, stdout);
      return kExitClean;
    }
    if (!options) {
      std::fprintf(stderr, "fiberscope top: %s\n", options.error().message.c_str());
      return kExitError;
    }
    auto done = fiberscope::ui::run_top(*options);
    if (!done) {
      std::fprintf(stderr, "fiberscope: %s\n", done.error().message.c_str());
      return kExitError;
    }
    return kExitClean;
  }
  if (command == "check") {
    bool help = false;
    auto options = parse_check_arguments({arguments.begin() + 1, arguments.end()}, help);
    if (help) {
      std::fputs(kCheckHelp, stdout);
      return kExitClean;
    }
    if (!options) {
      std::fprintf(stderr, "fiberscope check: %s\n", options.error().message.c_str());
      return kExitError;
    }
    auto flush = [](std::string& out, std::string& err) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      std::fwrite(err.data(), 1, err.size(), stderr);
      out.clear();
      err.clear();
    };
    std::string out, err;
    const int code = run_check(*options, out, err, flush);
    flush(out, err);
    return code;
  }
  if (command == "gcore") {
    bool help = false;
    auto options = parse_gcore_arguments({arguments.begin() + 1, arguments.end()}, help);
    if (help) {
      std::fputs(kGcoreHelp, stdout);
      return kExitClean;
    }
    if (!options) {
      std::fprintf(stderr, "fiberscope gcore: %s\n", options.error().message.c_str());
      return kExitError;
    }
    std::string out, err;
    const int code = run_gcore(*options, out, err);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    std::fwrite(err.data(), 1, err.size(), stderr);
    return code;
  }
  std::fprintf(stderr, "fiberscope: unknown command '%s' (see fiberscope --help)\n", command.c_str());
  return kExitError;
}
