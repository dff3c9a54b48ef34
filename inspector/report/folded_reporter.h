// The folded reporter: one line per distinct stack, root first, `a;b;c N`, as flame graph tools
// (flamegraph.pl, speedscope, inferno) read it. Fibers and threads that run no fiber are counted alike.
#pragma once

#include <string>

#include "report/dump.h"

namespace fiberscope::report {

// Renders `dump` as folded stacks, lines sorted for stable output.
std::string render_folded(const Dump& dump);

}  // namespace fiberscope::report
