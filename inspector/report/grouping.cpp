#include "report/grouping.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace fiberscope::report {

namespace {

// The part of the key the frames make: a fiber's function sequence and why its unwind stopped.
std::string frames_key(const Stack& stack) {
  std::string key;
  for (const Frame& frame : stack.frames) {
    key += '\n';
    key += function_label(frame);
    if (frame.inlined) key += " (inlined)";
  }
  if (!stack.stop_reason.empty()) key += "\n!" + stack.stop_reason;
  return key;
}

}  // namespace

std::string stack_group_key(const Fiber& fiber) { return state_label(fiber) + frames_key(fiber.stack); }

std::vector<FiberGroup> group_fibers(const std::vector<const Fiber*>& fibers) {
  std::unordered_map<std::string, std::size_t> index_of_key;
  std::vector<FiberGroup> groups;
  std::vector<std::uint64_t> smallest_id;
  // Fibers that share one FrameList (build_dump without arguments) share its key: worked out once per list.
  std::unordered_map<const void*, std::string> key_of_list;
  for (const Fiber* fiber : fibers) {
    std::string key = state_label(*fiber);
    if (const void* list = fiber->stack.frames.identity(); list && fiber->stack.stop_reason.empty()) {
      auto [known, added] = key_of_list.try_emplace(list);
      if (added) known->second = frames_key(fiber->stack);
      key += known->second;
    } else {
      key += frames_key(fiber->stack);
    }
    auto [it, inserted] = index_of_key.try_emplace(std::move(key), groups.size());
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
