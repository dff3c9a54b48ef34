#include "target/process_memory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

namespace fiberscope::target {

namespace {

// The kernel refuses more than IOV_MAX (1024 on Linux) iovecs per call.
constexpr std::size_t kMaxIovecs = IOV_MAX;

// Whether a process_vm_readv failure means "this call is not allowed" rather than "this address is bad".
bool refused(int error) { return error == EPERM || error == ENOSYS; }

}  // namespace

ProcessMemory::ProcessMemory(int pid, Method method) : pid_(pid) {
  if (method == Method::proc_mem) use_proc_mem_ = open_proc_mem();
}

ProcessMemory::~ProcessMemory() {
  if (proc_mem_fd_ >= 0) ::close(proc_mem_fd_);
}

bool ProcessMemory::using_proc_mem() const {
  std::lock_guard lock(mutex_);
  return use_proc_mem_;
}

bool ProcessMemory::open_proc_mem() const {
  if (proc_mem_fd_ >= 0) return true;
  std::string path = "/proc/" + std::to_string(pid_) + "/mem";
  // Read-only: the inspector never writes to the target.
  proc_mem_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  return proc_mem_fd_ >= 0;
}

std::uint64_t ProcessMemory::read_proc_mem(RemoteAddress address, std::span<std::byte> out, int& error) const {
  std::uint64_t done = 0;
  error = 0;
  while (done < out.size()) {
    // pread takes a signed off_t; addresses in the upper half (kernel space) cannot be read this way anyway.
    std::uint64_t position = address.value() + done;
    if (position > static_cast<std::uint64_t>(LLONG_MAX)) {
      error = EIO;
      break;
    }
    ssize_t count = ::pread(proc_mem_fd_, out.data() + done, out.size() - done, static_cast<off_t>(position));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      error = count < 0 ? errno : EIO;
      break;
    }
    done += static_cast<std::uint64_t>(count);
  }
  return done;
}

Result<void> ProcessMemory::read(RemoteAddress address, std::span<std::byte> out) const {
  if (out.empty()) return {};
  if (!address.checked_add(out.size()))
    return fail("read of ", hex(out.size()), " bytes at ", address.to_string(), " wraps past 2^64");

  std::uint64_t done = 0;
  int error = 0;
  bool proc_mem = using_proc_mem();
  while (!proc_mem && done < out.size()) {
    iovec local{out.data() + done, out.size() - done};
    iovec remote{reinterpret_cast<void*>(address.value() + done), out.size() - done};
    ssize_t count = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0 && refused(errno)) {
      std::lock_guard lock(mutex_);
      if (!open_proc_mem()) {
        error = EPERM;
        break;
      }
      use_proc_mem_ = true;
      proc_mem = true;
      break;
    }
    if (count <= 0) {
      error = count < 0 ? errno : EFAULT;
      break;
    }
    done += static_cast<std::uint64_t>(count);
  }
  if (proc_mem && done < out.size()) done += read_proc_mem(address + done, out.subspan(done), error);
  if (done == out.size()) return {};

  RemoteAddress first_bad = address + done;
  std::string where = " (reading " + hex(out.size()) + " bytes at " + address.to_string() + " of process " +
                      std::to_string(pid_) + ")";
  if (error == ESRCH) return fail_code(ErrorCode::no_such_process, "process ", std::to_string(pid_), " is gone", where);
  if (refused(error) || error == EACCES)
    return fail_code(ErrorCode::permission_denied, "not permitted to read memory of process ", std::to_string(pid_),
                     " (process_vm_readv and /proc/PID/mem both refused)");
  return fail("memory at ", first_bad.to_string(), " unreadable", where, ": ", std::strerror(error));
}

std::size_t ProcessMemory::read_batch(std::span<BatchRead> requests) const {
  for (BatchRead& request : requests) request.bytes_read = 0;
  iovec local[kMaxIovecs];
  iovec remote[kMaxIovecs];
  std::size_t index_of[kMaxIovecs];
  bool proc_mem = using_proc_mem();

  std::size_t next = 0;
  while (!proc_mem && next < requests.size()) {
    // Gather up to IOV_MAX non-empty, non-wrapping requests starting at `next`.
    std::size_t used = 0;
    std::size_t scan = next;
    for (; scan < requests.size() && used < kMaxIovecs; ++scan) {
      BatchRead& request = requests[scan];
      if (request.out.empty() || !request.address.checked_add(request.out.size())) continue;
      local[used] = {request.out.data(), request.out.size()};
      remote[used] = {reinterpret_cast<void*>(request.address.value()), request.out.size()};
      index_of[used] = scan;
      ++used;
    }
    if (used == 0) {
      next = scan;
      continue;
    }
    ssize_t count = ::process_vm_readv(pid_, local, used, remote, used, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0 && refused(errno)) {
      std::lock_guard lock(mutex_);
      if (!open_proc_mem()) break;  // nothing can be read: every remaining bytes_read stays 0
      use_proc_mem_ = true;
      proc_mem = true;
      break;
    }
    if (count < 0 && errno == ESRCH) break;
    // The kernel copies iovecs in order and stops at the first fault, so `count` bytes cover a prefix.
    std::uint64_t remaining = count < 0 ? 0 : static_cast<std::uint64_t>(count);
    std::size_t stopped_at = used;
    for (std::size_t i = 0; i < used; ++i) {
      BatchRead& request = requests[index_of[i]];
      std::uint64_t got = std::min<std::uint64_t>(remaining, request.out.size());
      request.bytes_read = got;
      remaining -= got;
      if (got < request.out.size()) {
        stopped_at = i;
        break;
      }
    }
    // Resume after the request that faulted: the ones after it were never attempted.
    next = stopped_at == used ? scan : index_of[stopped_at] + 1;
  }
  for (; proc_mem && next < requests.size(); ++next) {
    BatchRead& request = requests[next];
    int error = 0;
    request.bytes_read = request.out.empty() ? 0 : read_proc_mem(request.address, request.out, error);
  }
  std::size_t complete = 0;
  for (const BatchRead& request : requests) complete += request.bytes_read == request.out.size() ? 1 : 0;
  return complete;
}

}  // namespace fiberscope::target
