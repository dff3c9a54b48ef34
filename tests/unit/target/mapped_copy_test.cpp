#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <vector>

#include "target/mapped_copy.h"

using namespace fiberscope::target;

namespace {

// A two-page temporary file, mapped; `truncate()` shrinks the file under the mapping as another process would.
struct ShrinkingFile {
  static constexpr std::size_t kBytes = 8192;
  int fd = -1;
  const char* data = nullptr;
  ShrinkingFile() {
    char pattern[] = "/tmp/fiberscope-shrink-XXXXXX";
    fd = ::mkstemp(pattern);
    ::unlink(pattern);
    std::vector<char> bytes(kBytes, 'x');
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    data = static_cast<const char*>(::mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd, 0));
    REQUIRE(data != MAP_FAILED);
  }
  ~ShrinkingFile() {
    ::munmap(const_cast<char*>(data), kBytes);
    ::close(fd);
  }
  void truncate() { REQUIRE(::ftruncate(fd, 0) == 0); }
};

}  // namespace

TEST_CASE("a copy out of a mapped file that shrank fails instead of killing the inspector with SIGBUS") {
  ShrinkingFile file;
  char out[100] = {};
  REQUIRE(copy_from_mapping(out, file.data + 4096, sizeof out));
  CHECK(out[99] == 'x');
  file.truncate();
  CHECK_FALSE(copy_from_mapping(out, file.data + 4096, sizeof out));
  CHECK_FALSE(copy_from_mapping(out, file.data, sizeof out));  // and again: the guard is still armed
}

TEST_CASE("a SIGBUS outside a guarded copy still ends the process as SIGBUS does") {
  pid_t child = ::fork();
  if (child == 0) {
    ShrinkingFile file;
    char out[8];
    (void)copy_from_mapping(out, file.data, sizeof out);  // installs the handler
    file.truncate();
    volatile char byte = file.data[0];
    (void)byte;
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGBUS);
}
