// libFuzzer target: read_fiber_table over a RegionMemory whose bytes are the input, mapped at kImageBase with the
// debug root at its start. Both reader modes run (stopped target, and --no-stop with seqlock retries).
// Seeds (corpus/fiber_table/): the valid table image of tests/unit/fibers/fake_table.h, as write_fiber_table_images
// writes it.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fake_table.h"
#include "fibers/fiber_table.h"
#include "target/memory.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fiberscope;
  if (size == 0) return 0;
  target::RegionMemory memory;
  const auto* first = reinterpret_cast<const std::byte*>(data);
  if (!memory.add(target::RemoteAddress(fibers::testing::kImageBase), std::vector<std::byte>(first, first + size)))
    return 0;
  for (bool stopped : {true, false}) {
    auto table = fibers::read_fiber_table(memory, target::RemoteAddress(fibers::testing::kImageBase),
                                          {.target_stopped = stopped});
    if (!table) continue;
    std::uint64_t sink = 0;
    for (const auto& fiber : table->fibers) {
      sink += fiber.name.size() + fiber.transitions.size();
      if (const auto* worker = table->worker_of(fiber)) sink += static_cast<std::uint64_t>(worker->tid);
    }
    if (!stopped) fibers::mark_records_changed_during_capture(*table, memory);
    (void)sink;
  }
  return 0;
}
