// The JSON reporter: the dump for scripts, schema in docs/json-schema.md (schema_version 2).
//
// 64-bit addresses (pc, wait_object, fault_address) are strings ("0x7f...") because JSON numbers lose precision
// past 2^53; counts and times are numbers.
#pragma once

#include <string>

#include "report/dump.h"

namespace fiberscope::report {

inline constexpr int kJsonSchemaVersion = 2;

// Renders `dump` as one JSON object followed by a newline.
std::string render_json(const Dump& dump);

}  // namespace fiberscope::report
