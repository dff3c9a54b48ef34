// ProcessMemory: reading another live process's memory, the one place the inspector does so.
//
// Reads go through process_vm_readv: one system call per read, or per IOV_MAX ranges with read_batch (how the
// capture copies thousands of stacks quickly). Fallback: when process_vm_readv is refused (EPERM, or ENOSYS under
// a seccomp filter that blocks it, as some container runtimes do) but ptrace access is granted, reads switch to
// pread on /proc/PID/mem, which the kernel authorises separately. The target is never written to.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>

#include "base/result.h"
#include "target/memory.h"

namespace fiberscope::target {

class ProcessMemory final : public Memory {
 public:
  enum class Method : std::uint8_t {
    automatic,   // process_vm_readv, falling back to /proc/PID/mem when refused
    proc_mem,    // /proc/PID/mem only (tests of the fallback)
  };

  explicit ProcessMemory(int pid, Method method = Method::automatic);
  ~ProcessMemory() override;
  ProcessMemory(const ProcessMemory&) = delete;
  ProcessMemory& operator=(const ProcessMemory&) = delete;

  // Fills `out` or fails naming the first unreadable address.
  Result<void> read(RemoteAddress address, std::span<std::byte> out) const override;

  // One range of a batched read; `bytes_read` is set to how much of `out` was filled.
  struct BatchRead {
    RemoteAddress address;
    std::span<std::byte> out;
    std::uint64_t bytes_read = 0;
  };
  // Reads every request, many per system call; a request that fails part-way keeps the prefix it got, and a
  // failure does not stop the others. Returns how many requests were filled completely.
  std::size_t read_batch(std::span<BatchRead> requests) const;

  int pid() const { return pid_; }
  // True once reads have switched to /proc/PID/mem.
  bool using_proc_mem() const;

 private:
  // Reads with pread on /proc/PID/mem; returns bytes read before the first failure, and its errno.
  std::uint64_t read_proc_mem(RemoteAddress address, std::span<std::byte> out, int& error) const;
  // Opens /proc/PID/mem once; false if that fails.
  bool open_proc_mem() const;

  int pid_;
  mutable std::mutex mutex_;  // guards the switch to the fallback
  mutable int proc_mem_fd_ = -1;
  mutable bool use_proc_mem_ = false;
};

}  // namespace fiberscope::target
