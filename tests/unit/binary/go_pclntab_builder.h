// A tiny, valid Go 1.18-1.19 pclntab built byte by byte, for the parser's corrupt-input tests: each test breaks
// one field of it. Two functions at text 0x401000:
//   main.outer [0x401000, 0x401040): frame 0 then 0x18 bytes from +4; lines a.go:10, then 12 from +0x20;
//              main.inner inlined at [+0x10, +0x20) (b.go:10 there), its call site at +0x08 (a.go:10)
//   main.inner [0x401040, 0x401060): frame 8, b.go:20
// The inline tree (one 20-byte inlinedCall) lives in `data` at kGofunc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace go_pclntab_builder {

inline constexpr std::uint64_t kText = 0x401000;
inline constexpr std::uint64_t kTableAddress = 0x500000;
inline constexpr std::uint64_t kGofunc = 0x600000;

struct Table {
  std::vector<std::byte> bytes;
  std::vector<std::byte> data;  // at kGofunc
  // Offsets of fields the tests corrupt.
  std::size_t funcname_offset_field = 0x20;  // header word holding funcnametab's offset
  std::size_t function_count_field = 0x08;
  std::size_t functab = 0;           // offset of the function table
  std::size_t outer_record = 0;      // offset of main.outer's _func
  std::size_t inner_pcln_table = 0;  // offset of main.inner's pcln table, the last bytes of pctab
  std::size_t inline_parent_pc = 16; // offset of parentPc in `data`

  template <class T>
  void put(std::size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
  }
};

namespace detail {
template <class T>
void append(std::vector<std::byte>& out, T value) {
  const auto* raw = reinterpret_cast<const std::byte*>(&value);
  out.insert(out.end(), raw, raw + sizeof(T));
}
inline void append_bytes(std::vector<std::byte>& out, std::initializer_list<unsigned> values) {
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
}
inline void append_text(std::vector<std::byte>& out, const std::string& text) {
  for (char c : text) out.push_back(static_cast<std::byte>(c));
  out.push_back(std::byte{0});
}
}  // namespace detail

inline Table build() {
  using detail::append;
  using detail::append_bytes;
  using detail::append_text;
  Table table;
  std::vector<std::byte> funcnames, cutab, filetab, pctab, functab;
  append_text(funcnames, "main.outer");  // name offset 0
  append_text(funcnames, "main.inner");  // name offset 11
  append<std::uint32_t>(cutab, 0);       // file 0: a.go
  append<std::uint32_t>(cutab, 5);       // file 1: b.go
  append_text(filetab, "a.go");
  append_text(filetab, "b.go");
  // pc-value tables: pairs (zig-zag value delta, pc delta), the value starting at -1; a 0 ends each table. Offset 0
  // of pctab means "no table", so the first table starts at 1.
  pctab.push_back(std::byte{0});
  const std::uint32_t outer_pcsp = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {2, 4, 0x30, 0x3c, 0});              // 0 for 4 bytes, 0x18 for 0x3c
  const std::uint32_t outer_pcfile = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {2, 0x10, 2, 0x10, 1, 0x20, 0});     // file 0, 1 (the inlined call), 0
  const std::uint32_t outer_pcln = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {22, 0x20, 4, 0x20, 0});             // line 10, then 12
  const std::uint32_t outer_inline = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {0, 0x10, 2, 0x10, 1, 0x20, 0});     // index -1, 0, -1
  const std::uint32_t inner_pcsp = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {18, 0x20, 0});                      // 8
  const std::uint32_t inner_pcfile = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {4, 0x20, 0});                       // file 1
  const std::uint32_t inner_pcln = static_cast<std::uint32_t>(pctab.size());
  append_bytes(pctab, {42, 0x20, 0});                      // line 20

  // The function table, then the _func records (4-byte aligned) it points at, offsets from its own start.
  const std::size_t records_start = 3 * 8;
  std::vector<std::byte> records;
  const auto add_record = [&](std::uint32_t entry, std::int32_t name, std::uint32_t pcsp, std::uint32_t pcfile,
                              std::uint32_t pcln, std::vector<std::uint32_t> pcdata,
                              std::vector<std::uint32_t> funcdata) {
    const std::size_t at = records_start + records.size();
    append<std::uint32_t>(records, entry);
    append<std::int32_t>(records, name);
    append<std::int32_t>(records, 0);   // args
    append<std::uint32_t>(records, 0);  // deferreturn
    append<std::uint32_t>(records, pcsp);
    append<std::uint32_t>(records, pcfile);
    append<std::uint32_t>(records, pcln);
    append<std::uint32_t>(records, static_cast<std::uint32_t>(pcdata.size()));
    append<std::uint32_t>(records, 0);  // cuOffset
    append_bytes(records, {0, 0, 0, static_cast<unsigned>(funcdata.size())});  // funcID, flag, pad, nfuncdata
    for (auto v : pcdata) append<std::uint32_t>(records, v);
    for (auto v : funcdata) append<std::uint32_t>(records, v);
    return at;
  };
  const std::size_t outer = add_record(0, 0, outer_pcsp, outer_pcfile, outer_pcln, {0, 0, outer_inline},
                                       {0xffffffff, 0xffffffff, 0xffffffff, 0});
  const std::size_t inner = add_record(0x40, 11, inner_pcsp, inner_pcfile, inner_pcln, {}, {});
  append<std::uint32_t>(functab, 0);
  append<std::uint32_t>(functab, static_cast<std::uint32_t>(outer));
  append<std::uint32_t>(functab, 0x40);
  append<std::uint32_t>(functab, static_cast<std::uint32_t>(inner));
  append<std::uint32_t>(functab, 0x60);  // the end of the text
  append<std::uint32_t>(functab, 0);
  functab.insert(functab.end(), records.begin(), records.end());

  const std::uint64_t header_size = 8 + 8 * 8;
  const std::uint64_t funcname_offset = header_size;
  const std::uint64_t cu_offset = funcname_offset + funcnames.size();
  const std::uint64_t filetab_offset = cu_offset + cutab.size();
  const std::uint64_t pctab_offset = filetab_offset + filetab.size();
  const std::uint64_t pcln_offset = pctab_offset + pctab.size();
  append_bytes(table.bytes, {0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8});
  for (std::uint64_t word : {std::uint64_t{2}, std::uint64_t{2}, kText, funcname_offset, cu_offset, filetab_offset,
                             pctab_offset, pcln_offset})
    append<std::uint64_t>(table.bytes, word);
  for (const auto* part : {&funcnames, &cutab, &filetab, &pctab, &functab})
    table.bytes.insert(table.bytes.end(), part->begin(), part->end());
  table.functab = pcln_offset;
  table.outer_record = pcln_offset + outer;
  table.inner_pcln_table = pctab_offset + inner_pcln;

  // inlinedCall: parent, funcID, pad, file, line, func_ (name offset), parentPc.
  append<std::int16_t>(table.data, -1);
  append_bytes(table.data, {0, 0});
  append<std::int32_t>(table.data, 1);
  append<std::int32_t>(table.data, 10);
  append<std::int32_t>(table.data, 11);
  append<std::int32_t>(table.data, 0x08);
  return table;
}

}  // namespace go_pclntab_builder
