#include "fibers/go/go_reader.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "base/hex.h"
#include "binary/dwarf_types.h"

namespace fiberscope::fibers::go {
namespace {

using target::AddressRange;
using target::RemoteAddress;

// asm_amd64.s (Go 1.19): asmcgocall aligns the g0 sp below g0.sched.sp and keeps two words there; cgocallback
// keeps the previous g0.sched.sp at 0(SP). These are the assembly's own conventions: no DWARF describes them.
constexpr std::uint64_t kAsmcgocallFrameBytes = 64;  // SUBQ $64, SP; ANDQ $~15, SP
constexpr std::uint64_t kAsmcgocallDepthSlot = 40;   // stack.hi - the goroutine's sp
constexpr std::uint64_t kAsmcgocallGSlot = 48;       // the g that made the call
constexpr std::uint64_t kMaxWaitReasons = 256;
constexpr std::uint64_t kMaxWaitReasonBytes = 64;

// The module that holds the Go runtime: its executable.
const binary::Module* go_module(binary::Symbolizer& symbols) {
  for (const binary::Module& module : symbols.modules()) {
    if (!module.image) continue;
    if (module.image->find_symbol("runtime.buildVersion") || module.image->section(".go.buildinfo")) return &module;
  }
  return nullptr;
}

// "go1.19.8" out of "Go cmd/compile go1.19.8; regabi".
std::string version_from_producer(const std::string& producer) {
  const std::size_t start = producer.find("go1");
  if (start == std::string::npos) return {};
  std::size_t end = start;
  while (end < producer.size() && producer[end] != ';' && producer[end] != ' ') ++end;
  return producer.substr(start, end - start);
}

// A field of `layout` at `path`, whose size must be one of `sizes`.
Result<Field> field_of(const binary::StructLayout& layout, std::string_view path,
                       std::initializer_list<std::uint64_t> sizes, const std::string& version) {
  auto member = layout.member(path);
  if (!member) return fail(member.error().message, " (", version, ")");
  if (std::find(sizes.begin(), sizes.end(), member->size_bytes) == sizes.end())
    return fail(layout.name, ".", path, " has type ", member->type_name, " of ", std::to_string(member->size_bytes),
                " bytes, not what the Go reader expects (", version, ")");
  if (member->offset + member->size_bytes > layout.size_bytes)
    return fail(layout.name, ".", path, " at offset ", std::to_string(member->offset),
                " lies outside the structure's ", std::to_string(layout.size_bytes), " bytes (", version, ")");
  return Field{member->offset, member->size_bytes};
}

// Go 1.20 made some status words atomic.Uint32 (a structure with `value`): either spelling is read.
Result<Field> scalar_field(const binary::StructLayout& layout, std::string_view path,
                           std::initializer_list<std::uint64_t> sizes, const std::string& version) {
  auto direct = field_of(layout, path, sizes, version);
  if (direct) return direct;
  auto wrapped = field_of(layout, std::string(path) + ".value", sizes, version);
  return wrapped ? wrapped : direct;
}

std::uint64_t load(std::span<const std::byte> bytes, const Field& field) {
  if (field.size_bytes == 0 || field.offset + field.size_bytes > bytes.size()) return 0;
  std::uint64_t value = 0;
  std::memcpy(&value, bytes.data() + field.offset, field.size_bytes);  // x86-64: little-endian
  return value;
}

Result<std::vector<std::byte>> read_bytes(const target::Memory& memory, RemoteAddress address, std::uint64_t size) {
  std::vector<std::byte> bytes(size);
  FS_TRY_DISCARD(memory.read(address, bytes));
  return bytes;
}

// waitReasonStrings as the target holds it: [N]string, each {data, len}.
// Their text is in chunk_ranges too: a table read again from a snapshot finds it there.
std::vector<std::string> read_wait_reasons(const target::Memory& memory, const GoRuntime& runtime,
                                           std::vector<TableError>& errors, std::vector<AddressRange>& chunk_ranges) {
  std::vector<std::string> names;
  const std::uint64_t count = std::min(runtime.wait_reason_count, kMaxWaitReasons);
  for (std::uint64_t i = 0; i < count; ++i) {
    const RemoteAddress entry = runtime.wait_reason_strings + i * 16;
    auto data = memory.read_u64(entry);
    auto length = memory.read_u64(entry + 8);
    std::string name;
    if (data && length && *length <= kMaxWaitReasonBytes) {
      name.resize(*length);
      if (!memory.read(RemoteAddress(*data), std::as_writable_bytes(std::span(name)))) name.clear();
      if (!name.empty()) chunk_ranges.push_back({RemoteAddress(*data), RemoteAddress(*data + *length)});
    } else {
      errors.push_back({TableError::Where::fiber_chunk, i, entry, 0,
                        "runtime.waitReasonStrings[" + std::to_string(i) + "] at " + entry.to_string() +
                            " is unreadable or longer than " + std::to_string(kMaxWaitReasonBytes) + " bytes"});
    }
    names.push_back(std::move(name));
  }
  return names;
}

// The enum the checks and the ui know, for the reasons they share with runtime_lib.
WaitReason wait_reason_of(std::string_view text) {
  if (text == "chan receive" || text == "chan receive (nil chan)") return WaitReason::chan_receive;
  if (text == "chan send" || text == "chan send (nil chan)") return WaitReason::chan_send;
  if (text == "sleep") return WaitReason::sleep;
  if (text == "sync.Mutex.Lock" || text == "sync.RWMutex.Lock" || text == "sync.RWMutex.RLock" ||
      text == "semacquire")
    return WaitReason::mutex;
  if (text == "sync.Cond.Wait") return WaitReason::condvar;
  return WaitReason::none;
}

struct MInfo {
  RemoteAddress address;
  std::size_t index = 0;
  std::uint64_t curg = 0, g0 = 0;
  std::uint64_t g0_sched_sp = 0;
  bool incgo = false;
  std::uint32_t ncgo = 0;
};

// The Transitions of goroutine `g` on M `m`, innermost first (see the header for the chain read here).
void read_cgo_transitions(const target::Memory& memory, const GoRuntime& runtime, const GoReadOptions& options,
                          const MInfo& m, FiberRecord& fiber) {
  const std::uint64_t levels = std::min<std::uint64_t>(m.ncgo, options.max_cgo_depth);
  if (levels == 0) return;
  const bool in_c = m.incgo && fiber.state == FiberState::foreign;
  std::uint64_t sched_sp = m.g0_sched_sp;
  auto fail_chain = [&](std::string why) { fiber.transition_error = std::move(why); };
  // The asmcgocall made from g0 sp `from`: its depth slot gives the goroutine's sp at the call.
  auto foreign_call = [&](std::uint64_t from, std::uint32_t depth) -> std::optional<Transition> {
    const std::uint64_t aligned = (from - kAsmcgocallFrameBytes) & ~std::uint64_t{15};
    auto saved_depth = memory.read_u64(RemoteAddress(aligned + kAsmcgocallDepthSlot));
    auto saved_g = memory.read_u64(RemoteAddress(aligned + kAsmcgocallGSlot));
    if (!saved_depth || !saved_g) {
      fail_chain("asmcgocall's saved words at " + hex(aligned) + " on g0 are unreadable");
      return std::nullopt;
    }
    if (*saved_g != fiber.address.value()) {
      fail_chain("asmcgocall's frame at " + hex(aligned) + " on g0 names g " + hex(*saved_g) + ", not this one");
      return std::nullopt;
    }
    const std::uint64_t hi = fiber.stack.end.value();
    const std::uint64_t sp = hi - *saved_depth;
    if (*saved_depth > hi || !fiber.stack.contains(RemoteAddress(sp)) || sp + 8 > hi) {
      fail_chain("asmcgocall's saved depth " + hex(*saved_depth) + " puts the goroutine's sp outside its stack");
      return std::nullopt;
    }
    // asmcgocall has no frame of its own on the goroutine's stack: at `sp` is the return address into cgocall, the
    // frame that made the call (what runtime_lib's records name as from_pc / from_sp).
    auto resume_pc = memory.read_u64(RemoteAddress(sp));
    if (!resume_pc) {
      fail_chain("the return address into cgocall at " + hex(sp) + " is unreadable");
      return std::nullopt;
    }
    Transition transition;
    transition.kind = Transition::Kind::foreign_call;
    transition.address = RemoteAddress(aligned);
    transition.depth = depth;
    transition.from_pc = *resume_pc;
    transition.from_sp = sp + 8;
    transition.to_sp = aligned;
    transition.switch_function = runtime.asmcgocall;
    transition.switch_sp = sp;
    return transition;
  };
  std::uint64_t callbacks = in_c ? levels - 1 : levels;
  std::uint32_t depth = static_cast<std::uint32_t>(levels);
  if (in_c) {
    auto call = foreign_call(sched_sp, depth--);
    if (!call) return;
    fiber.transitions.push_back(*call);
  }
  for (; callbacks > 0; --callbacks) {
    auto previous = memory.read_u64(RemoteAddress(sched_sp));
    if (!previous || *previous <= sched_sp) {
      fail_chain("cgocallback's saved g0 sp at " + hex(sched_sp) + " is unreadable or not above it");
      return;
    }
    auto call = foreign_call(*previous, depth);
    if (!call) return;
    Transition callback;
    callback.kind = Transition::Kind::callback;
    callback.depth = depth--;
    // cgocallback pushed the goroutine's resume pc just below the sp asmcgocall left on its stack.
    callback.address = RemoteAddress(call->switch_sp - 8);
    callback.from_sp = sched_sp;
    callback.to_sp = call->switch_sp - 8;
    callback.switch_function = runtime.cgocallback;
    callback.switch_sp = sched_sp;
    fiber.transitions.push_back(callback);
    fiber.transitions.push_back(*call);
    sched_sp = *previous;
  }
}

// Layouts and status values from the binary's DWARF.
Result<void> layouts_from_dwarf(GoRuntime& runtime, const binary::ElfImage& image) {
  FS_TRY(types, binary::DwarfTypes::open(image));
  if (std::string version = version_from_producer((*types)->producer()); !version.empty()) runtime.version = version;
  const std::string& version = runtime.version;
  runtime.layout_from_dwarf = true;

  FS_TRY(g_layout, (*types)->structure("runtime.g"));
  FS_TRY(m_layout, (*types)->structure("runtime.m"));
  const binary::StructLayout& g = *g_layout;
  const binary::StructLayout& m = *m_layout;
  runtime.g_size = g.size_bytes;
  runtime.m_size = m.size_bytes;
  if (g.size_bytes == 0 || g.size_bytes > 64 * 1024 || m.size_bytes == 0 || m.size_bytes > 64 * 1024)
    return fail("runtime.g (", std::to_string(g.size_bytes), " bytes) or runtime.m (", std::to_string(m.size_bytes),
                " bytes) has an implausible size (", version, ")");
  auto& gf = runtime.g;
  FS_TRY(goid, field_of(g, "goid", {8}, version));
  gf.goid = *goid;
  FS_TRY(status, scalar_field(g, "atomicstatus", {4}, version));
  gf.status = *status;
  FS_TRY(wait_reason, field_of(g, "waitreason", {1}, version));
  gf.wait_reason = *wait_reason;
  FS_TRY(wait_since, field_of(g, "waitsince", {8}, version));
  gf.wait_since = *wait_since;
  FS_TRY(stack_lo, field_of(g, "stack.lo", {8}, version));
  gf.stack_lo = *stack_lo;
  FS_TRY(stack_hi, field_of(g, "stack.hi", {8}, version));
  gf.stack_hi = *stack_hi;
  FS_TRY(sched_sp, field_of(g, "sched.sp", {8}, version));
  gf.sched_sp = *sched_sp;
  FS_TRY(sched_pc, field_of(g, "sched.pc", {8}, version));
  gf.sched_pc = *sched_pc;
  FS_TRY(sched_bp, field_of(g, "sched.bp", {8}, version));
  gf.sched_bp = *sched_bp;
  FS_TRY(syscall_sp, field_of(g, "syscallsp", {8}, version));
  gf.syscall_sp = *syscall_sp;
  FS_TRY(syscall_pc, field_of(g, "syscallpc", {8}, version));
  gf.syscall_pc = *syscall_pc;
  FS_TRY(g_m, field_of(g, "m", {8}, version));
  gf.m = *g_m;
  FS_TRY(locked_m, field_of(g, "lockedm", {8}, version));
  gf.locked_m = *locked_m;
  FS_TRY(go_pc, field_of(g, "gopc", {8}, version));
  gf.go_pc = *go_pc;
  FS_TRY(start_pc, field_of(g, "startpc", {8}, version));
  gf.start_pc = *start_pc;
  if (auto parent = field_of(g, "parentGoid", {8}, version)) gf.parent_goid = *parent;

  auto& mf = runtime.m;
  FS_TRY(m_id, field_of(m, "id", {8}, version));
  mf.id = *m_id;
  FS_TRY(procid, field_of(m, "procid", {8}, version));
  mf.procid = *procid;
  FS_TRY(curg, field_of(m, "curg", {8}, version));
  mf.curg = *curg;
  FS_TRY(g0, field_of(m, "g0", {8}, version));
  mf.g0 = *g0;
  FS_TRY(gsignal, field_of(m, "gsignal", {8}, version));
  mf.gsignal = *gsignal;
  FS_TRY(alllink, field_of(m, "alllink", {8}, version));
  mf.alllink = *alllink;
  FS_TRY(incgo, field_of(m, "incgo", {1}, version));
  mf.incgo = *incgo;
  FS_TRY(ncgo, field_of(m, "ncgo", {4}, version));
  mf.ncgo = *ncgo;
  FS_TRY(locked_g, field_of(m, "lockedg", {8}, version));
  mf.locked_g = *locked_g;

  // The status values, from DWARF when the compiler emitted them; else runtime2.go's, which GoRuntime holds.
  struct Named {
    const char* name;
    std::uint32_t* value;
  };
  const Named statuses[] = {
      {"runtime._Gidle", &runtime.g_idle},           {"runtime._Grunnable", &runtime.g_runnable},
      {"runtime._Grunning", &runtime.g_running},     {"runtime._Gsyscall", &runtime.g_syscall},
      {"runtime._Gwaiting", &runtime.g_waiting},     {"runtime._Gdead", &runtime.g_dead},
      {"runtime._Gcopystack", &runtime.g_copystack}, {"runtime._Gpreempted", &runtime.g_preempted},
      {"runtime._Gscan", &runtime.g_scan}};
  runtime.status_from_dwarf = true;
  for (const Named& status_constant : statuses) {
    if (auto value = (*types)->constant(status_constant.name); value && *value >= 0 && *value <= 0xffff) {
      *status_constant.value = static_cast<std::uint32_t>(*value);
    } else {
      runtime.status_from_dwarf = false;
    }
  }

  return {};
}

// Go 1.19 on amd64 as the compiler lays out runtime2.go: for binaries without DWARF only, and checked against the
// DWARF of the suite's builds (tests/unit/go). The status values are runtime2.go's, GoRuntime's defaults.
constexpr std::uint64_t kGo119GSize = 392, kGo119MSize = 1008;
constexpr GFields kGo119G{.goid = {152, 8}, .status = {144, 4}, .wait_reason = {176, 1}, .wait_since = {168, 8},
                          .stack_lo = {0, 8}, .stack_hi = {8, 8}, .sched_sp = {56, 8}, .sched_pc = {64, 8},
                          .sched_bp = {104, 8}, .syscall_sp = {112, 8}, .syscall_pc = {120, 8}, .m = {48, 8},
                          .locked_m = {232, 8}, .go_pc = {296, 8}, .start_pc = {312, 8}, .parent_goid = {}};
constexpr MFields kGo119M{.id = {232, 8},    .procid = {72, 8}, .curg = {192, 8}, .g0 = {0, 8}, .gsignal = {80, 8},
                          .alllink = {336, 8}, .incgo = {280, 1}, .ncgo = {312, 4}, .locked_g = {352, 8}};

// "go1.19.8" from .go.buildinfo (Go 1.18+: a 32-byte header, then the version as a varint-prefixed string).
std::string version_from_buildinfo(const binary::ElfImage& image) {
  auto section = image.section(".go.buildinfo");
  if (!section || section->bytes.size() < 33) return {};
  const std::span<const std::byte> bytes = section->bytes;
  constexpr std::string_view kMagic = "\xff Go buildinf:";
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) return {};
  constexpr std::uint8_t kInlineStrings = 2;  // flags: strings follow the header (else pointers, Go < 1.18)
  if ((static_cast<std::uint8_t>(bytes[15]) & kInlineStrings) == 0) return {};
  const auto length = static_cast<std::uint8_t>(bytes[32]);
  if (length >= 0x80 || 33u + length > bytes.size()) return {};
  return std::string(reinterpret_cast<const char*>(bytes.data()) + 33, length);
}

}  // namespace

bool is_go_program(binary::Symbolizer& symbols) { return go_module(symbols) != nullptr; }

Result<std::shared_ptr<const GoRuntime>> load_go_runtime(binary::Symbolizer& symbols) {
  const binary::Module* module = go_module(symbols);
  if (!module) return fail("no Go runtime found (no runtime.buildVersion symbol or .go.buildinfo section)");
  auto runtime = std::make_shared<GoRuntime>();
  runtime->version = version_from_buildinfo(*module->image);
  if (runtime->version.empty()) runtime->version = "unknown Go version";
  if (const binary::ElfImage* dwarf_image = symbols.debug_image(*module)) {
    FS_TRY_DISCARD(layouts_from_dwarf(*runtime, *dwarf_image));
  } else if (runtime->version.starts_with("go1.19.") || runtime->version == "go1.19") {
    runtime->g_size = kGo119GSize;
    runtime->m_size = kGo119MSize;
    runtime->g = kGo119G;
    runtime->m = kGo119M;
  } else {
    return fail(module->path, ": a Go binary without DWARF (-ldflags=-w or stripped), built by ", runtime->version,
                ", whose runtime.g and runtime.m layouts this reader does not know (it knows go1.19's)");
  }
  const std::string& version = runtime->version;

  auto symbol = [&](std::string_view name) -> Result<binary::ElfSymbol> {
    auto found = module->image->find_symbol(name);
    if (!found) return fail(module->path, ": no symbol ", name, " (", version, ")");
    found->address += module->load_bias;
    return *found;
  };
  FS_TRY(allgs, symbol("runtime.allgs"));
  runtime->allgs = RemoteAddress(allgs->address);
  FS_TRY(allglen, symbol("runtime.allglen"));
  runtime->allglen = RemoteAddress(allglen->address);
  FS_TRY(allm, symbol("runtime.allm"));
  runtime->allm = RemoteAddress(allm->address);
  FS_TRY(reasons, symbol("runtime.waitReasonStrings"));
  runtime->wait_reason_strings = RemoteAddress(reasons->address);
  runtime->wait_reason_count = reasons->size_bytes / 16;
  // Without cgo neither switch exists; a pure Go binary still has asmcgocall, but no goroutine is ever in it.
  // Assembly functions carry their ABI in the symbol's name (runtime.asmcgocall.abi0); the plain name, when it
  // exists too, is a wrapper that is never on a stack during a call.
  for (auto [name, range] : {std::pair{"runtime.asmcgocall", &runtime->asmcgocall},
                             std::pair{"runtime.cgocallback", &runtime->cgocallback}}) {
    auto code = symbol(std::string(name) + ".abi0");
    if (!code) code = symbol(name);
    if (code && code->size_bytes > 0)
      *range = AddressRange{RemoteAddress(code->address), RemoteAddress(code->address + code->size_bytes)};
  }
  return std::shared_ptr<const GoRuntime>(std::move(runtime));
}

Result<FiberTable> read_go_table(const target::Memory& memory, const GoRuntime& runtime,
                                 const GoReadOptions& options) {
  FiberTable table;
  table.fiber_noun = "goroutine";
  table.frame_liveness = FiberTable::FrameLiveness::go_stack_maps;
  table.syscall_exit_check = "runtime.exitsyscall";
  table.fibers_named = false;
  table.runtime = runtime.version;
  const auto& gf = runtime.g;
  const auto& mf = runtime.m;

  // The Ms first: goroutines point at them (g.m, g.lockedm).
  std::vector<MInfo> ms;
  std::unordered_map<std::uint64_t, std::size_t> m_index;
  FS_TRY(first_m, memory.read_u64(runtime.allm));
  std::unordered_set<std::uint64_t> seen;
  for (std::uint64_t address = *first_m; address != 0;) {
    if (ms.size() >= options.max_ms) {
      table.errors.push_back({TableError::Where::worker_chunk, ms.size(), RemoteAddress(address), 0,
                              "runtime.allm lists more than " + std::to_string(options.max_ms) + " Ms; the rest are "
                              "not read"});
      break;
    }
    if (!seen.insert(address).second) {
      table.errors.push_back({TableError::Where::worker_chunk, ms.size(), RemoteAddress(address), 0,
                              "runtime.allm loops back to m " + hex(address)});
      break;
    }
    auto bytes = read_bytes(memory, RemoteAddress(address), runtime.m_size);
    if (!bytes) {
      table.errors.push_back({TableError::Where::worker_record, ms.size(), RemoteAddress(address), 0,
                              "m at " + hex(address) + " is unreadable: " + bytes.error().message});
      break;
    }
    table.chunk_ranges.push_back({RemoteAddress(address), RemoteAddress(address + runtime.m_size)});
    MInfo m;
    m.address = RemoteAddress(address);
    m.index = ms.size();
    m.curg = load(*bytes, mf.curg);
    m.g0 = load(*bytes, mf.g0);
    m.incgo = load(*bytes, mf.incgo) != 0;
    m.ncgo = static_cast<std::uint32_t>(load(*bytes, mf.ncgo));
    WorkerRecord worker;
    worker.index = ms.size();
    worker.address = m.address;
    worker.tid = static_cast<int>(load(*bytes, mf.procid));
    worker.state = WorkerState::idle;
    worker.current_record = RemoteAddress(m.curg);
    if (m.g0) {
      if (auto g0 = read_bytes(memory, RemoteAddress(m.g0), runtime.g_size)) {
        table.chunk_ranges.push_back({RemoteAddress(m.g0), RemoteAddress(m.g0 + runtime.g_size)});
        const std::uint64_t lo = load(*g0, gf.stack_lo), hi = load(*g0, gf.stack_hi);
        if (lo < hi && hi - lo <= options.max_stack_bytes)
          worker.system_stack = {RemoteAddress(lo), RemoteAddress(hi)};
        m.g0_sched_sp = load(*g0, gf.sched_sp);
      } else {
        table.errors.push_back({TableError::Where::worker_record, ms.size(), m.address, 0,
                                "g0 of m " + hex(address) + " at " + hex(m.g0) + " is unreadable"});
      }
    }
    if (const std::uint64_t gsignal = load(*bytes, mf.gsignal)) {
      if (auto signal_g = read_bytes(memory, RemoteAddress(gsignal), runtime.g_size)) {
        table.chunk_ranges.push_back({RemoteAddress(gsignal), RemoteAddress(gsignal + runtime.g_size)});
        const std::uint64_t lo = load(*signal_g, gf.stack_lo), hi = load(*signal_g, gf.stack_hi);
        if (lo < hi && hi - lo <= options.max_stack_bytes) worker.signal_stack = {RemoteAddress(lo), RemoteAddress(hi)};
      }
    }
    m_index.emplace(address, ms.size());
    ms.push_back(m);
    table.workers.push_back(std::move(worker));
    address = load(*bytes, mf.alllink);
  }

  const std::vector<std::string> reasons = read_wait_reasons(memory, runtime, table.errors, table.chunk_ranges);
  table.chunk_ranges.push_back(
      {runtime.wait_reason_strings, runtime.wait_reason_strings + runtime.wait_reason_count * 16});

  FS_TRY(allglen, memory.read_u64(runtime.allglen));
  FS_TRY(allgs_data, memory.read_u64(runtime.allgs));
  FS_TRY(allgs_len, memory.read_u64(runtime.allgs + 8));
  FS_TRY(allgs_cap, memory.read_u64(runtime.allgs + 16));
  // allgadd appends to allgs and then publishes allglen: both agree in a stopped process, and neither can
  // exceed the slice's capacity.
  std::uint64_t count = std::min(*allglen, *allgs_len);
  bool length_untrusted = false;  // then the used part ends at the first null entry (allgs never holds one)
  if (count > *allgs_cap) {
    table.errors.push_back({TableError::Where::fiber_chunk, 0, runtime.allgs, 0,
                            "runtime.allglen " + std::to_string(*allglen) + " and len(runtime.allgs) " +
                                std::to_string(*allgs_len) + " exceed its capacity " + std::to_string(*allgs_cap) +
                                "; reading up to the first null entry"});
    count = *allgs_cap;
    length_untrusted = true;
  }
  if (count > options.max_goroutines) {
    table.errors.push_back({TableError::Where::fiber_chunk, 0, RemoteAddress(*allgs_data), 0,
                            "runtime.allglen is " + std::to_string(*allglen) + ", more than the cap of " +
                                std::to_string(options.max_goroutines) + "; only the first are read"});
    count = options.max_goroutines;
  }
  std::vector<std::uint64_t> pointers(count);
  if (count) {
    auto ok = memory.read(RemoteAddress(*allgs_data), std::as_writable_bytes(std::span(pointers)));
    if (!ok)
      return fail("runtime.allgs: ", std::to_string(count), " pointers at ", hex(*allgs_data), " are unreadable: ",
                  ok.error().message);
    table.chunk_ranges.push_back({RemoteAddress(*allgs_data), RemoteAddress(*allgs_data + count * 8)});
  }
  table.chunk_ranges.push_back({runtime.allgs, runtime.allgs + 24});
  table.chunk_ranges.push_back({runtime.allglen, runtime.allglen + 8});
  table.chunk_ranges.push_back({runtime.allm, runtime.allm + 8});

  std::vector<std::byte> bytes(runtime.g_size);
  table.fibers.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    const RemoteAddress address(pointers[i]);
    auto error = [&](std::string message) {
      table.errors.push_back({TableError::Where::fiber_record, i, address, 0,
                              "goroutine record " + std::to_string(i) + " at " + address.to_string() + ": " +
                                  std::move(message)});
    };
    if (address.is_null()) {
      if (length_untrusted) break;
      error("null pointer in runtime.allgs");
      continue;
    }
    if (auto ok = memory.read(address, bytes); !ok) {
      error("unreadable: " + ok.error().message);
      continue;
    }
    table.chunk_ranges.push_back({address, address + runtime.g_size});
    FiberRecord fiber;
    fiber.index = i;
    fiber.address = address;
    fiber.id = load(bytes, gf.goid);
    const std::uint64_t raw_status = load(bytes, gf.status);
    const std::uint64_t status = raw_status & ~std::uint64_t{runtime.g_scan};
    if (status == runtime.g_idle) {
      fiber.state = FiberState::free;
    } else if (status == runtime.g_runnable) {
      fiber.state = FiberState::runnable;
    } else if (status == runtime.g_running) {
      fiber.state = FiberState::running;
    } else if (status == runtime.g_syscall) {
      fiber.state = FiberState::syscall;
    } else if (status == runtime.g_waiting) {
      fiber.state = FiberState::waiting;
    } else if (status == runtime.g_dead) {
      fiber.state = FiberState::dead;
    } else if (status == runtime.g_preempted) {
      fiber.state = FiberState::runnable;
      fiber.state_text = "preempted";
    } else if (status == runtime.g_copystack) {
      // Its stack is being moved right now: the saved sp may point into the old or the new copy.
      fiber.state = FiberState::waiting;
      fiber.state_text = "copystack";
      fiber.integrity = Integrity::in_transition;
    } else {
      error("unknown status " + hex(raw_status));
      continue;
    }
    if (raw_status & runtime.g_scan) fiber.integrity = Integrity::in_transition;  // the GC holds it
    if (!fiber.is_live()) {
      table.fibers.push_back(std::move(fiber));
      continue;
    }
    const std::uint64_t lo = load(bytes, gf.stack_lo), hi = load(bytes, gf.stack_hi);
    if (lo >= hi || hi - lo > options.max_stack_bytes) {
      error("goroutine " + std::to_string(fiber.id) + ": stack [" + hex(lo) + ", " + hex(hi) + ") is implausible");
      continue;
    }
    fiber.stack = {RemoteAddress(lo), RemoteAddress(hi)};
    fiber.context.pc = load(bytes, gf.sched_pc);
    fiber.context.sp = load(bytes, gf.sched_sp);
    fiber.context.rbp = load(bytes, gf.sched_bp);
    fiber.syscall_pc = load(bytes, gf.syscall_pc);
    fiber.syscall_sp = load(bytes, gf.syscall_sp);
    fiber.state_since_ns = load(bytes, gf.wait_since);
    fiber.spawn_pc = load(bytes, gf.go_pc);
    fiber.start_pc = load(bytes, gf.start_pc);
    fiber.parent_id = load(bytes, gf.parent_goid);
    const std::uint64_t on_m = load(bytes, gf.m), locked_m = load(bytes, gf.locked_m);
    if (options.leave_out && on_m == 0 && locked_m == 0 && options.leave_out(fiber)) continue;
    fiber.is_main = fiber.id == 1;
    // The main goroutine is made by the bootstrap (rt0_go calls newproc): Go's own traceback names no creator.
    if (fiber.is_main) fiber.spawn_pc = 0;
    if (fiber.state == FiberState::waiting && fiber.state_text.empty()) {
      const std::uint64_t reason = load(bytes, gf.wait_reason);
      if (reason < reasons.size()) fiber.wait_reason_text = reasons[reason];
      fiber.wait_reason = wait_reason_of(fiber.wait_reason_text);
    }
    fiber.is_locked = locked_m != 0;
    // A goroutine parked inside a cgo callback has no m, but its lockedm holds the C frames below it.
    const std::uint64_t m_address = on_m ? on_m : locked_m;
    const MInfo* m = nullptr;
    if (auto it = m_index.find(m_address); m_address && it != m_index.end()) m = &ms[it->second];
    if (m) fiber.worker_index = static_cast<std::uint32_t>(m->index);  // running on it, or locked to it
    if (m && fiber.state == FiberState::syscall && m->incgo && on_m) fiber.state = FiberState::foreign;
    if (m && m->ncgo > 0 && (on_m || fiber.state == FiberState::waiting || fiber.state == FiberState::runnable)) {
      fiber.foreign_depth = m->ncgo;
      read_cgo_transitions(memory, runtime, options, *m, fiber);
      if (!fiber.transition_error.empty())
        table.errors.push_back({TableError::Where::transition, i, address, fiber.id,
                                "goroutine " + std::to_string(fiber.id) + ": " + fiber.transition_error});
    }
    table.fibers.push_back(std::move(fiber));
  }

  // Which goroutine each M runs, now that their ids are known.
  std::unordered_map<std::uint64_t, const FiberRecord*> by_address;
  for (const FiberRecord& fiber : table.fibers) by_address.emplace(fiber.address.value(), &fiber);
  for (WorkerRecord& worker : table.workers) {
    auto it = by_address.find(worker.current_record.value());
    if (worker.current_record.is_null() || it == by_address.end()) {
      worker.current_record = RemoteAddress();
      continue;
    }
    worker.current_fiber = it->second->id;
    worker.state = it->second->state == FiberState::syscall || it->second->state == FiberState::foreign
                       ? WorkerState::syscall
                       : WorkerState::running;
  }
  table.fibers_live = static_cast<std::uint64_t>(
      std::count_if(table.fibers.begin(), table.fibers.end(), [](const FiberRecord& f) { return f.is_live(); }));
  table.fibers_created = count;
  return table;
}

void mark_goroutines_changed_during_capture(FiberTable& table, const GoRuntime& runtime,
                                            const target::Memory& snapshot) {
  const auto& gf = runtime.g;
  std::vector<std::byte> bytes(runtime.g_size);
  for (FiberRecord& fiber : table.fibers) {
    if (!fiber.is_live()) continue;
    if (!snapshot.read(fiber.address, bytes)) {
      fiber.integrity = Integrity::changed;
      continue;
    }
    const std::uint64_t status = load(bytes, gf.status) & ~std::uint64_t{runtime.g_scan};
    const bool same_state = (status == runtime.g_syscall && (fiber.state == FiberState::syscall ||
                                                             fiber.state == FiberState::foreign)) ||
                            (status == runtime.g_running && fiber.state == FiberState::running) ||
                            (status == runtime.g_waiting && fiber.state == FiberState::waiting) ||
                            ((status == runtime.g_runnable || status == runtime.g_preempted) &&
                             fiber.state == FiberState::runnable);
    if (!same_state || load(bytes, gf.sched_sp) != fiber.context.sp || load(bytes, gf.sched_pc) != fiber.context.pc ||
        load(bytes, gf.syscall_sp) != fiber.syscall_sp)
      fiber.integrity = Integrity::changed;
    // A stack that moved (copystack) was copied at its new place: the record's sp still points into the old one,
    // which the new bounds no longer contain, so the walk refuses to start there rather than read freed memory.
    const target::AddressRange now{RemoteAddress(load(bytes, gf.stack_lo)), RemoteAddress(load(bytes, gf.stack_hi))};
    if (now.start != fiber.stack.start || now.end != fiber.stack.end) {
      fiber.integrity = Integrity::changed;
      fiber.stack = now;
      fiber.transitions.clear();
    }
  }
}

}  // namespace fiberscope::fibers::go
