// The published table: the exported root, and chunks of fiber and worker records that never move or get freed,
// so an outside reader can walk them while the process runs.
#include <sys/mman.h>

#include <mutex>
#include <vector>

#include "runtime_internal.h"

extern "C" {
// Exported in .dynsym (see the --export-dynamic-symbol link option in CMakeLists.txt) so it survives strip.
__attribute__((visibility("default"), used)) struct fiberscope_debug_root fiberscope_debug_root = {
    FIBERSCOPE_DEBUG_MAGIC,
    FIBERSCOPE_DEBUG_ABI_VERSION,
    static_cast<std::uint32_t>(sizeof(struct fiberscope_debug_root)),
    static_cast<std::uint32_t>(sizeof(struct fiberscope_fiber)),
    static_cast<std::uint32_t>(sizeof(struct fiberscope_worker)),
    static_cast<std::uint32_t>(sizeof(struct fiberscope_transition)),
    static_cast<std::uint32_t>(sizeof(struct fiberscope_chunk)),
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}};
}

namespace fiber::detail {
namespace {

constexpr std::uint32_t kFibersPerChunk = 128;
constexpr std::uint32_t kWorkersPerChunk = 32;

struct ChunkList {
  std::mutex lock;
  std::uint64_t* head_slot;  // root field that points at the first chunk
  fiberscope_chunk* tail = nullptr;
  std::uint32_t capacity;
  std::uint32_t record_size;
  std::uint32_t total = 0;
  std::uint32_t page_offset = 0;  // where in its first page a chunk starts
};

ChunkList fiber_chunks{{}, &fiberscope_debug_root.fiber_chunks, nullptr, kFibersPerChunk,
                       sizeof(fiberscope_fiber), 0};
// Worker chunks start 64 bytes into their page. A load is held up by an older store to an address with the same
// low 12 bits (4K aliasing) until the two addresses are told apart, and a syscall or foreign call loads its
// worker record's seq right after storing its fiber record: with both chunks page-aligned, worker record 2j
// sat at the page offset of fiber record j + 16i (its seq on the fiber's seq) and worker 2j+1 on the fiber's
// saved registers (perf put a fifth of foreign_call's samples on that load). Shifted, the worker's seq meets a
// fiber's stack bounds or spawn data, which those paths only read.
ChunkList worker_chunks{{}, &fiberscope_debug_root.worker_chunks, nullptr, kWorkersPerChunk,
                        sizeof(fiberscope_worker), 0, 64};

// Worker records are reused run after run: slot i is always the i-th worker started by a run.
std::mutex worker_slots_lock;
std::vector<fiberscope_worker*> worker_slots;
std::uint32_t worker_slots_used = 0;

// Returns a zeroed (state FREE / UNUSED) record, after `init` (if any) gave it the fields a reader may rely on
// for every record below `used`; the caller publishes the rest under the record's seqlock.
void* allocate_record(ChunkList& list, void (*init)(void* record, std::uint32_t position) = nullptr) {
  std::lock_guard<std::mutex> guard(list.lock);
  if (!list.tail || list.tail->used == list.tail->capacity) {
    std::size_t bytes = list.page_offset + sizeof(fiberscope_chunk) + std::size_t{list.capacity} * list.record_size;
    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) fatal("cannot allocate a debug table chunk (mmap failed)");
    auto* chunk = reinterpret_cast<fiberscope_chunk*>(static_cast<char*>(memory) + list.page_offset);
    chunk->capacity = list.capacity;
    chunk->record_size = list.record_size;
    chunk->first_index = list.total;
    // Release: a reader that finds the chunk sees its header complete.
    if (list.tail) {
      __atomic_store_n(&list.tail->next, reinterpret_cast<std::uint64_t>(chunk), __ATOMIC_RELEASE);
    } else {
      __atomic_store_n(list.head_slot, reinterpret_cast<std::uint64_t>(chunk), __ATOMIC_RELEASE);
    }
    list.tail = chunk;
  }
  fiberscope_chunk* chunk = list.tail;
  std::uint32_t used = chunk->used;
  auto* record = reinterpret_cast<char*>(chunk + 1) + std::size_t{used} * list.record_size;
  if (init) init(record, list.total);
  __atomic_store_n(&chunk->used, used + 1, __ATOMIC_RELEASE);
  ++list.total;
  return record;
}

}  // namespace

fiberscope_fiber* allocate_fiber_record() { return static_cast<fiberscope_fiber*>(allocate_record(fiber_chunks)); }

fiberscope_worker* allocate_worker_record(std::uint32_t* index) {
  std::lock_guard<std::mutex> guard(worker_slots_lock);
  if (worker_slots_used == worker_slots.size()) {
    worker_slots.push_back(static_cast<fiberscope_worker*>(
        allocate_record(worker_chunks, [](void* record, std::uint32_t position) {
          auto* worker = static_cast<fiberscope_worker*>(record);
          put(worker->index, position);
          put(worker->processor, -1);
        })));
  }
  *index = worker_slots_used;
  return worker_slots[worker_slots_used++];
}

void reset_worker_records() {
  std::lock_guard<std::mutex> guard(worker_slots_lock);
  worker_slots_used = 0;
}

void init_debug_root(std::uint64_t stack_bytes, std::uint64_t guard_bytes, std::uint32_t processors,
                     std::uint32_t faults) {
  put(fiberscope_debug_root.stack_bytes, stack_bytes);
  put(fiberscope_debug_root.guard_bytes, guard_bytes);
  put(fiberscope_debug_root.processors, processors);
  put(fiberscope_debug_root.faults, faults);
}

}  // namespace fiber::detail
