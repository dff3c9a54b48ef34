#include "report/folded_reporter.h"

#include <map>

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
  for (const Fiber& fiber : dump.fibers) ++counts[folded_stack(fiber.stack)];
  for (const Thread& thread : dump.threads)
    if (!thread.fiber_id) ++counts[folded_stack(thread.stack)];
  std::string out;
  for (const auto& [stack, count] : counts) out += stack + " " + std::to_string(count) + "\n";
  return out;
}

}  // namespace fiberscope::report
