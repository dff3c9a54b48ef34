// libFuzzer target: open_core on arbitrary bytes, then reads through the snapshot's memory at every mapping and
// thread stack it reports. A sysroot that does not exist keeps the reader from opening any file the core names.
// Seeds (corpus/core_file/): a tiny core written by the suite's core writer, and the hand-made corrupt cores.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "target/core_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fiberscope;
  fuzz::MemoryFile file(data, size);
  auto snapshot = target::open_core(file.path(), {.exe_path = "", .sysroot = "/nonexistent-fiberscope-fuzz-root"});
  if (!snapshot) return 0;
  std::vector<std::byte> buffer(64);
  for (const auto& mapping : snapshot->mappings) {
    (void)snapshot->memory->read(mapping.range.start, buffer);
    (void)snapshot->memory->read(mapping.range.end - buffer.size(), buffer);
  }
  for (const auto& thread : snapshot->threads) {
    if (thread.registers) (void)snapshot->memory->read(target::RemoteAddress(thread.registers->sp()), buffer);
  }
  return 0;
}
