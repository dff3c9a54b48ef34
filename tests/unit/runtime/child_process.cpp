#include "child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

extern char** environ;

namespace runtime_test {

ChildResult run_child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_environment,
                      std::chrono::milliseconds timeout) {
  ChildResult result;
  // Everything execve needs is built before fork: the child of a multi-threaded parent may only call
  // async-signal-safe functions.
  std::vector<char*> child_argv;
  for (const auto& arg : argv) child_argv.push_back(const_cast<char*>(arg.c_str()));
  child_argv.push_back(nullptr);
  std::vector<char*> child_env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    // An extra entry replaces the inherited one of the same name (getenv would find the first).
    const std::string_view inherited = *entry;
    const auto overridden = [&](const std::string& extra) {
      const auto name_end = extra.find('=');
      return name_end != std::string::npos &&
             inherited.substr(0, name_end + 1) == std::string_view(extra).substr(0, name_end + 1);
    };
    if (std::none_of(extra_environment.begin(), extra_environment.end(), overridden)) child_env.push_back(*entry);
  }
  for (const auto& entry : extra_environment) child_env.push_back(const_cast<char*>(entry.c_str()));
  child_env.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.wait_status = 127 << 8;
    result.stderr_text = std::string("pipe2: ") + std::strerror(errno);
    return result;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    // No core files from the crashes these tests provoke on purpose.
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execve(child_argv[0], child_argv.data(), child_env.data());
    const char message[] = "execve failed\n";
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.wait_status = 127 << 8;
    result.stderr_text = std::string("fork: ") + std::strerror(errno);
    return result;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd streams[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.stdout_text, &result.stderr_text};
  int open_streams = 2;
  while (open_streams > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    const int ready = ::poll(streams, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (streams[i].fd < 0 || streams[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t got = ::read(streams[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(streams[i].fd);
        streams[i].fd = -1;
        --open_streams;
      }
    }
  }
  for (auto& stream : streams)
    if (stream.fd >= 0) ::close(stream.fd);
  while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

std::string describe_wait_status(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(wait_status));
    return std::string("killed by SIG") + (name != nullptr ? name : std::to_string(WTERMSIG(wait_status)).c_str());
  }
  return "wait status " + std::to_string(wait_status);
}

}  // namespace runtime_test
