// GoStackMap: a Go function's pointer maps, the data Go's garbage collector and stack copier use to decide which
// words of a suspended frame hold live pointers (runtime/symtab.go `stackmap`: n int32, nbit int32, then n bitmaps
// of nbit bits, each rounded up to whole bytes). FUNCDATA_ArgsPointerMaps covers the argument area above the
// return address, FUNCDATA_LocalsPointerMaps the locals below the saved frame pointer; PCDATA_StackMapIndex picks
// the bitmap in force at a pc.
//
//   auto live = go_live_pointer_slots(table, function, return_address - 1);  // as runtime.getStackMap looks up
//   for (std::size_t i = 0; i < live->args.size(); ++i) if (live->args[i]) ...  // word i at argp + 8 * i
//
// The bytes are hostile: counts are capped and checked against the binary, errors say which map and where.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "binary/go_pclntab.h"

namespace fiberscope::binary {

// Caps on hostile maps: far above what Go emits (a frame of 2^20 words is 8 MiB; Go's maximum frame is 1 GiB but
// its stack maps stay small) while bounding what a corrupt header can make us walk.
inline constexpr std::uint32_t kMaxGoStackMapBits = 1u << 20;
inline constexpr std::uint32_t kMaxGoStackMapCount = 1u << 20;

class GoStackMap {
 public:
  // Parses a stackmap whose first byte is bytes[0]; `bytes` may extend past its end.
  static Result<GoStackMap> parse(std::span<const std::byte> bytes);
  // Reads the stackmap at file address `address` of the binary `table` came from.
  static Result<GoStackMap> read(const GoPclntab& table, std::uint64_t address);

  std::uint32_t count() const { return count_; }
  std::uint32_t bits_per_map() const { return bits_; }
  // Bitmap `index` (one bool per pointer-sized word); an index outside [0, count) is an error, as Go throws.
  Result<std::vector<bool>> bitmap(std::int32_t index) const;

 private:
  GoStackMap(std::uint32_t count, std::uint32_t bits, std::span<const std::byte> data)
      : count_(count), bits_(bits), data_(data) {}
  static Result<std::uint64_t> data_size(std::int32_t count, std::int32_t bits);
  std::uint32_t count_ = 0, bits_ = 0;
  std::span<const std::byte> data_;
};

// The words of a frame holding live pointers at a pc: args[i] is the word at argp + 8 * i (argp = the CFA on
// amd64), locals[i] the word at varp - 8 * locals.size() + 8 * i (varp = the CFA minus the return address and the
// saved frame pointer).
struct GoLivePointerSlots {
  std::vector<bool> args;
  std::vector<bool> locals;
};

// The live pointer slots of `function` at `lookup_pc` (a return address minus one for a suspended frame), as
// runtime.getStackMap finds them. A function without maps (assembly) has none.
Result<GoLivePointerSlots> go_live_pointer_slots(const GoPclntab& table, const GoFunction& function,
                                                 std::uint64_t lookup_pc);

}  // namespace fiberscope::binary
