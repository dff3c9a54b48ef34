// libFuzzer target for call frame information: CfiSection (.eh_frame with its .eh_frame_hdr, or .debug_frame) on
// raw bytes, compute_row inside the FDEs found, then a full Unwinder run over a RegionMemory stack made of input.
//
// Input layout (little-endian): u8 flags (bit 0: .debug_frame), u64 section address, u64 .eh_frame_hdr address,
// u16 section size, u16 hdr size, u16 pc offset, u16 sp offset, then the section bytes, the hdr bytes, and the rest
// is the stack. Seeds (corpus/cfi/) are the sections of the suite's unwind test programs with a stack image.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "fuzz_support.h"
#include "target/memory.h"
#include "target/registers.h"
#include "unwind/cfi_program.h"
#include "unwind/cfi_section.h"
#include "unwind/module_cfi.h"
#include "unwind/unwinder.h"

namespace {

using namespace fiberscope;

constexpr std::uint64_t kStackBase = 0x7ffe0000;
constexpr std::size_t kMaxFdesTried = 8;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::InputCursor input(data, size);
  const auto flags = input.take<std::uint8_t>();
  const auto section_address = input.take<std::uint64_t>();
  const auto hdr_address = input.take<std::uint64_t>();
  const auto section_size = input.take<std::uint16_t>();
  const auto hdr_size = input.take<std::uint16_t>();
  const auto pc_offset = input.take<std::uint16_t>();
  const auto sp_offset = input.take<std::uint16_t>();
  const auto section_bytes = input.take_bytes(section_size);
  const auto hdr_bytes = input.take_bytes(hdr_size);
  const auto stack_bytes = input.rest();

  const bool debug_frame = flags & 1;
  unwind::CfiSection section = debug_frame
                                   ? unwind::CfiSection::debug_frame(section_bytes)
                                   : unwind::CfiSection::eh_frame(section_bytes, section_address, hdr_bytes,
                                                                  hdr_address);

  std::vector<std::uint64_t> pcs;
  if (auto fdes = section.all_fdes()) {
    for (std::size_t i = 0; i < fdes->size() && i < kMaxFdesTried; ++i) {
      const unwind::Fde& fde = (*fdes)[i];
      const std::uint64_t length = fde.pc_end - fde.pc_begin;
      for (std::uint64_t pc : {fde.pc_begin, fde.pc_begin + (length ? pc_offset % length : 0)}) {
        if (pc >= fde.pc_begin && pc < fde.pc_end) (void)unwind::compute_row(section, fde, pc);
        pcs.push_back(pc);
      }
    }
  }
  pcs.push_back(section_address + pc_offset);
  for (std::uint64_t pc : pcs) {
    if (auto found = section.find_fde(pc); found && *found && pc >= (*found)->pc_begin && pc < (*found)->pc_end) {
      (void)unwind::compute_row(section, **found, pc);
    }
  }

  // One module covering the whole address space, so every pc the unwind meets goes through this CFI.
  unwind::ModuleCfi module;
  module.name = "fuzz";
  module.range = {target::RemoteAddress(1), target::RemoteAddress(std::numeric_limits<std::uint64_t>::max())};
  (debug_frame ? module.debug_frame : module.eh_frame) = section;
  unwind::ModuleCfiSet modules;
  if (!modules.add(std::move(module))) return 0;

  target::RegionMemory memory;
  std::vector<std::byte> stack(stack_bytes.begin(), stack_bytes.end());
  const std::uint64_t stack_size = stack.size();
  if (!stack.empty() && !memory.add(target::RemoteAddress(kStackBase), std::move(stack))) return 0;
  target::Registers registers;
  registers.set(target::Reg::rip, pcs.front());
  registers.set(target::Reg::rsp, kStackBase + (stack_size ? sp_offset % stack_size : 0));
  registers.set(target::Reg::rbp, kStackBase + stack_size / 2);
  registers.set(target::Reg::rbx, kStackBase);
  const unwind::StackRegion stacks[] = {
      {{target::RemoteAddress(kStackBase), target::RemoteAddress(kStackBase + stack_size)},
       unwind::StackKind::fiber, 1}};
  unwind::Unwinder unwinder(modules);
  (void)unwinder.unwind(registers, memory, {.max_depth = 256, .stacks = stacks});
  // The same start without known stacks: CFAs may then go anywhere the memory allows.
  (void)unwinder.unwind(registers, memory, {.max_depth = 256});
  return 0;
}
