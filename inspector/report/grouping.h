// Grouping fibers whose stacks look alike, shared by the text reporter ("42 fibers [chan receive]: 3, 7, 9-40")
// and the ui's groups view: two fibers belong together when their state and function sequence are the same.
//
//   for (const FiberGroup& group : group_fibers(fibers))   // biggest first
//     show(*group.members.front(), group.members.size());
#pragma once

#include <string>
#include <vector>

#include "report/dump.h"

namespace fiberscope::report {

// The key two fibers share when they belong to one group: state label, function labels, why the unwind stopped.
std::string stack_group_key(const Fiber& fiber);

struct FiberGroup {
  std::vector<const Fiber*> members;  // in the order given to group_fibers; never empty
};

// Groups `fibers` by stack_group_key, biggest group first, ties broken by the smallest fiber id.
std::vector<FiberGroup> group_fibers(const std::vector<const Fiber*>& fibers);

}  // namespace fiberscope::report
