#include "report/folded_reporter.h"

#include <map>
#include <unordered_map>

namespace fiberscope::report {
namespace {

// Folded lines split frames on ';' and end with " count": a name holding ';' or a newline would change the
// stack's shape, so those become ':' and ' '.
std::string folded_name(std::string name) {
  for (char& c : name) {
    if (c == ';') c = ':';
    if (c == '\n' || c == '\r') c = ' ';
  }
  return name;
}

std::string folded_stack(const Stack& stack) {
  std::string line;
  for (auto frame = stack.frames.rbegin(); frame != stack.frames.rend(); ++frame) {
    if (!line.empty()) line += ';';
    line += folded_name(function_label(*frame));
  }
  return line.empty() ? "[no frames]" : line;
}

}  // namespace

std::string render_folded(const Dump& dump) {
  std::map<std::string, std::uint64_t> counts;
  // Fibers sharing one FrameList (build_dump without arguments) fold to one line: counted per list first.
  std::unordered_map<const void*, std::uint64_t> fibers_of_list;
  for (const Fiber& fiber : dump.fibers) {
    if (const void* list = fiber.stack.frames.identity()) {
      ++fibers_of_list[list];
    } else {
      ++counts[folded_stack(fiber.stack)];
    }
  }
  for (const Fiber& fiber : dump.fibers) {
    auto it = fibers_of_list.find(fiber.stack.frames.identity());
    if (it == fibers_of_list.end() || it->second == 0) continue;
    counts[folded_stack(fiber.stack)] += it->second;
    it->second = 0;  // counted
  }
  for (const Thread& thread : dump.threads)
    if (!thread.fiber_id) ++counts[folded_stack(thread.stack)];
  std::string out;
  for (const auto& [stack, count] : counts) out += stack + " " + std::to_string(count) + "\n";
  return out;
}

}  // namespace fiberscope::report
