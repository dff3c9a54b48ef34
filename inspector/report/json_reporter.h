// The JSON reporter: the dump for scripts, schema in docs/json-schema.md (schema_version 2).
//
// 64-bit addresses (pc, wait_object, fault_address) are strings ("0x7f...") because JSON numbers lose precision
// past 2^53; counts and times are numbers. write_json streams, thread by thread and fiber by fiber, so a dump of
// 100k fibers never exists as one string.
#pragma once

#include <iosfwd>
#include <string>

#include "report/dump.h"

namespace fiberscope::report {

inline constexpr int kJsonSchemaVersion = 2;

// Renders `dump` as one JSON object followed by a newline.
std::string render_json(const Dump& dump);

// Writes what render_json returns to `out` as it goes; each fiber's stack comes from `stacks` when given.
void write_json(const Dump& dump, std::ostream& out, const FiberStackSource& stacks = {});

}  // namespace fiberscope::report
