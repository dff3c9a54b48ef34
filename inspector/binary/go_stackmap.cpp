#include "binary/go_stackmap.h"

#include <string>

#include "base/byte_reader.h"
#include "base/hex.h"

namespace fiberscope::binary {

Result<std::uint64_t> GoStackMap::data_size(std::int32_t count, std::int32_t bits) {
  if (count < 0 || static_cast<std::uint32_t>(count) > kMaxGoStackMapCount)
    return fail("Go stack map: ", std::to_string(count), " bitmaps (at most ", std::to_string(kMaxGoStackMapCount),
                ")");
  if (bits < 0 || static_cast<std::uint32_t>(bits) > kMaxGoStackMapBits)
    return fail("Go stack map: ", std::to_string(bits), " bits per bitmap (at most ",
                std::to_string(kMaxGoStackMapBits), ")");
  // Both capped at 2^20: the product fits in 64 bits.
  return static_cast<std::uint64_t>(count) * ((static_cast<std::uint64_t>(bits) + 7) / 8);
}

Result<GoStackMap> GoStackMap::parse(std::span<const std::byte> bytes) {
  ByteReader header(bytes, "Go stack map header");
  FS_TRY(count, header.fixed<std::int32_t>());
  FS_TRY(bits, header.fixed<std::int32_t>());
  FS_TRY(size, data_size(*count, *bits));
  if (*size > bytes.size() - header.offset())
    return fail("Go stack map: ", std::to_string(*count), " bitmaps of ", std::to_string(*bits), " bits need ",
                std::to_string(*size), " bytes, ", std::to_string(bytes.size() - header.offset()), " remain");
  return GoStackMap(static_cast<std::uint32_t>(*count), static_cast<std::uint32_t>(*bits),
                    bytes.subspan(header.offset(), static_cast<std::size_t>(*size)));
}

Result<GoStackMap> GoStackMap::read(const GoPclntab& table, std::uint64_t address) {
  FS_TRY(header_bytes, table.data_at(address, 8));
  ByteReader header(*header_bytes, "Go stack map header");
  FS_TRY(count, header.fixed<std::int32_t>());
  FS_TRY(bits, header.fixed<std::int32_t>());
  FS_TRY(size, data_size(*count, *bits));
  FS_TRY(all, table.data_at(address, 8 + *size));
  auto parsed = parse(*all);
  if (!parsed) return fail("Go stack map at ", hex(address), ": ", parsed.error().message);
  return parsed;
}

Result<std::vector<bool>> GoStackMap::bitmap(std::int32_t index) const {
  if (index < 0 || static_cast<std::uint32_t>(index) >= count_)
    return fail("Go stack map: bitmap ", std::to_string(index), " of ", std::to_string(count_));
  const std::size_t stride = (bits_ + 7) / 8;
  const std::span<const std::byte> bytes = data_.subspan(static_cast<std::size_t>(index) * stride, stride);
  std::vector<bool> live(bits_);
  for (std::uint32_t bit = 0; bit < bits_; ++bit)
    live[bit] = ((std::to_integer<unsigned>(bytes[bit / 8]) >> (bit % 8)) & 1u) != 0;
  return live;
}

Result<GoLivePointerSlots> go_live_pointer_slots(const GoPclntab& table, const GoFunction& function,
                                                 std::uint64_t lookup_pc) {
  const auto in_function = [&](const Error& error) {
    return fail("stack maps of ", std::string(function.name), " at ", hex(lookup_pc), ": ", error.message);
  };
  auto index = table.pcdata(function, kGoPcdataStackMapIndex, lookup_pc);
  if (!index) return in_function(index.error());
  // runtime.getStackMap: no entry (-1) means the function's first map.
  const std::int32_t map_index = *index == -1 ? 0 : *index;
  GoLivePointerSlots slots;
  for (const std::uint32_t funcdata : {kGoFuncdataArgsPointerMaps, kGoFuncdataLocalsPointerMaps}) {
    auto address = table.funcdata_address(function, funcdata);
    if (!address) return in_function(address.error());
    if (!*address) continue;
    auto map = GoStackMap::read(table, **address);
    if (!map) return in_function(map.error());
    if (map->count() == 0) continue;
    auto bits = map->bitmap(map_index);
    if (!bits) return in_function(bits.error());
    (funcdata == kGoFuncdataArgsPointerMaps ? slots.args : slots.locals) = std::move(*bits);
  }
  return slots;
}

}  // namespace fiberscope::binary
