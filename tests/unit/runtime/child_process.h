// Runs a test program as a child process and collects what it printed and how it ended, for tests whose
// subject is a crash or an abort (fault injection, stack overflow).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace runtime_test {

struct ChildResult {
  int wait_status = 0;  // as from waitpid: use WIFEXITED / WTERMSIG on it
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
};

// Runs `argv` with the current environment plus `extra_environment` ("NAME=value"), without core dumps,
// killing it after `timeout`. A failure to start shows up as exit status 127 with the reason on stderr_text.
ChildResult run_child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_environment,
                      std::chrono::milliseconds timeout);

// "exited 0", "killed by SIGSEGV", ...: for test failure messages.
std::string describe_wait_status(int wait_status);

}  // namespace runtime_test
