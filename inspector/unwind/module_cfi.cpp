#include "unwind/module_cfi.h"

#include <algorithm>
#include <cstring>

#include "base/hex.h"

namespace fiberscope::unwind {

ModuleCfi ModuleCfi::from_image(const binary::ElfImage& image, std::uint64_t load_bias, target::AddressRange range,
                                const binary::ElfImage* debug_image) {
  ModuleCfi module;
  module.name = image.path();
  module.range = range;
  module.load_bias = load_bias;
  if (auto eh = image.section(".eh_frame"); eh && !eh->bytes.empty()) {
    auto hdr = image.section(".eh_frame_hdr");
    module.eh_frame = hdr ? CfiSection::eh_frame(eh->bytes, eh->address, hdr->bytes, hdr->address)
                          : CfiSection::eh_frame(eh->bytes, eh->address);
  }
  auto debug_frame = image.section(".debug_frame");
  if ((!debug_frame || debug_frame->bytes.empty()) && debug_image) debug_frame = debug_image->section(".debug_frame");
  if (debug_frame && !debug_frame->bytes.empty()) module.debug_frame = CfiSection::debug_frame(debug_frame->bytes);
  // Not a Go binary (the usual case) costs a section and a symbol lookup.
  if (auto go_table = binary::GoPclntab::from_image(image)) module.go_table = std::move(*go_table);
  if (auto text = image.section(".text"); text && !text->bytes.empty()) {
    module.code = text->bytes;
    module.code_address = text->address;
  }
  return module;
}

bool ModuleCfi::read_code(std::uint64_t address, std::span<std::byte> out) const {
  const std::uint64_t file_address = address - load_bias;
  if (file_address < code_address) return false;
  const std::uint64_t offset = file_address - code_address;
  if (offset > code.size() || out.size() > code.size() - offset) return false;
  std::memcpy(out.data(), code.data() + offset, out.size());
  return true;
}

Result<void> ModuleCfiSet::add(ModuleCfi module) {
  if (module.range.empty()) return fail("module ", module.name, " has an empty address range");
  auto it = std::lower_bound(modules_.begin(), modules_.end(), module.range.start,
                             [](const std::unique_ptr<ModuleCfi>& m, target::RemoteAddress start) {
                               return m->range.start < start;
                             });
  if ((it != modules_.end() && (*it)->range.start < module.range.end) ||
      (it != modules_.begin() && module.range.start < (*std::prev(it))->range.end)) {
    return fail("module ", module.name, " at ", module.range.start.to_string(), " overlaps another module");
  }
  modules_.insert(it, std::make_unique<ModuleCfi>(std::move(module)));
  return {};
}

const ModuleCfi* ModuleCfiSet::module_at(std::uint64_t pc) const {
  auto it = std::upper_bound(modules_.begin(), modules_.end(), target::RemoteAddress(pc),
                             [](target::RemoteAddress address, const std::unique_ptr<ModuleCfi>& m) {
                               return address < m->range.start;
                             });
  if (it == modules_.begin()) return nullptr;
  --it;
  return (*it)->range.contains(target::RemoteAddress(pc)) ? it->get() : nullptr;
}

}  // namespace fiberscope::unwind
