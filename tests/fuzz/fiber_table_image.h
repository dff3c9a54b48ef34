// A valid debug-ABI fiber table laid out as one contiguous memory image (root first), for the fiber-table fuzzer's
// seed and the corrupt-table tests: each test copies the image and breaks exactly one field through the offsets
// below. Two workers, a fiber chunk of three records (one in a foreign call with a callback transition chain on its
// stack) and a second fiber chunk of one record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fiberscope/debug_abi.h"

namespace fiberscope::fuzz {

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
  std::memcpy(image.data() + offset, &value, sizeof value);
}

inline std::vector<std::byte> valid_fiber_table_image() {
  static_assert(kWorkerChunkOffset + sizeof(fiberscope_chunk) + 2 * sizeof(fiberscope_worker) <= kFiberChunkOffset);
  static_assert(fiber_record_offset(4) <= kSecondFiberChunkOffset);
  static_assert(kSecondFiberChunkOffset + sizeof(fiberscope_chunk) + 2 * sizeof(fiberscope_fiber) <= kForeignStackOffset);
  std::vector<std::byte> image(kImageBytes);

  fiberscope_debug_root root{};
  root.magic = FIBERSCOPE_DEBUG_MAGIC;
  root.abi_version = FIBERSCOPE_DEBUG_ABI_VERSION;
  root.root_size = sizeof(fiberscope_debug_root);
  root.fiber_record_size = sizeof(fiberscope_fiber);
  root.worker_record_size = sizeof(fiberscope_worker);
  root.transition_record_size = sizeof(fiberscope_transition);
  root.chunk_header_size = sizeof(fiberscope_chunk);
  root.fiber_chunks = kImageBase + kFiberChunkOffset;
  root.worker_chunks = kImageBase + kWorkerChunkOffset;
  root.fibers_live = 4;
  root.fibers_created = 4;
  root.clock_ns = 5'000'000'000;
  root.stack_bytes = 0x1000;
  root.guard_bytes = 0x1000;
  root.processors = 2;
  root.running = 1;
  put_at(image, 0, root);

  fiberscope_chunk workers{};
  workers.capacity = 2;
  workers.record_size = sizeof(fiberscope_worker);
  workers.used = 2;
  put_at(image, kWorkerChunkOffset, workers);
  for (std::uint32_t i = 0; i < 2; ++i) {
    fiberscope_worker worker{};
    worker.tid = static_cast<std::int32_t>(1000 + i);
    worker.state = i == 0 ? FIBERSCOPE_WORKER_SYSCALL : FIBERSCOPE_WORKER_IDLE;
    worker.current_fiber = i == 0 ? 3 : 0;
    worker.current_record = i == 0 ? kImageBase + fiber_record_offset(2) : 0;
    worker.sysstack_lo = 0x800000 + i * 0x100000;
    worker.sysstack_hi = worker.sysstack_lo + 0x100000;
    worker.index = i;
    worker.processor = static_cast<std::int32_t>(i);
    put_at(image, kWorkerChunkOffset + sizeof(fiberscope_chunk) + i * sizeof(fiberscope_worker), worker);
  }

  fiberscope_chunk fiber_chunk{};
  fiber_chunk.next = kImageBase + kSecondFiberChunkOffset;
  fiber_chunk.capacity = 4;
  fiber_chunk.record_size = sizeof(fiberscope_fiber);
  fiber_chunk.used = 3;
  put_at(image, kFiberChunkOffset, fiber_chunk);
  fiberscope_chunk second_chunk = fiber_chunk;
  second_chunk.next = 0;
  second_chunk.capacity = 2;
  second_chunk.used = 1;
  second_chunk.first_index = 3;  // records are numbered by position: the first chunk uses 3 of its 4 slots
  put_at(image, kSecondFiberChunkOffset, second_chunk);

  for (std::uint32_t i = 0; i < 4; ++i) {
    fiberscope_fiber fiber{};
    fiber.id = i + 1;
    fiber.state = FIBERSCOPE_FIBER_WAITING;
    fiber.wait_reason = FIBERSCOPE_WAIT_CHAN_RECV;
    fiber.wait_object = 0xabc0 + i;
    std::snprintf(fiber.name, sizeof fiber.name, "fiber-%u", static_cast<unsigned>(i + 1));
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
    fiber.parent_id = i == 0 ? 0 : 1;
    if (i == 0) fiber.flags = FIBERSCOPE_FIBER_FLAG_MAIN;
    if (i == 2) {
      // In a foreign call, inside a callback: two transitions on its own stack, innermost first.
      fiber.state = FIBERSCOPE_FIBER_FOREIGN;
      fiber.wait_reason = FIBERSCOPE_WAIT_NONE;
      fiber.guard_lo = kImageBase + kForeignStackOffset - 0x1000;
      fiber.stack_lo = kImageBase + kForeignStackOffset;
      fiber.stack_hi = kImageBase + kImageBytes;
      fiber.syscall_pc = 0x401234;
      fiber.syscall_sp = fiber.stack_hi - 0x80;
      fiber.worker = 0;
      fiber.foreign_depth = 2;
      fiber.transition_top = kImageBase + kTransitionOffset;
      fiber.flags = FIBERSCOPE_FIBER_FLAG_LOCKED;
    }
    const std::size_t offset = i < 3 ? fiber_record_offset(i) : kSecondFiberChunkOffset + sizeof(fiberscope_chunk);
    put_at(image, offset, fiber);
  }

  fiberscope_transition callback{};
  callback.prev = kImageBase + kTransitionOffset + sizeof(fiberscope_transition);
  callback.kind = FIBERSCOPE_TRANSITION_CALLBACK;
  callback.depth = 2;
  callback.from_sp = 0x8ff000;
  callback.from_pc = 0x404000;
  callback.to_sp = kImageBase + kTransitionOffset;
  callback.saved_syscall_pc = 0x401234;
  callback.saved_syscall_sp = kImageBase + kImageBytes - 0x80;
  put_at(image, kTransitionOffset, callback);
  fiberscope_transition foreign{};
  foreign.kind = FIBERSCOPE_TRANSITION_FOREIGN_CALL;
  foreign.depth = 1;
  foreign.from_sp = kImageBase + kImageBytes - 0x80;
  foreign.from_pc = 0x401240;
  foreign.from_fp = kImageBase + kImageBytes - 0x40;
  foreign.to_sp = 0x8ffff0;
  put_at(image, kTransitionOffset + sizeof(fiberscope_transition), foreign);
  return image;
}

}  // namespace fiberscope::fuzz
