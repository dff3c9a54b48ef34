// open_regular_file: the one way fiberscope opens a file it reads (a core, an executable, a library a core names,
// a .gnu_debuglink or build-id debug file). Any of them may have been replaced by a FIFO, a device or a directory
// (a target's owner controls the debug files a root user's dump reads): open() of a FIFO blocks until a writer
// comes, so the file is opened with O_NONBLOCK and refused unless fstat says it is a regular file.
//
//   FS_TRY(file, open_regular_file(path));   // file->fd(), file->size_bytes(); closed by its destructor
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include "base/result.h"

namespace fiberscope::target {

// A regular file open for reading; owns its descriptor.
class RegularFile {
 public:
  RegularFile() = default;
  RegularFile(int fd, std::uint64_t size_bytes, dev_t device, ino_t inode)
      : fd_(fd), size_bytes_(size_bytes), device_(device), inode_(inode) {}
  ~RegularFile();
  RegularFile(RegularFile&& other) noexcept { *this = std::move(other); }
  RegularFile& operator=(RegularFile&& other) noexcept;
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  int fd() const { return fd_; }
  // Hands the descriptor over to a caller that closes it (libdwarf's session).
  int release() { return std::exchange(fd_, -1); }
  std::uint64_t size_bytes() const { return size_bytes_; }
  dev_t device() const { return device_; }
  ino_t inode() const { return inode_; }

 private:
  int fd_ = -1;
  std::uint64_t size_bytes_ = 0;
  dev_t device_ = 0;
  ino_t inode_ = 0;
};

// Opens `path` for reading without ever blocking; fails with "PATH: not a regular file (a FIFO)" and the like.
Result<RegularFile> open_regular_file(const std::string& path);

}  // namespace fiberscope::target
