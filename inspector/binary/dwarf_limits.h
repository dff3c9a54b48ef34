// Caps on hostile DWARF, shared by the index and the readers under it (lists, .debug_aranges, libdwarf guards).
// A real binary stays far below every one; docs/limits.md lists them with the inspector's other caps.
#pragma once

#include <cstddef>

namespace fiberscope::binary {

constexpr std::size_t kMaxCompileUnits = 1'000'000;  // CUs, .debug_aranges sets, rnglists/loclists tables
constexpr std::size_t kMaxDiesPerUnit = 4'000'000;
constexpr unsigned kMaxDieDepth = 64;
constexpr unsigned kMaxReferenceHops = 8;  // DW_AT_abstract_origin / DW_AT_specification / type chains
constexpr unsigned kMaxScopeDepth = 32;     // namespaces, classes and functions qualifying one name
constexpr std::size_t kMaxListEntries = 100'000;  // one range or location list, one aranges set, one file table
constexpr std::size_t kMaxLineRows = 20'000'000;

}  // namespace fiberscope::binary
