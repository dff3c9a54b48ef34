#include "report/grouping.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace fiberscope::report {

std::string stack_group_key(const Fiber& fiber) {
  std::string key = state_label(fiber);
  for (const Frame& frame : fiber.stack.frames) {
    key += '\n';
    key += function_label(frame);
    if (frame.inlined) key += " (inlined)";
  }
  if (!fiber.stack.stop_reason.empty()) key += "\n!" + fiber.stack.stop_reason;
  return key;
}

std::vector<FiberGroup> group_fibers(const std::vector<const Fiber*>& fibers) {
  std::unordered_map<std::string, std::size_t> index_of_key;
  std::vector<FiberGroup> groups;
  std::vector<std::uint64_t> smallest_id;
  for (const Fiber* fiber : fibers) {
    auto [it, inserted] = index_of_key.try_emplace(stack_group_key(*fiber), groups.size());
    if (inserted) {
      groups.push_back({});
      smallest_id.push_back(std::numeric_limits<std::uint64_t>::max());
    }
    groups[it->second].members.push_back(fiber);
    smallest_id[it->second] = std::min(smallest_id[it->second], fiber->id);
  }
  std::vector<std::size_t> order(groups.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (groups[a].members.size() != groups[b].members.size())
      return groups[a].members.size() > groups[b].members.size();
    return smallest_id[a] < smallest_id[b];
  });
  std::vector<FiberGroup> sorted;
  sorted.reserve(groups.size());
  for (std::size_t i : order) sorted.push_back(std::move(groups[i]));
  return sorted;
}

}  // namespace fiberscope::report
