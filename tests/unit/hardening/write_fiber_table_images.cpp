// Writes the fiber table images of tests/corrupt/fiber_tables/ (and the fiber-table fuzzer's seed): a valid image
// and one image per defect, each made from the valid one by changing exactly one field. Usage:
//   write_fiber_table_images OUTPUT_DIR
#include <cstdio>
#include <string>
#include <vector>

#include "fake_table.h"

namespace {

using namespace fiberscope::fibers::testing;

bool write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  return std::fclose(file) == 0 && ok;
}

template <class T>
std::vector<std::byte> with_field(std::size_t offset, T value) {
  auto image = valid_fiber_table_image();
  put_at(image, offset, value);
  return image;
}

// The first fiber chunk claims 2^20 used records (the capacity cap) that run far past the mapped image: found by
// fuzz_fiber_table, which took seconds per input reading and reporting every one of them.
std::vector<std::byte> huge_chunk_over_unmapped_memory() {
  auto image = valid_fiber_table_image();
  put_at<std::uint32_t>(image, kFiberChunkOffset + offsetof(fiberscope_chunk, capacity), 1u << 20);
  put_at<std::uint32_t>(image, kFiberChunkOffset + offsetof(fiberscope_chunk, used), 1u << 20);
  return image;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const std::size_t fiber_chunk_next = kFiberChunkOffset + offsetof(fiberscope_chunk, next);
  const std::size_t second_chunk_next = kSecondFiberChunkOffset + offsetof(fiberscope_chunk, next);
  const std::vector<std::pair<std::string, std::vector<std::byte>>> images = {
      {"valid.bin", valid_fiber_table_image()},
      {"bad-magic.bin", with_field<std::uint64_t>(offsetof(fiberscope_debug_root, magic), 0x0123456789abcdefull)},
      {"root-fiber-record-size-zero.bin",
       with_field<std::uint32_t>(offsetof(fiberscope_debug_root, fiber_record_size), 0)},
      {"chunk-record-size-zero.bin",
       with_field<std::uint32_t>(kFiberChunkOffset + offsetof(fiberscope_chunk, record_size), 0)},
      {"chunk-next-cycle.bin", with_field<std::uint64_t>(second_chunk_next, kImageBase + kFiberChunkOffset)},
      {"chunk-next-self.bin", with_field<std::uint64_t>(fiber_chunk_next, kImageBase + kFiberChunkOffset)},
      {"used-over-capacity.bin", with_field<std::uint32_t>(kFiberChunkOffset + offsetof(fiberscope_chunk, used), 9)},
      {"capacity-huge.bin",
       with_field<std::uint32_t>(kFiberChunkOffset + offsetof(fiberscope_chunk, capacity), 0xffffffffu)},
      {"used-huge-unmapped.bin", huge_chunk_over_unmapped_memory()},
      {"chunk-next-unmapped.bin", with_field<std::uint64_t>(second_chunk_next, 0xdead0000)},
      {"transition-cycle.bin",
       with_field<std::uint64_t>(kTransitionOffset + sizeof(fiberscope_transition) +
                                     offsetof(fiberscope_transition, prev),
                                 kImageBase + kTransitionOffset)},
      {"stack-inverted.bin", with_field<std::uint64_t>(fiber_record_offset(1) + offsetof(fiberscope_fiber, stack_lo),
                                                       0xffffffff00000000ull)},
  };
  for (const auto& [name, bytes] : images) {
    if (!write_file(dir + "/" + name, bytes)) {
      std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
      return 1;
    }
  }
  return 0;
}
