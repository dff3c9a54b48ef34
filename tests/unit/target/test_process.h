// TestProcess: a test program run as a child of the test, read line by line until it says READY.
//
//   TestProcess target({bin("threads_blocked"), "4"});
//   REQUIRE(target.wait_for("READY"));
//
// The destructor kills and reaps the child, so a failing test leaves nothing behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace fiberscope::testing {

inline std::string bin(const std::string& name) { return std::string(FIBERSCOPE_TEST_BIN_DIR) + "/" + name; }

class TestProcess {
 public:
  explicit TestProcess(const std::vector<std::string>& argv) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      // In sanitizer builds the children are instrumented too; LeakSanitizer ptraces its own process at exit,
      // which would make "target exits during attach" tests meet a second tracer that is not the point of them.
      std::string asan_options = ::getenv("ASAN_OPTIONS") ? ::getenv("ASAN_OPTIONS") : "";
      asan_options += asan_options.empty() ? "detect_leaks=0" : ":detect_leaks=0";
      ::setenv("ASAN_OPTIONS", asan_options.c_str(), 1);
      std::vector<char*> args;
      for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_fd_ = out[0];
  }
  ~TestProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  TestProcess(const TestProcess&) = delete;
  TestProcess& operator=(const TestProcess&) = delete;

  int pid() const { return pid_; }

  // The next line of output, or nothing after `timeout` or at end of output.
  std::optional<std::string> next_line(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto newline = pending_.find('\n'); newline != std::string::npos) {
        std::string line = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        lines_.push_back(line);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd poll_fd{out_fd_, POLLIN, 0};
      if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      ssize_t count = ::read(out_fd_, buffer, sizeof buffer);
      if (count <= 0) return std::nullopt;
      pending_.append(buffer, static_cast<std::size_t>(count));
    }
  }

  // Reads lines until one starts with `prefix`; returns its words.
  std::optional<std::vector<std::string>> wait_for(const std::string& prefix,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    while (auto line = next_line(timeout)) {
      if (line->rfind(prefix, 0) == 0) {
        std::istringstream words(*line);
        std::vector<std::string> result;
        for (std::string word; words >> word;) result.push_back(word);
        return result;
      }
    }
    return std::nullopt;
  }
  const std::vector<std::string>& lines() const { return lines_; }

  // Reaps the child (after it exited or was killed); false if it was already reaped elsewhere.
  bool reap(int* status = nullptr) {
    int ignored = 0;
    reaped_ = true;
    return ::waitpid(pid_, status ? status : &ignored, 0) == pid_;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool reaped_ = false;
  std::string pending_;
  std::vector<std::string> lines_;
};

}  // namespace fiberscope::testing
