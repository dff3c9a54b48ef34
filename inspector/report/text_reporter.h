// The text reporter: a dump shaped like Go's goroutine dump, for people.
//
//   fiber 17 "conn-reader" [chan receive, 3m12s, thread 4243]:
//   handle_conn(fd=7, buf=0x7f0012345000)
//   	/src/server.cpp:42 [fiber stack]
//   created by main at /src/server.cpp:100
//
// With grouping, fibers whose stacks have the same function sequence (and state) collapse into one entry
// ("42 fibers [chan receive]: 3, 7, 9-40"), biggest group first.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "report/dump.h"

namespace fiberscope::report {

struct TextOptions {
  enum class Grouping : std::uint8_t { automatic, on, off };
  Grouping grouping = Grouping::automatic;  // automatic: on past kAutoGroupFibers fibers
};
inline constexpr std::size_t kAutoGroupFibers = 100;

// Renders `dump` as text.
std::string render_text(const Dump& dump, const TextOptions& options = {});

// Writes what render_text returns to `out` as it goes, fiber by fiber. The fibers it prints one by one, with
// arguments, take their stacks from `stacks` when given: every fiber without grouping, else those alone in their
// group and those kept visible for a finding, an error, a torn record or a crash (grouped entries print none).
void write_text(const Dump& dump, std::ostream& out, const TextOptions& options = {},
                const FiberStackSource& stacks = {});

// `text` with control characters shown as \xNN: names and values come from the target and must not drive the
// terminal.
std::string printable(std::string_view text);

// "fd=7", "len=<optimized out>": one argument as the reporters and the ui show it.
std::string format_argument(const Argument& arg);

// "3m12s", "12s", "412ms": Go-style durations for "time in state".
std::string format_duration(std::uint64_t nanoseconds);

// "3, 7, 9-40": sorted ids with consecutive runs collapsed; after `max_runs` runs, ", ... (N more)".
std::string format_id_ranges(std::vector<std::uint64_t> ids, std::size_t max_runs = 32);

}  // namespace fiberscope::report
