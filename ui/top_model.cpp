#include "ui/top_model.h"

#include <algorithm>

namespace fiberscope::ui {
namespace {

bool starts_with_any(std::string_view text, std::initializer_list<std::string_view> prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view prefix) { return text.starts_with(prefix); });
}

// The runtime's own frames and what it calls through: its namespace and assembly trampolines (fiberscope_*), its
// sources and public headers (inlined frames carry DWARF's unqualified names, so the file is what tells), the
// standard library and libc. Users recognise their fiber by the first frame after these.
bool is_runtime_frame(const report::Frame& frame) {
  const std::string_view name = frame.function;
  if (starts_with_any(name, {"fiber::", "fiberscope_", "std::", "__", "_start", "start_thread", "clone"})) return true;
  const std::string_view file = frame.file;
  for (std::string_view part : {"/include/fiberscope/", "/runtime_lib/src/", "/sysdeps/", "/usr/include/"})
    if (file.find(part) != std::string_view::npos) return true;
  return starts_with_any(frame.module, {"libc.so", "libc-", "libstdc++", "libpthread", "ld-linux", "libfiberscope"});
}

// A lambda's body is user code, but "operator()" names nothing a user recognises: the function around it does.
bool is_anonymous_lambda(const report::Frame& frame) { return frame.function.starts_with("operator()"); }

std::string_view base_name(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

int compare_optional(const auto& a, const auto& b) {
  if (a && b) return *a < *b ? -1 : (*b < *a ? 1 : 0);
  return a ? -1 : (b ? 1 : 0);  // known values before unknown ones
}

}  // namespace

std::string_view without_parameters(std::string_view function) {
  std::string_view trimmed = function;
  if (trimmed.ends_with(" const")) trimmed.remove_suffix(6);
  if (!trimmed.ends_with(')')) return function;
  int depth = 0;
  for (std::size_t i = trimmed.size(); i-- > 0;) {
    if (trimmed[i] == ')') ++depth;
    if (trimmed[i] == '(' && --depth == 0) return i == 0 ? function : trimmed.substr(0, i);
  }
  return function;
}

std::string_view category_name(StateCategory category) {
  switch (category) {
    case StateCategory::running: return "running";
    case StateCategory::runnable: return "runnable";
    case StateCategory::syscall: return "syscall";
    case StateCategory::foreign: return "foreign";
    case StateCategory::waiting: return "waiting";
    case StateCategory::sleeping: return "sleeping";
    case StateCategory::other:
    case StateCategory::count_: break;
  }
  return "other";
}

StateCategory categorize(const report::Fiber& fiber) {
  if (fiber.state == "running") return StateCategory::running;
  if (fiber.state == "runnable") return StateCategory::runnable;
  if (fiber.state == "syscall") return StateCategory::syscall;
  if (fiber.state == "foreign") return StateCategory::foreign;
  if (fiber.state == "waiting") return fiber.wait_reason == "sleep" ? StateCategory::sleeping : StateCategory::waiting;
  return StateCategory::other;
}

const report::Frame* user_frame(const report::Fiber& fiber) {
  const auto& frames = fiber.stack.frames;
  const report::Frame* fallback = nullptr;
  for (const report::Frame& frame : frames) {
    if (is_runtime_frame(frame)) continue;
    if (!frame.file.empty() && frame.line > 0 && !is_anonymous_lambda(frame)) return &frame;
    if (!fallback) fallback = &frame;
  }
  if (fallback) return fallback;
  return frames.empty() ? nullptr : &frames.front();
}

std::string short_location(const report::Frame& frame) {
  // An unnamed frame's label "?? (module +0xoffset)" has no parameter list to drop.
  const std::string label = report::function_label(frame);
  std::string text(frame.function.empty() ? std::string_view(label) : without_parameters(label));
  if (!frame.file.empty() && frame.line > 0)
    text += " " + std::string(base_name(frame.file)) + ":" + std::to_string(frame.line);
  return text;
}

void TopModel::set_dump(report::Dump dump, DumpArgs args) {
  dump_ = std::move(dump);
  has_dump_ = true;
  args_ = args;
  fibers_with_args_.clear();
  rows_.clear();
  row_by_id_.clear();
  counts_ = {};
  rows_.reserve(dump_.fibers.size());
  std::vector<const report::Fiber*> fibers;
  fibers.reserve(dump_.fibers.size());
  for (const report::Fiber& fiber : dump_.fibers) {
    FiberRow row;
    row.fiber = &fiber;
    row.category = categorize(fiber);
    if (const report::Frame* frame = user_frame(fiber)) row.where = short_location(*frame);
    ++counts_[static_cast<std::size_t>(row.category)];
    row_by_id_.try_emplace(fiber.id, rows_.size());
    rows_.push_back(std::move(row));
    fibers.push_back(&fiber);
  }
  for (const report::Finding& finding : dump_.findings) {
    if (!finding.fiber_id) continue;
    auto it = row_by_id_.find(*finding.fiber_id);
    if (it != row_by_id_.end()) ++rows_[it->second].findings;
  }
  groups_ = report::group_fibers(fibers);
  group_keys_.clear();
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    group_keys_.push_back(report::stack_group_key(*groups_[g].members.front()));
    for (const report::Fiber* member : groups_[g].members)
      rows_[static_cast<std::size_t>(member - dump_.fibers.data())].group = g;
  }
}

bool TopModel::has_args(std::uint64_t fiber_id) const {
  return args_ == DumpArgs::every_fiber || fibers_with_args_.contains(fiber_id);
}

void TopModel::add_args(std::uint64_t fiber_id, report::Stack stack_with_args) {
  auto it = row_by_id_.find(fiber_id);
  if (it == row_by_id_.end()) return;
  FiberRow& row = rows_[it->second];
  // Only the stack is replaced, in place (rows and groups point at the fiber). The frames are the lean ones with
  // arguments added, so the group key is unchanged; `where` is text copied from them and is recomputed so that the
  // row can never disagree with the details.
  report::Fiber& fiber = dump_.fibers[static_cast<std::size_t>(row.fiber - dump_.fibers.data())];
  fiber.stack = std::move(stack_with_args);
  if (const report::Frame* frame = user_frame(fiber)) row.where = short_location(*frame);
  if (args_ == DumpArgs::on_request) fibers_with_args_.insert(fiber_id);
}

const FiberRow* TopModel::row_of(std::uint64_t fiber_id) const {
  auto it = row_by_id_.find(fiber_id);
  return it == row_by_id_.end() ? nullptr : &rows_[it->second];
}

std::vector<std::size_t> TopModel::findings_of(std::uint64_t fiber_id) const {
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < dump_.findings.size(); ++i)
    if (dump_.findings[i].fiber_id == fiber_id) indices.push_back(i);
  return indices;
}

std::vector<std::size_t> TopModel::select(const FiberFilter& filter, SortColumn column, bool descending) const {
  std::optional<std::size_t> group;
  if (filter.group_key) {
    auto it = std::find(group_keys_.begin(), group_keys_.end(), *filter.group_key);
    if (it == group_keys_.end()) return {};  // the group no longer exists in this snapshot
    group = static_cast<std::size_t>(it - group_keys_.begin());
  }
  std::vector<std::size_t> selected;
  selected.reserve(rows_.size());
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    const FiberRow& row = rows_[i];
    if (filter.state && row.category != *filter.state) continue;
    if (group && row.group != *group) continue;
    if (filter.with_findings && row.findings == 0) continue;
    if (!filter.text.empty() && row.fiber->name.find(filter.text) == std::string::npos) {
      const auto& frames = row.fiber->stack.frames;
      const bool in_function = std::any_of(frames.begin(), frames.end(), [&](const report::Frame& frame) {
        return frame.function.find(filter.text) != std::string::npos;
      });
      if (!in_function) continue;
    }
    selected.push_back(i);
  }
  auto compare = [&](const FiberRow& a, const FiberRow& b) -> int {
    switch (column) {
      case SortColumn::name: return a.fiber->name.compare(b.fiber->name);
      case SortColumn::state: {
        const std::string sa = report::state_label(*a.fiber), sb = report::state_label(*b.fiber);
        return sa.compare(sb);
      }
      case SortColumn::time: return compare_optional(a.fiber->time_in_state_ns, b.fiber->time_in_state_ns);
      case SortColumn::thread: return compare_optional(a.fiber->thread, b.fiber->thread);
      case SortColumn::where: return a.where.compare(b.where);
      case SortColumn::id:
      case SortColumn::count_: break;
    }
    return 0;
  };
  std::sort(selected.begin(), selected.end(), [&](std::size_t ia, std::size_t ib) {
    const FiberRow& a = rows_[ia];
    const FiberRow& b = rows_[ib];
    const int order = compare(a, b);
    if (order != 0) return descending ? order > 0 : order < 0;
    return descending ? a.fiber->id > b.fiber->id : a.fiber->id < b.fiber->id;
  });
  return selected;
}

}  // namespace fiberscope::ui
