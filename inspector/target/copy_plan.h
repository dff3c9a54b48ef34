// Turning the ranges a planner asks for into the ranges a capture copies.
//
// Planners ask for whatever the target's records say (stacks, the fiber table), so requests may overlap, repeat,
// wrap, be enormous or point at unmapped memory. plan_copies sorts and merges them, clips them to readable
// mappings and applies the capture's size caps, describing everything it dropped in `warnings`.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "target/live_capture.h"
#include "target/snapshot.h"

namespace fiberscope::target {

// Returns sorted, disjoint, non-adjacent ranges covering the readable part of `requested`, within the caps of
// `options`. With no `mappings` (maps unreadable) nothing is clipped.
std::vector<AddressRange> plan_copies(std::span<const AddressRange> requested, std::span<const Mapping> mappings,
                                      const CaptureOptions& options, std::vector<std::string>& warnings);

}  // namespace fiberscope::target
