// Helpers shared by the libFuzzer targets in this folder: turning the fuzzer's bytes into what each decoder's
// real entry point takes (a file path, a span, a RegionMemory), so the fuzzers exercise the same code the CLI runs.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace fiberscope::fuzz {

// An anonymous in-memory file holding a copy of the input; path() names it through /proc/self/fd so decoders that
// open a path (ElfImage::open, open_core) read exactly these bytes without touching the disk.
class MemoryFile {
 public:
  MemoryFile(const std::uint8_t* data, std::size_t size) {
    fd_ = memfd_create("fiberscope-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();  // the harness itself is broken, not the input
    std::size_t written = 0;
    while (written < size) {
      const ssize_t n = ::write(fd_, data + written, size - written);
      if (n <= 0) std::abort();
      written += static_cast<std::size_t>(n);
    }
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
};

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}

// Consumes fixed-size little-endian integers from the front of the input; past the end it yields zeros.
class InputCursor {
 public:
  InputCursor(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  template <class T>
  T take() {
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T) && offset_ < size_; ++i, ++offset_) {
      value = static_cast<T>(value | static_cast<T>(static_cast<T>(data_[offset_]) << (8 * i)));
    }
    return value;
  }
  // The next `count` bytes (fewer at the end).
  std::span<const std::byte> take_bytes(std::size_t count) {
    const std::size_t n = count < size_ - offset_ ? count : size_ - offset_;
    auto bytes = as_bytes(data_ + offset_, n);
    offset_ += n;
    return bytes;
  }
  std::span<const std::byte> rest() { return take_bytes(size_ - offset_); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

}  // namespace fiberscope::fuzz
