// libFuzzer target for the DWARF layer. The first input byte picks the entry point:
//   even: the rest is a DWARF expression for binary::evaluate (registers, a frame base, a CFA and a small memory);
//   odd:  the rest is an ELF file; DwarfIndex::open over it, then frames_at / line_at / call_site at pcs taken from
//         its symbols, and every location expression found is evaluated too.
// Seeds (corpus/dwarf/): expressions from the suite's DWARF test programs and small binaries with debug info.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "binary/dwarf_expression.h"
#include "binary/dwarf_index.h"
#include "binary/elf_image.h"
#include "fuzz_support.h"
#include "target/memory.h"
#include "target/registers.h"

namespace {

using namespace fiberscope;

constexpr std::uint64_t kMemoryBase = 0x7ffd0000;
constexpr std::uint64_t kMemoryBytes = 4096;

void evaluate_expression(std::span<const std::byte> expression) {
  target::Registers registers;
  for (unsigned reg = 0; reg < target::kRegisterCount; reg += 2) registers.set(reg, kMemoryBase + 8 * reg);
  target::RegionMemory memory;
  std::vector<std::byte> bytes(kMemoryBytes);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7);
  (void)memory.add(target::RemoteAddress(kMemoryBase), std::move(bytes));
  binary::ExpressionContext context;
  context.registers = &registers;
  context.memory = &memory;
  context.frame_base = kMemoryBase + 0x100;
  context.cfa = kMemoryBase + 0x200;
  context.load_bias = 0x1000;
  context.initial_stack = {kMemoryBase + 0x300};
  // Entry values recurse into the evaluator, as the session's resolver does through call sites.
  context.entry_value = [&](std::span<const std::byte> inner) -> std::optional<std::uint64_t> {
    binary::ExpressionContext plain;
    plain.registers = &registers;
    plain.memory = &memory;
    auto location = binary::evaluate(inner, plain);
    if (location && location->kind == binary::Location::Kind::value) return location->value;
    return std::nullopt;
  };
  (void)binary::evaluate(expression, context);
}

void index_image(const std::uint8_t* data, std::size_t size) {
  fuzz::MemoryFile file(data, size);
  auto image = binary::ElfImage::open(file.path());
  if (!image) return;
  auto index = binary::DwarfIndex::open(**image);
  if (!index) return;
  std::vector<std::uint64_t> pcs;
  for (const char* name : {"main", "leaf", "middle", "outer", "_start"}) {
    if (auto symbol = (*image)->find_symbol(name)) {
      pcs.push_back(symbol->address);
      pcs.push_back(symbol->address + symbol->size_bytes / 2);
    }
  }
  pcs.push_back(0);
  for (std::uint64_t pc : pcs) {
    if (auto frames = (*index)->frames_at(pc)) {
      for (const auto& frame : *frames) {
        evaluate_expression(frame.frame_base);
        for (const auto& variable : frame.variables) evaluate_expression(variable.location);
      }
    }
    (void)(*index)->line_at(pc);
    if (auto site = (*index)->call_site(pc); site && *site) {
      for (const auto& parameter : (*site)->parameters) evaluate_expression(parameter.value);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    evaluate_expression(fuzz::as_bytes(data + 1, size - 1));
  } else {
    index_image(data + 1, size - 1);
  }
  return 0;
}
