// Turning the ranges a planner asks for into the ranges a capture copies.
//
// Planners ask for whatever the target's records say (stacks, the fiber table), so requests may overlap, repeat,
// wrap, be enormous or point at unmapped memory. plan_copies sorts and merges them, drops the parts in mappings
// known to be unreadable (guard pages), splits them where they leave or enter a mapping, and applies the
// capture's size caps, describing everything it dropped in `warnings`. With CaptureOptions::bridged_gap_bytes it
// also joins ranges that close in one readable mapping.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "target/live_capture.h"
#include "target/snapshot.h"

namespace fiberscope::target {

// Returns sorted, disjoint ranges covering `requested` minus what lies in unreadable mappings, within the caps of
// `options`. Parts outside every mapping are kept (the maps may predate them) as ranges of their own. With no
// `mappings` (maps unreadable) nothing is clipped.
std::vector<AddressRange> plan_copies(std::span<const AddressRange> requested, std::span<const Mapping> mappings,
                                      const CaptureOptions& options, std::vector<std::string>& warnings);

// `ranges` minus `copied` (both sorted and disjoint, as plan_copies returns them): what is left to copy once
// `copied` is in the snapshot. The result is sorted and disjoint.
std::vector<AddressRange> subtract_ranges(std::span<const AddressRange> ranges, std::span<const AddressRange> copied);

// True if `range` overlaps any of `sorted` (sorted and disjoint).
bool overlaps_any(AddressRange range, std::span<const AddressRange> sorted);

}  // namespace fiberscope::target
