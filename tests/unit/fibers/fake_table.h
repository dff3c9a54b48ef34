// Test helpers for fibers/: an in-memory target (FakeMemory) and a builder that lays out a debug-ABI fiber table
// in it, so each test can break one thing on purpose.
#pragma once

#include <cstring>
#include <cstdio>
#include <functional>
#include <map>
#include <vector>

#include "fiberscope/debug_abi.h"
#include "target/memory.h"

namespace fiberscope::fibers::testing {

// Sparse memory: reads must fall inside one region. `on_read` lets a test change bytes between reads (a writer
// running concurrently with a --no-stop reader).
class FakeMemory final : public target::Memory {
 public:
  void put(std::uint64_t address, const void* data, std::size_t size) {
    auto& region = regions_[address];
    region.resize(size);
    std::memcpy(region.data(), data, size);
  }
  template <class T>
  void put_object(std::uint64_t address, const T& value) {
    put(address, &value, sizeof value);
  }
  Result<void> read(target::RemoteAddress address, std::span<std::byte> out) const override {
    ++reads;
    if (on_read) on_read(*const_cast<FakeMemory*>(this));
    auto it = regions_.upper_bound(address.value());
    if (it != regions_.begin()) {
      --it;
      const std::uint64_t offset = address.value() - it->first;
      if (offset <= it->second.size() && out.size() <= it->second.size() - offset) {
        std::memcpy(out.data(), it->second.data() + offset, out.size());
        return {};
      }
    }
    return fail("no memory at ", address.to_string());
  }
  std::byte* at(std::uint64_t address) {
    auto it = std::prev(regions_.upper_bound(address));
    return it->second.data() + (address - it->first);
  }

  mutable int reads = 0;
  std::function<void(FakeMemory&)> on_read;

 private:
  std::map<std::uint64_t, std::vector<std::byte>> regions_;
};

inline constexpr std::uint64_t kRoot = 0x10000;
inline constexpr std::uint64_t kWorkerChunk = 0x20000;
inline constexpr std::uint64_t kFiberChunk = 0x30000;

// A table with `workers` and `fibers` records in one chunk each; fibers get stacks at 0x100000 + i * 0x10000.
struct TableBuilder {
  fiberscope_debug_root root{};
  fiberscope_chunk worker_chunk{};
  fiberscope_chunk fiber_chunk{};
  std::vector<fiberscope_worker> workers;
  std::vector<fiberscope_fiber> fibers;

  TableBuilder(unsigned worker_count, unsigned fiber_count) {
    root.magic = FIBERSCOPE_DEBUG_MAGIC;
    root.abi_version = FIBERSCOPE_DEBUG_ABI_VERSION;
    root.root_size = sizeof(fiberscope_debug_root);
    root.fiber_record_size = sizeof(fiberscope_fiber);
    root.worker_record_size = sizeof(fiberscope_worker);
    root.transition_record_size = sizeof(fiberscope_transition);
    root.chunk_header_size = sizeof(fiberscope_chunk);
    root.fiber_chunks = kFiberChunk;
    root.worker_chunks = kWorkerChunk;
    root.fibers_live = fiber_count;
    root.fibers_created = fiber_count;
    root.clock_ns = 5'000'000'000;
    root.processors = worker_count;
    root.running = 1;
    for (unsigned i = 0; i < worker_count; ++i) {
      fiberscope_worker worker{};
      worker.tid = static_cast<int32_t>(1000 + i);
      worker.state = FIBERSCOPE_WORKER_IDLE;
      worker.sysstack_lo = 0x800000 + i * 0x100000;
      worker.sysstack_hi = worker.sysstack_lo + 0x100000;
      worker.index = i;
      worker.processor = static_cast<int32_t>(i);
      workers.push_back(worker);
    }
    for (unsigned i = 0; i < fiber_count; ++i) {
      fiberscope_fiber fiber{};
      fiber.id = i + 1;
      fiber.state = FIBERSCOPE_FIBER_WAITING;
      fiber.wait_reason = FIBERSCOPE_WAIT_CHAN_RECV;
      fiber.wait_object = 0xabc0 + i;
      std::snprintf(fiber.name, sizeof fiber.name, "fiber-%u", i + 1);
      fiber.guard_lo = 0x100000 + i * 0x10000;
      fiber.stack_lo = fiber.guard_lo + 0x1000;
      fiber.stack_hi = fiber.guard_lo + 0x10000;
      fiber.context.pc = 0x401000;
      fiber.context.sp = fiber.stack_hi - 0x200;
      fiber.context.rbp = fiber.stack_hi - 0x100;
      fiber.state_since_ns = 4'000'000'000;
      fiber.worker = -1;
      fiber.spawn_pc = 0x402000;
      fiber.start_pc = 0x403000;
      fibers.push_back(fiber);
    }
  }

  void install(FakeMemory& memory) {
    memory.put_object(kRoot, root);
    install_chunk(memory, kWorkerChunk, worker_chunk, workers);
    install_chunk(memory, kFiberChunk, fiber_chunk, fibers);
  }

  template <class Record>
  static void install_chunk(FakeMemory& memory, std::uint64_t address, fiberscope_chunk header,
                            const std::vector<Record>& records) {
    if (header.record_size == 0) header.record_size = sizeof(Record);
    if (header.capacity == 0) header.capacity = static_cast<uint32_t>(records.size() + 2);
    if (header.used == 0) header.used = static_cast<uint32_t>(records.size());
    std::vector<std::byte> bytes(sizeof header + header.capacity * sizeof(Record));
    std::memcpy(bytes.data(), &header, sizeof header);
    if (!records.empty()) std::memcpy(bytes.data() + sizeof header, records.data(), records.size() * sizeof(Record));
    memory.put(address, bytes.data(), bytes.size());
  }

  static std::uint64_t fiber_address(unsigned index) {
    return kFiberChunk + sizeof(fiberscope_chunk) + index * sizeof(fiberscope_fiber);
  }
};

}  // namespace fiberscope::fibers::testing
