// ModuleCfi: the call frame information of one module loaded in the target; CfiSource: how the Unwinder finds the
// module that covers a pc.
//
//   ModuleCfiSet modules;
//   modules.add(ModuleCfi::from_image(*image, load_bias, mapped_range));   // for every executable mapping
//   Unwinder unwinder(modules);
//
// The symbolization layer's module map can implement CfiSource itself instead of using ModuleCfiSet. A ModuleCfi
// points into its ElfImage's section bytes: the image must outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "binary/elf_image.h"
#include "binary/go_pclntab.h"
#include "target/remote_address.h"
#include "unwind/cfi_section.h"

namespace fiberscope::unwind {

struct ModuleCfi {
  std::string name;                    // the file's path, for messages
  target::AddressRange range;          // where the module is mapped in the target
  std::uint64_t load_bias = 0;         // target address = file address + load_bias
  std::optional<CfiSection> eh_frame;
  std::optional<CfiSection> debug_frame;
  std::span<const std::byte> code;     // .text, to recognise the signal trampoline where no CFI describes it
  std::uint64_t code_address = 0;      // file address of `code`
  // A Go binary's pclntab: frame sizes (pcsp) where no CFI covers a Go function, and Go's own ends of stacks.
  std::shared_ptr<const binary::GoPclntab> go_table;

  // The CFI of `image` mapped at `range` with `load_bias`. `debug_image` (a separate debug file, may be null)
  // supplies .debug_frame when the image has none. Both images must outlive the result.
  static ModuleCfi from_image(const binary::ElfImage& image, std::uint64_t load_bias, target::AddressRange range,
                              const binary::ElfImage* debug_image = nullptr);

  // Copies the module's code at target address `address` into `out`; false if not all of it is in `code`.
  bool read_code(std::uint64_t address, std::span<std::byte> out) const;
};

// Finds the module covering a target address.
class CfiSource {
 public:
  virtual ~CfiSource() = default;
  // The module mapped at target address `pc`, or null.
  virtual const ModuleCfi* module_at(std::uint64_t pc) const = 0;
};

// A CfiSource over a set of non-overlapping modules.
class ModuleCfiSet final : public CfiSource {
 public:
  // Adds `module`; fails if its range is empty or overlaps a module already present.
  Result<void> add(ModuleCfi module);
  const ModuleCfi* module_at(std::uint64_t pc) const override;
  std::size_t size() const { return modules_.size(); }

 private:
  std::vector<std::unique_ptr<ModuleCfi>> modules_;  // sorted by range.start; pointers stay valid
};

}  // namespace fiberscope::unwind
