#include "binary/go_pclntab.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/byte_reader.h"
#include "base/hex.h"

namespace fiberscope::binary {
namespace {

constexpr std::uint32_t kMagicGo116 = 0xfffffffa;
constexpr std::uint32_t kMagicGo118 = 0xfffffff0;
constexpr std::uint32_t kMagicGo120 = 0xfffffff1;
constexpr std::uint32_t kMagicGo12 = 0xfffffffb;

// A chain of inlined calls deeper than this is a corrupt tree (the compiler's inlining budget keeps real ones short).
constexpr int kMaxInlineDepth = 256;
constexpr std::size_t kFuncRecordSize118 = 40;  // entryoff .. nfuncdata
constexpr std::size_t kFuncRecordSize120 = 44;  // + startLine
constexpr std::size_t kFuncRecordSize116 = 44;  // entry is a pointer
// moduledata.gofunc's offset (1.18-1.19; 1.20 added covctrs/ecovctrs before `end`): see runtime/symtab.go.
constexpr std::size_t kModuledataGofuncOffset118 = 304;
constexpr std::size_t kModuledataGofuncOffset120 = 320;
// moduledata's first fields: pcHeader, then the funcnametab slice (ptr, len, cap).
constexpr std::size_t kModuledataFuncnametabOffset = 8;

std::size_t func_record_size(GoPclntabVersion version) {
  switch (version) {
    case GoPclntabVersion::go1_16: return kFuncRecordSize116;
    case GoPclntabVersion::go1_18: return kFuncRecordSize118;
    case GoPclntabVersion::go1_20: return kFuncRecordSize120;
  }
  return kFuncRecordSize118;
}

std::span<const std::byte> table_span(std::span<const std::byte> bytes, std::uint64_t start, std::uint64_t end) {
  return bytes.subspan(static_cast<std::size_t>(start), static_cast<std::size_t>(end - start));
}

}  // namespace

const char* go_pclntab_version_name(GoPclntabVersion version) {
  switch (version) {
    case GoPclntabVersion::go1_16: return "Go 1.16-1.17";
    case GoPclntabVersion::go1_18: return "Go 1.18-1.19";
    case GoPclntabVersion::go1_20: return "Go 1.20+";
  }
  return "Go ?";
}

Result<GoPclntab> GoPclntab::parse(std::span<const std::byte> bytes, std::uint64_t address,
                                   std::uint64_t text_address, std::uint64_t gofunc_address,
                                   std::vector<GoAddressedBytes> data) {
  GoPclntab table;
  table.bytes_ = bytes;
  table.address_ = address;
  table.gofunc_address_ = gofunc_address;
  table.data_ = std::move(data);
  // The pcHeader (runtime/symtab.go): magic, two pad bytes, minLC, ptrSize, then pointer-sized words.
  ByteReader reader(bytes, ".gopclntab header");
  FS_TRY(magic, reader.fixed<std::uint32_t>());
  switch (*magic) {
    case kMagicGo116: table.version_ = GoPclntabVersion::go1_16; break;
    case kMagicGo118: table.version_ = GoPclntabVersion::go1_18; break;
    case kMagicGo120: table.version_ = GoPclntabVersion::go1_20; break;
    case kMagicGo12: return fail(".gopclntab: magic ", hex(*magic), " is Go 1.2-1.15's table, not read");
    default: return fail(".gopclntab: unknown magic ", hex(*magic), " at offset 0x0");
  }
  FS_TRY(pads, reader.fixed<std::uint16_t>());
  FS_TRY(min_lc, reader.fixed<std::uint8_t>());
  FS_TRY(pointer_size, reader.fixed<std::uint8_t>());
  if (*pads != 0) return fail(".gopclntab header: nonzero padding at offset 0x4");
  if (*min_lc != 1) return fail(".gopclntab header: instruction quantum ", std::to_string(*min_lc),
                                " at offset 0x6 (x86-64 has 1)");
  if (*pointer_size != 8) return fail(".gopclntab header: pointer size ", std::to_string(*pointer_size),
                                      " at offset 0x7 (x86-64 has 8)");
  table.pc_quantum_ = *min_lc;
  table.pointer_size_ = *pointer_size;

  const bool has_text_start = table.version_ != GoPclntabVersion::go1_16;
  std::array<std::uint64_t, 8> words{};
  const std::size_t word_count = has_text_start ? 8 : 7;
  for (std::size_t i = 0; i < word_count; ++i) {
    FS_TRY(word, reader.fixed<std::uint64_t>());
    words[i] = *word;
  }
  std::size_t next = 0;
  const std::uint64_t function_count = words[next++];
  const std::uint64_t file_count = words[next++];
  const std::uint64_t text_start = has_text_start ? words[next++] : 0;
  table.funcname_offset_ = words[next++];
  table.cu_offset_ = words[next++];
  table.filetab_offset_ = words[next++];
  table.pctab_offset_ = words[next++];
  table.pcln_offset_ = words[next++];
  // The linker writes the sub-tables in this order (cmd/link/internal/ld/pcln.go); each ends where the next starts.
  const std::array<std::pair<const char*, std::uint64_t>, 5> order = {{{"funcnametab", table.funcname_offset_},
                                                                       {"cutab", table.cu_offset_},
                                                                       {"filetab", table.filetab_offset_},
                                                                       {"pctab", table.pctab_offset_},
                                                                       {"functab", table.pcln_offset_}}};
  std::uint64_t previous = reader.offset();
  for (const auto& [name, offset] : order) {
    if (offset < previous || offset > bytes.size()) {
      return fail(".gopclntab header: ", name, " offset ", hex(offset), " out of order or past the end (size ",
                  hex(bytes.size()), ")");
    }
    previous = offset;
  }
  const std::uint64_t functab_entry_size = has_text_start ? 8 : 16;
  const std::uint64_t functab_room = (bytes.size() - table.pcln_offset_) / functab_entry_size;
  if (function_count == 0 || function_count >= functab_room) {
    return fail(".gopclntab header: ", std::to_string(function_count), " functions do not fit the function table at ",
                hex(table.pcln_offset_));
  }
  table.function_count_ = static_cast<std::size_t>(function_count);
  table.file_count_ = static_cast<std::size_t>(file_count);
  table.text_address_ = text_start != 0 ? text_start : text_address;
  if (has_text_start && table.text_address_ == 0) return fail(".gopclntab: the text address is unknown");

  FS_TRY(first, table.entry_of(0));
  FS_TRY(last, table.entry_of(table.function_count_));
  if (*last < *first) return fail(".gopclntab function table: the text ends at ", hex(*last), " before it starts");
  table.min_pc_ = *first;
  table.max_pc_ = *last;
  return table;
}

Result<std::uint64_t> GoPclntab::entry_of(std::size_t index) const {
  ByteReader reader(table_span(bytes_, pcln_offset_, bytes_.size()), ".gopclntab function table");
  if (version_ == GoPclntabVersion::go1_16) {
    FS_TRY_DISCARD(reader.seek(index * 16));
    return reader.fixed<std::uint64_t>();
  }
  FS_TRY_DISCARD(reader.seek(index * 8));
  FS_TRY(entry_offset, reader.fixed<std::uint32_t>());
  return text_address_ + *entry_offset;
}

Result<std::string_view> GoPclntab::name_at(std::int64_t name_offset) const {
  ByteReader reader(table_span(bytes_, funcname_offset_, cu_offset_), ".gopclntab funcnametab");
  if (name_offset < 0) return fail(".gopclntab funcnametab: negative name offset ", std::to_string(name_offset));
  FS_TRY_DISCARD(reader.seek(static_cast<std::uint64_t>(name_offset)));
  return reader.c_string();
}

Result<GoFunction> GoPclntab::function(std::size_t index) const {
  if (index >= function_count_) {
    return fail(".gopclntab: function ", std::to_string(index), " past the ", std::to_string(function_count_),
                " functions");
  }
  const auto context = [&] { return ".gopclntab function " + std::to_string(index); };
  const auto pclntable = table_span(bytes_, pcln_offset_, bytes_.size());
  ByteReader functab(pclntable, ".gopclntab function table");
  std::uint64_t record_offset = 0;
  GoFunction function;
  function.index = index;
  if (version_ == GoPclntabVersion::go1_16) {
    FS_TRY_DISCARD(functab.seek(index * 16 + 8));
    FS_TRY(offset, functab.fixed<std::uint64_t>());
    record_offset = *offset;
  } else {
    FS_TRY_DISCARD(functab.seek(index * 8 + 4));
    FS_TRY(offset, functab.fixed<std::uint32_t>());
    record_offset = *offset;
  }
  FS_TRY(entry, entry_of(index));
  FS_TRY(end, entry_of(index + 1));
  if (*end < *entry) return fail(context(), ": entries out of order (", hex(*entry), " then ", hex(*end), ")");
  function.entry = *entry;
  function.end = *end;
  function.record_offset = record_offset;

  ByteReader record(pclntable, ".gopclntab _func");
  if (record_offset >= pclntable.size()) {
    return fail(context(), ": _func offset ", hex(record_offset), " past the end of the function table (size ",
                hex(pclntable.size()), ")");
  }
  FS_TRY_DISCARD(record.seek(record_offset));
  auto read_record = [&]() -> Result<void> {
    std::uint64_t record_entry = 0;
    if (version_ == GoPclntabVersion::go1_16) {
      FS_TRY(value, record.fixed<std::uint64_t>());
      record_entry = *value;
    } else {
      FS_TRY(value, record.fixed<std::uint32_t>());
      record_entry = text_address_ + *value;
    }
    if (record_entry != function.entry) {
      return fail("entry ", hex(record_entry), " disagrees with the function table's ", hex(function.entry));
    }
    FS_TRY(name_offset, record.fixed<std::int32_t>());
    FS_TRY(args, record.fixed<std::int32_t>());
    FS_TRY_DISCARD(record.fixed<std::uint32_t>());  // deferreturn
    FS_TRY(pcsp, record.fixed<std::uint32_t>());
    FS_TRY(pcfile, record.fixed<std::uint32_t>());
    FS_TRY(pcln, record.fixed<std::uint32_t>());
    FS_TRY(pcdata_count, record.fixed<std::uint32_t>());
    FS_TRY(cu_offset, record.fixed<std::uint32_t>());
    if (version_ == GoPclntabVersion::go1_20) FS_TRY_DISCARD(record.fixed<std::int32_t>());  // startLine
    FS_TRY(func_id, record.fixed<std::uint8_t>());
    FS_TRY(flag, record.fixed<std::uint8_t>());
    FS_TRY_DISCARD(record.fixed<std::uint8_t>());
    FS_TRY(funcdata_count, record.fixed<std::uint8_t>());
    // The pcdata and funcdata offsets follow the record: they must be in the table too.
    const std::uint64_t funcdata_size = version_ == GoPclntabVersion::go1_16 ? 8 * std::uint64_t{*funcdata_count} + 4
                                                                             : 4 * std::uint64_t{*funcdata_count};
    const std::uint64_t trailer = std::uint64_t{*pcdata_count} * 4 + (*funcdata_count ? funcdata_size : 0);
    if (trailer > record.remaining()) {
      return fail(std::to_string(*pcdata_count), " pcdata and ", std::to_string(*funcdata_count),
                  " funcdata entries run past the end at offset ", hex(record.offset()));
    }
    FS_TRY(name, name_at(*name_offset));
    function.name = *name;
    function.args_size_bytes = *args;
    function.pcsp = *pcsp;
    function.pcfile = *pcfile;
    function.pcln = *pcln;
    function.pcdata_count = *pcdata_count;
    function.cu_offset = *cu_offset;
    function.func_id = *func_id;
    function.flag = *flag;
    function.funcdata_count = *funcdata_count;
    return {};
  };
  if (auto ok = read_record(); !ok) {
    return fail(context(), ": _func at offset ", hex(pcln_offset_ + record_offset), ": ", ok.error().message);
  }
  return function;
}

Result<std::optional<GoFunction>> GoPclntab::function_at(std::uint64_t pc) const {
  if (pc < min_pc_ || pc >= max_pc_) return std::optional<GoFunction>();
  // The largest index whose entry is <= pc; entries are sorted (function() checks each pair it reads).
  std::size_t low = 0, high = function_count_;
  while (high - low > 1) {
    const std::size_t middle = low + (high - low) / 2;
    FS_TRY(entry, entry_of(middle));
    if (*entry <= pc) low = middle; else high = middle;
  }
  FS_TRY(function, this->function(low));
  if (pc < function->entry || pc >= function->end) return std::optional<GoFunction>();
  return std::optional<GoFunction>(*function);
}

// runtime.pcvalue / step: pairs of (zig-zag value delta, pc delta), both varints; the value starts at -1 and the
// pc at the entry; a zero value delta after the first pair ends the table. The value applies to [pc, pc+delta).
Result<std::int32_t> GoPclntab::pc_value(const GoFunction& function, std::uint32_t table_offset,
                                         std::uint64_t pc) const {
  if (table_offset == 0) return -1;
  const auto where = [&] {
    return ".gopclntab pc-value table at pctab+" + hex(table_offset) + " of " + std::string(function.name);
  };
  if (pc < function.entry || pc >= function.end) return fail(where(), ": pc ", hex(pc), " outside the function");
  ByteReader reader(table_span(bytes_, pctab_offset_, pcln_offset_), ".gopclntab pctab");
  if (auto ok = reader.seek(table_offset); !ok) return fail(where(), ": ", ok.error().message);
  std::uint32_t value = static_cast<std::uint32_t>(-1);
  std::uint64_t current = function.entry;
  for (bool first = true;; first = false) {
    auto value_delta = reader.uleb128();
    if (!value_delta) return fail(where(), ": ", value_delta.error().message);
    if (*value_delta == 0 && !first) break;
    auto pc_delta = reader.uleb128();
    if (!pc_delta) return fail(where(), ": ", pc_delta.error().message);
    if (*value_delta > UINT32_MAX || *pc_delta > UINT32_MAX) {
      return fail(where(), ": varint wider than 32 bits before offset ", hex(reader.offset()));
    }
    const auto delta = static_cast<std::uint32_t>(*value_delta);
    value += (0u - (delta & 1)) ^ (delta >> 1);
    current += *pc_delta * pc_quantum_;
    if (pc < current) return static_cast<std::int32_t>(value);
    if (current >= function.end) break;
  }
  return fail(where(), ": ends before pc ", hex(pc));
}

Result<std::int32_t> GoPclntab::frame_size(const GoFunction& function, std::uint64_t pc) const {
  return pc_value(function, function.pcsp, pc);
}

Result<std::int32_t> GoPclntab::line_at(const GoFunction& function, std::uint64_t pc) const {
  return pc_value(function, function.pcln, pc);
}

Result<std::string_view> GoPclntab::file_at(const GoFunction& function, std::uint64_t pc) const {
  FS_TRY(file_index, pc_value(function, function.pcfile, pc));
  if (*file_index < 0) return std::string_view();
  // runtime.funcfile: the value indexes the function's compilation unit's slice of cutab, which holds offsets into
  // filetab (~0 for none).
  const std::uint64_t slot = std::uint64_t{function.cu_offset} + static_cast<std::uint64_t>(*file_index);
  ByteReader cutab(table_span(bytes_, cu_offset_, filetab_offset_), ".gopclntab cutab");
  if (auto ok = cutab.seek(slot * 4); !ok) return fail(ok.error().message, " (file ", std::to_string(slot), ")");
  FS_TRY(file_offset, cutab.fixed<std::uint32_t>());
  if (*file_offset == UINT32_MAX) return std::string_view();
  ByteReader filetab(table_span(bytes_, filetab_offset_, pctab_offset_), ".gopclntab filetab");
  FS_TRY_DISCARD(filetab.seek(*file_offset));
  return filetab.c_string();
}

Result<std::int32_t> GoPclntab::pcdata(const GoFunction& function, std::uint32_t table, std::uint64_t pc) const {
  if (table >= function.pcdata_count) return -1;
  ByteReader reader(table_span(bytes_, pcln_offset_, bytes_.size()), ".gopclntab _func pcdata");
  FS_TRY_DISCARD(reader.seek(function.record_offset + func_record_size(version_) + std::uint64_t{table} * 4));
  FS_TRY(offset, reader.fixed<std::uint32_t>());
  return pc_value(function, *offset, pc);
}

Result<std::optional<std::uint64_t>> GoPclntab::funcdata_address(const GoFunction& function,
                                                                 std::uint32_t index) const {
  if (index >= function.funcdata_count) return std::optional<std::uint64_t>();
  ByteReader reader(table_span(bytes_, pcln_offset_, bytes_.size()), ".gopclntab _func funcdata");
  std::uint64_t offset = function.record_offset + func_record_size(version_) + std::uint64_t{function.pcdata_count} * 4;
  if (version_ == GoPclntabVersion::go1_16) {
    // Pointers, aligned to 8 in memory (runtime.funcdata of 1.16).
    if ((address_ + pcln_offset_ + offset) % 8 != 0) offset += 4;
    FS_TRY_DISCARD(reader.seek(offset + std::uint64_t{index} * 8));
    FS_TRY(pointer, reader.fixed<std::uint64_t>());
    return *pointer == 0 ? std::optional<std::uint64_t>() : std::optional<std::uint64_t>(*pointer);
  }
  FS_TRY_DISCARD(reader.seek(offset + std::uint64_t{index} * 4));
  FS_TRY(data_offset, reader.fixed<std::uint32_t>());
  if (*data_offset == UINT32_MAX) return std::optional<std::uint64_t>();
  if (gofunc_address_ == 0) {
    return fail(".gopclntab: funcdata ", std::to_string(index), " of ", std::string(function.name),
                " is relative to moduledata.gofunc, which was not found");
  }
  return std::optional<std::uint64_t>(gofunc_address_ + *data_offset);
}

Result<std::span<const std::byte>> GoPclntab::data_at(std::uint64_t address, std::uint64_t size) const {
  for (const GoAddressedBytes& data : data_) {
    if (address < data.address || address - data.address >= data.bytes.size()) continue;
    const std::uint64_t offset = address - data.address;
    if (size > data.bytes.size() - offset) break;
    return data.bytes.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(size));
  }
  return fail("Go funcdata: ", std::to_string(size), " bytes at ", hex(address), " are in no section of the binary");
}

Result<std::vector<GoSourceFrame>> GoPclntab::frames_at(std::uint64_t pc) const {
  std::vector<GoSourceFrame> frames;
  FS_TRY(found, function_at(pc));
  if (!*found) return frames;
  const GoFunction& function = **found;
  const auto frame_at = [&](std::string_view name, std::uint64_t at, bool inlined) -> Result<GoSourceFrame> {
    FS_TRY(file, file_at(function, at));
    FS_TRY(line, line_at(function, at));
    return GoSourceFrame{name, *file, *line, inlined, function.entry};
  };
  // runtime.traceback's inline expansion: the inline tree entry at the pc names the inlined callee; its parentPc
  // is an instruction of the caller at the call site, where the lookup repeats.
  std::uint64_t trace_pc = pc;
  FS_TRY(tree, funcdata_address(function, kGoFuncdataInlTree));
  if (*tree) {
    const bool layout_120 = version_ == GoPclntabVersion::go1_20;
    const std::uint64_t entry_size = layout_120 ? 16 : 20;
    for (int depth = 0;; ++depth) {
      FS_TRY(index, pcdata(function, kGoPcdataInlTreeIndex, trace_pc));
      if (*index < 0) break;
      if (depth == kMaxInlineDepth) {
        return fail(".gopclntab inline tree of ", std::string(function.name), ": deeper than ",
                    std::to_string(kMaxInlineDepth), " calls");
      }
      FS_TRY(entry_bytes, data_at(**tree + static_cast<std::uint64_t>(*index) * entry_size, entry_size));
      ByteReader entry(*entry_bytes, "Go inline tree entry");
      FS_TRY_DISCARD(entry.seek(layout_120 ? 4 : 12));
      FS_TRY(name_offset, entry.fixed<std::int32_t>());
      FS_TRY(parent_pc, entry.fixed<std::int32_t>());
      FS_TRY(name, name_at(*name_offset));
      FS_TRY(frame, frame_at(*name, trace_pc, /*inlined=*/true));
      frames.push_back(*frame);
      if (*parent_pc < 0 || static_cast<std::uint64_t>(*parent_pc) >= function.end - function.entry) {
        return fail(".gopclntab inline tree of ", std::string(function.name), ": entry ", std::to_string(*index),
                    " has parent pc offset ", std::to_string(*parent_pc), " outside the function");
      }
      trace_pc = function.entry + static_cast<std::uint64_t>(*parent_pc);
    }
  }
  FS_TRY(outer, frame_at(function.name, trace_pc, /*inlined=*/false));
  frames.push_back(*outer);
  return frames;
}

namespace {

// moduledata (runtime/symtab.go) starts with a pointer to the pcHeader and the funcnametab slice: a word equal to
// the table's address followed by one equal to its funcnametab's is the module's firstmoduledata.
std::optional<std::uint64_t> find_gofunc_by_moduledata(const ElfImage& image, const GoPclntab& table,
                                                       std::uint64_t table_address, std::uint64_t funcname_address) {
  const std::size_t gofunc_offset = table.version() == GoPclntabVersion::go1_20 ? kModuledataGofuncOffset120
                                                                                 : kModuledataGofuncOffset118;
  for (const char* name : {".noptrdata", ".data", ".data.rel.ro"}) {
    auto section = image.section(name);
    if (!section || section->bytes.size() < gofunc_offset + 8) continue;
    const auto bytes = section->bytes;
    for (std::size_t offset = 0; offset + gofunc_offset + 8 <= bytes.size(); offset += 8) {
      std::uint64_t words[2];
      std::memcpy(words, bytes.data() + offset, sizeof(words));
      if (words[0] != table_address) continue;
      std::uint64_t funcnametab = 0;
      std::memcpy(&funcnametab, bytes.data() + offset + kModuledataFuncnametabOffset, 8);
      if (funcnametab != funcname_address) continue;
      std::uint64_t gofunc = 0;
      std::memcpy(&gofunc, bytes.data() + offset + gofunc_offset, 8);
      return gofunc;
    }
  }
  return std::nullopt;
}

}  // namespace

Result<std::unique_ptr<GoPclntab>> GoPclntab::from_image(const ElfImage& image) {
  std::optional<ElfSection> section = image.section(".gopclntab");
  std::uint64_t table_address = 0;
  std::span<const std::byte> bytes;
  if (section && !section->bytes.empty()) {
    table_address = section->address;
    bytes = section->bytes;
  } else if (auto symbol = image.find_symbol("runtime.pclntab")) {
    // Some links (PIE, external linking on some platforms) put the table inside .data.rel.ro.
    for (const ElfSection& candidate : image.sections()) {
      if (candidate.address == 0 || candidate.compressed || symbol->address < candidate.address ||
          symbol->address - candidate.address >= candidate.bytes.size())
        continue;
      table_address = symbol->address;
      bytes = candidate.bytes.subspan(static_cast<std::size_t>(symbol->address - candidate.address));
      break;
    }
  }
  if (bytes.empty()) {
    return fail(image.path(), ": no .gopclntab section nor runtime.pclntab symbol (not a Go binary)");
  }
  std::uint64_t text_address = 0;
  if (auto text = image.find_symbol("runtime.text")) text_address = text->address;
  else if (auto text_section = image.section(".text")) text_address = text_section->address;
  std::vector<GoAddressedBytes> data;
  for (const ElfSection& candidate : image.sections())
    if (candidate.address != 0 && !candidate.compressed && !candidate.bytes.empty())
      data.push_back({candidate.address, candidate.bytes});

  auto table = parse(bytes, table_address, text_address, 0, data);
  if (!table) return std::unexpected(table.error().with_context(image.path()));
  if (table->version_ != GoPclntabVersion::go1_16) {
    // funcdata offsets are relative to go.func.* (go:func.* since 1.20); stripped binaries keep it only in
    // moduledata.gofunc.
    if (auto symbol = image.find_symbol("go.func.*")) table->gofunc_address_ = symbol->address;
    else if (auto symbol_120 = image.find_symbol("go:func.*")) table->gofunc_address_ = symbol_120->address;
    else if (auto gofunc = find_gofunc_by_moduledata(image, *table, table_address,
                                                     table_address + table->funcname_offset_))
      table->gofunc_address_ = *gofunc;
  }
  return std::make_unique<GoPclntab>(std::move(*table));
}

}  // namespace fiberscope::binary
