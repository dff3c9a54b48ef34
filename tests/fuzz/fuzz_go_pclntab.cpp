// libFuzzer target for Go's pclntab: GoPclntab::parse on raw bytes, every lookup the symbolizer and the unwinder
// make (function, function_at, frames_at with the inline tree, frame_size, pcdata, funcdata_address), then an
// Unwinder run whose only CFI is the table's pcsp, over a stack made of input.
//
// Input layout (little-endian): u32 table size, u16 pc offset, u16 sp offset, then the table, then the rest: both
// the funcdata region (at kGofunc, where the inline tree is read) and the stack. Seeds (corpus/go_pclntab/) are
// the tiny hand-built table of tests/unit/binary/go_pclntab_builder.h, written by make_seeds.py.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "binary/go_pclntab.h"
#include "fuzz_support.h"
#include "target/memory.h"
#include "target/registers.h"
#include "unwind/module_cfi.h"
#include "unwind/unwinder.h"

namespace {

using namespace fiberscope;

constexpr std::uint64_t kTableAddress = 0x500000;
constexpr std::uint64_t kGofunc = 0x600000;
constexpr std::uint64_t kStackBase = 0x7ffe0000;
constexpr std::size_t kMaxFunctionsTried = 16;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::InputCursor input(data, size);
  const auto table_size = input.take<std::uint32_t>();
  const auto pc_offset = input.take<std::uint16_t>();
  const auto sp_offset = input.take<std::uint16_t>();
  const auto table_bytes = input.take_bytes(table_size);
  const auto rest = input.rest();

  auto parsed = binary::GoPclntab::parse(table_bytes, kTableAddress, 0, kGofunc, {{kGofunc, rest}});
  if (!parsed) return 0;
  auto table = std::make_shared<const binary::GoPclntab>(std::move(*parsed));

  std::vector<std::uint64_t> pcs{table->min_pc() + pc_offset};
  for (std::size_t i = 0; i < table->function_count() && i < kMaxFunctionsTried; ++i) {
    auto function = table->function(i);
    if (!function) continue;
    const std::uint64_t length = function->end - function->entry;
    for (std::uint64_t pc : {function->entry, function->entry + (length ? pc_offset % length : 0)}) {
      pcs.push_back(pc);
      (void)table->frame_size(*function, pc);
      for (std::uint32_t index = 0; index < 4; ++index) (void)table->pcdata(*function, index, pc);
      for (std::uint32_t index = 0; index < 8; ++index) (void)table->funcdata_address(*function, index);
    }
  }
  for (std::uint64_t pc : pcs) {
    (void)table->function_at(pc);
    (void)table->frames_at(pc);
  }

  // One module covering the address space whose only unwind information is the table.
  unwind::ModuleCfi module;
  module.name = "fuzz";
  module.range = {target::RemoteAddress(1), target::RemoteAddress(std::numeric_limits<std::uint64_t>::max())};
  module.go_table = table;
  unwind::ModuleCfiSet modules;
  if (!modules.add(std::move(module))) return 0;
  target::RegionMemory memory;
  std::vector<std::byte> stack(rest.begin(), rest.end());
  const std::uint64_t stack_size = stack.size();
  if (!stack.empty() && !memory.add(target::RemoteAddress(kStackBase), std::move(stack))) return 0;
  target::Registers registers;
  registers.set(target::Reg::rip, pcs.front());
  registers.set(target::Reg::rsp, kStackBase + (stack_size ? sp_offset % stack_size : 0));
  const unwind::StackRegion stacks[] = {
      {{target::RemoteAddress(kStackBase), target::RemoteAddress(kStackBase + stack_size)},
       unwind::StackKind::system, 1}};
  unwind::Unwinder unwinder(modules);
  (void)unwinder.unwind(registers, memory, {.max_depth = 256, .stacks = stacks});
  return 0;
}
