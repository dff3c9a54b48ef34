// Fake debug-ABI fiber tables for the fibers/ unit tests, the hardening tests and the fiber-table fuzzer, so each
// can break one thing on purpose. One set of record defaults serves two layouts:
//   - TableBuilder: N workers and N fibers, one chunk each, placed apart in a FakeMemory (sparse in-memory target);
//   - valid_fiber_table_image(): one contiguous image, root first, two fiber chunks and a fiber in a foreign call
//     with a callback transition chain (the fuzzer's seed and tests/corrupt/fiber_tables/*.bin).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
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

// ---- Records: the defaults both layouts start from. ----

// A root for `worker_count` workers and `fiber_count` live fibers, its chunk lists at the given addresses.
inline fiberscope_debug_root table_root(std::uint64_t worker_chunks, std::uint64_t fiber_chunks, unsigned worker_count,
                                        unsigned fiber_count) {
  fiberscope_debug_root root{};
  root.magic = FIBERSCOPE_DEBUG_MAGIC;
  root.abi_version = FIBERSCOPE_DEBUG_ABI_VERSION;
  root.root_size = sizeof(fiberscope_debug_root);
  root.fiber_record_size = sizeof(fiberscope_fiber);
  root.worker_record_size = sizeof(fiberscope_worker);
  root.transition_record_size = sizeof(fiberscope_transition);
  root.chunk_header_size = sizeof(fiberscope_chunk);
  root.fiber_chunks = fiber_chunks;
  root.worker_chunks = worker_chunks;
  root.fibers_live = fiber_count;
  root.fibers_created = fiber_count;
  root.clock_ns = 5'000'000'000;
  root.processors = worker_count;
  root.running = 1;
  return root;
}

// Worker `index`: idle, tid 1000 + index, a 1 MiB system stack at 0x800000 + index MiB.
inline fiberscope_worker idle_worker(unsigned index) {
  fiberscope_worker worker{};
  worker.tid = static_cast<std::int32_t>(1000 + index);
  worker.state = FIBERSCOPE_WORKER_IDLE;
  worker.sysstack_lo = 0x800000 + index * 0x100000;
  worker.sysstack_hi = worker.sysstack_lo + 0x100000;
  worker.index = index;
  worker.processor = static_cast<std::int32_t>(index);
  return worker;
}

// Fiber `index` (id index + 1, "fiber-<id>"): waiting on a channel, its stack at 0x100000 + index * 0x10000 with a
// 4 KiB guard, saved 0x200 bytes below the top.
inline fiberscope_fiber waiting_fiber(unsigned index) {
  fiberscope_fiber fiber{};
  fiber.id = index + 1;
  fiber.state = FIBERSCOPE_FIBER_WAITING;
  fiber.wait_reason = FIBERSCOPE_WAIT_CHAN_RECV;
  fiber.wait_object = 0xabc0 + index;
  std::snprintf(fiber.name, sizeof fiber.name, "fiber-%u", index + 1);
  fiber.guard_lo = 0x100000 + index * 0x10000;
  fiber.stack_lo = fiber.guard_lo + 0x1000;
  fiber.stack_hi = fiber.guard_lo + 0x10000;
  fiber.context.pc = 0x401000;
  fiber.context.sp = fiber.stack_hi - 0x200;
  fiber.context.rbp = fiber.stack_hi - 0x100;
  fiber.state_since_ns = 4'000'000'000;
  fiber.worker = -1;
  fiber.spawn_pc = 0x402000;
  fiber.start_pc = 0x403000;
  return fiber;
}

// A chunk header for `used` of `capacity` records, `next` the following chunk (0: the last one).
inline fiberscope_chunk chunk_header(std::uint32_t capacity, std::uint32_t used, std::uint64_t next = 0,
                                     std::uint32_t first_index = 0) {
  fiberscope_chunk header{};
  header.next = next;
  header.capacity = capacity;
  header.used = used;
  header.first_index = first_index;
  return header;
}

// Writes a chunk header and its records at `address` of `memory` (anything with put(address, data, size)), with
// room for `capacity` records. Fields left 0 in `header` get consistent values: record_size, capacity (records + 2),
// used (all records).
template <class Memory, class Record>
void install_chunk(Memory& memory, std::uint64_t address, fiberscope_chunk header, const std::vector<Record>& records) {
  if (header.record_size == 0) header.record_size = sizeof(Record);
  if (header.capacity == 0) header.capacity = static_cast<std::uint32_t>(records.size() + 2);
  if (header.used == 0) header.used = static_cast<std::uint32_t>(records.size());
  std::vector<std::byte> bytes(sizeof header + header.capacity * sizeof(Record));
  std::memcpy(bytes.data(), &header, sizeof header);
  if (!records.empty()) std::memcpy(bytes.data() + sizeof header, records.data(), records.size() * sizeof(Record));
  memory.put(address, bytes.data(), bytes.size());
}

// ---- Sparse layout: root, worker chunk and fiber chunk apart, in a FakeMemory. ----

inline constexpr std::uint64_t kRoot = 0x10000;
inline constexpr std::uint64_t kWorkerChunk = 0x20000;
inline constexpr std::uint64_t kFiberChunk = 0x30000;

// A table with `workers` and `fibers` records in one chunk each; tests change any field before install().
struct TableBuilder {
  fiberscope_debug_root root{};
  fiberscope_chunk worker_chunk{};
  fiberscope_chunk fiber_chunk{};
  std::vector<fiberscope_worker> workers;
  std::vector<fiberscope_fiber> fibers;

  TableBuilder(unsigned worker_count, unsigned fiber_count)
      : root(table_root(kWorkerChunk, kFiberChunk, worker_count, fiber_count)) {
    for (unsigned i = 0; i < worker_count; ++i) workers.push_back(idle_worker(i));
    for (unsigned i = 0; i < fiber_count; ++i) fibers.push_back(waiting_fiber(i));
  }

  void install(FakeMemory& memory) {
    memory.put_object(kRoot, root);
    install_chunk(memory, kWorkerChunk, worker_chunk, workers);
    install_chunk(memory, kFiberChunk, fiber_chunk, fibers);
  }

  static std::uint64_t fiber_address(unsigned index) {
    return kFiberChunk + sizeof(fiberscope_chunk) + index * sizeof(fiberscope_fiber);
  }
};

// ---- Contiguous layout: one image mapped at kImageBase, root first. ----

inline constexpr std::uint64_t kImageBase = 0x10000;  // the root's address in the fake target

// Offsets into the image.
inline constexpr std::size_t kWorkerChunkOffset = 0x100;
inline constexpr std::size_t kFiberChunkOffset = 0x400;
inline constexpr std::size_t kSecondFiberChunkOffset = 0xc00;
inline constexpr std::size_t kForeignStackOffset = 0x1000;   // fiber 3's stack [0x1000, 0x2000)
inline constexpr std::size_t kTransitionOffset = 0x1e00;     // two transition records, innermost first
inline constexpr std::size_t kImageBytes = 0x2000;

inline constexpr std::size_t fiber_record_offset(std::size_t slot) {
  return kFiberChunkOffset + sizeof(fiberscope_chunk) + slot * sizeof(fiberscope_fiber);
}

template <class T>
void put_at(std::vector<std::byte>& image, std::size_t offset, const T& value) {
  if (offset > image.size() || sizeof value > image.size() - offset) std::abort();  // a broken fixture, not input
  std::memcpy(image.data() + offset, &value, sizeof value);
}

// The image as a memory that install_chunk can write to by target address.
struct TableImage {
  std::vector<std::byte> bytes = std::vector<std::byte>(kImageBytes);
  void put(std::uint64_t address, const void* data, std::size_t size) {
    const std::uint64_t offset = address - kImageBase;
    if (address < kImageBase || offset > bytes.size() || size > bytes.size() - offset) std::abort();
    std::memcpy(bytes.data() + offset, data, size);
  }
};

// Two workers (worker 0 running fiber 3), a fiber chunk of three records and a second chunk of one; fiber 3 is in a
// foreign call, inside a callback, with two transitions on its own stack (innermost first).
inline std::vector<std::byte> valid_fiber_table_image() {
  static_assert(kWorkerChunkOffset + sizeof(fiberscope_chunk) + 2 * sizeof(fiberscope_worker) <= kFiberChunkOffset);
  static_assert(fiber_record_offset(4) <= kSecondFiberChunkOffset);
  static_assert(kSecondFiberChunkOffset + sizeof(fiberscope_chunk) + 2 * sizeof(fiberscope_fiber) <=
                kForeignStackOffset);
  TableImage image;

  fiberscope_debug_root root = table_root(kImageBase + kWorkerChunkOffset, kImageBase + kFiberChunkOffset, 2, 4);
  root.stack_bytes = 0x1000;
  root.guard_bytes = 0x1000;
  image.put(kImageBase, &root, sizeof root);

  std::vector<fiberscope_worker> workers = {idle_worker(0), idle_worker(1)};
  workers[0].state = FIBERSCOPE_WORKER_SYSCALL;
  workers[0].current_fiber = 3;
  workers[0].current_record = kImageBase + fiber_record_offset(2);
  install_chunk(image, kImageBase + kWorkerChunkOffset, chunk_header(2, 2), workers);

  std::vector<fiberscope_fiber> fibers;
  for (unsigned i = 0; i < 4; ++i) {
    fiberscope_fiber fiber = waiting_fiber(i);
    fiber.parent_id = i == 0 ? 0 : 1;
    if (i == 0) fiber.flags = FIBERSCOPE_FIBER_FLAG_MAIN;
    fibers.push_back(fiber);
  }
  fiberscope_fiber& foreign_fiber = fibers[2];
  foreign_fiber.state = FIBERSCOPE_FIBER_FOREIGN;
  foreign_fiber.wait_reason = FIBERSCOPE_WAIT_NONE;
  foreign_fiber.guard_lo = kImageBase + kForeignStackOffset - 0x1000;
  foreign_fiber.stack_lo = kImageBase + kForeignStackOffset;
  foreign_fiber.stack_hi = kImageBase + kImageBytes;
  foreign_fiber.syscall_pc = 0x401234;
  foreign_fiber.syscall_sp = foreign_fiber.stack_hi - 0x80;
  foreign_fiber.worker = 0;
  foreign_fiber.foreign_depth = 2;
  foreign_fiber.transition_top = kImageBase + kTransitionOffset;
  foreign_fiber.flags = FIBERSCOPE_FIBER_FLAG_LOCKED;
  install_chunk(image, kImageBase + kFiberChunkOffset,
                chunk_header(4, 3, kImageBase + kSecondFiberChunkOffset),
                std::vector(fibers.begin(), fibers.begin() + 3));
  // Records are numbered by position: the first chunk uses 3 of its 4 slots.
  install_chunk(image, kImageBase + kSecondFiberChunkOffset, chunk_header(2, 1, 0, /*first_index=*/3),
                std::vector(fibers.begin() + 3, fibers.end()));

  fiberscope_transition callback{};
  callback.prev = kImageBase + kTransitionOffset + sizeof(fiberscope_transition);
  callback.kind = FIBERSCOPE_TRANSITION_CALLBACK;
  callback.depth = 2;
  callback.from_sp = 0x8ff000;
  callback.from_pc = 0x404000;
  callback.to_sp = kImageBase + kTransitionOffset;
  callback.saved_syscall_pc = 0x401234;
  callback.saved_syscall_sp = kImageBase + kImageBytes - 0x80;
  put_at(image.bytes, kTransitionOffset, callback);
  fiberscope_transition foreign{};
  foreign.kind = FIBERSCOPE_TRANSITION_FOREIGN_CALL;
  foreign.depth = 1;
  foreign.from_sp = kImageBase + kImageBytes - 0x80;
  foreign.from_pc = 0x401240;
  foreign.from_fp = kImageBase + kImageBytes - 0x40;
  foreign.to_sp = 0x8ffff0;
  put_at(image.bytes, kTransitionOffset + sizeof(fiberscope_transition), foreign);
  return image.bytes;
}

}  // namespace fiberscope::fibers::testing
