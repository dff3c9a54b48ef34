// Files replaced by a FIFO, a directory or a device never block fiberscope: every place that opens a file (a core,
// --exe, a library a core names, a .gnu_debuglink or build-id debug file, libdwarf's descriptor) refuses anything
// but a regular file, at once. A target's owner controls the debug files a root user's dump opens.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>

#include "binary/elf_image.h"
#include "binary/libdwarf.h"
#include "target/core_file.h"
#include "target/regular_file.h"

namespace {

using namespace fiberscope;

// Runs `open` in a child that an alarm kills after 5 s: true if it returned with an error naming the file's kind.
// (In the test process itself, a blocked open() would hang the suite.)
bool refuses_without_blocking(const std::function<std::string()>& open, const std::string& kind) {
  pid_t child = ::fork();
  if (child == 0) {
    ::alarm(5);
    std::string message = open();
    ::_exit(message.find("not a regular file (" + kind + ")") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  INFO("child status " << status);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char pattern[] = "/tmp/fiberscope-special-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

template <class T>
std::string error_of(const Result<T>& result) {
  return result ? std::string("opened") : result.error().message;
}

}  // namespace

TEST_CASE("a FIFO given as a core, an executable, a debug file or to libdwarf is refused at once") {
  TempDir dir;
  std::string fifo = (dir.path / "fifo").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(refuses_without_blocking([&] { return error_of(target::open_regular_file(fifo)); }, "a FIFO"));
  CHECK(refuses_without_blocking([&] { return error_of(target::open_core_file(fifo, {})); }, "a FIFO"));
  CHECK(refuses_without_blocking([&] { return error_of(binary::ElfImage::open(fifo)); }, "a FIFO"));
  CHECK(refuses_without_blocking(
      [&] {
        binary::Session session;
        return error_of(session.open(fifo));
      },
      "a FIFO"));
}

TEST_CASE("a directory or a terminal device where a file is expected is refused with its kind") {
  TempDir dir;
  CHECK(refuses_without_blocking([&] { return error_of(binary::ElfImage::open(dir.path.string())); },
                                 "a directory"));
  CHECK(refuses_without_blocking([&] { return error_of(target::open_core_file("/dev/null", {})); },
                                 "a character device"));
}
