// TopModel: what `fiberscope top` knows about one snapshot, without any screen — one row per fiber with the
// columns the list shows, counts by state, groups of identical stacks and the findings of each fiber — and the
// sorting and filtering of the fiber list.
//
//   TopModel model;
//   model.set_dump(session::build_dump(inspection, {.fiber_args = false}), DumpArgs::on_request);
//   if (!model.has_args(17)) model.add_args(17, stack_with_args);   // what the details of fiber 17 show
//   for (std::size_t i : model.select(filter, SortColumn::time, true)) show(model.rows()[i]);
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "report/dump.h"
#include "report/grouping.h"

namespace fiberscope::ui {

// The states the header counts. `sleeping` is a fiber waiting in a sleep; `other` holds states a healthy table
// never shows (dead, free, invalid).
enum class StateCategory : std::uint8_t { running, runnable, syscall, foreign, waiting, sleeping, other, count_ };
inline constexpr std::size_t kStateCategories = static_cast<std::size_t>(StateCategory::count_);
// "running", "runnable", ..., "other".
std::string_view category_name(StateCategory category);
StateCategory categorize(const report::Fiber& fiber);

// The first frame outside the runtime (fiber::, fiberscope_ trampolines, the runtime's sources and headers, std::,
// libc): where the user's code is. Prefers a frame with file:line that is not a bare lambda. Null when the stack
// is empty.
const report::Frame* user_frame(const report::Fiber& fiber);
// A demangled name without its trailing parameter list: "ns::f<int>(int, char*) const" -> "ns::f<int>".
std::string_view without_parameters(std::string_view function);
// "handle_conn server.cpp:42": a frame's function (without its parameter list) and the file's base name.
std::string short_location(const report::Frame& frame);

struct FiberRow {
  const report::Fiber* fiber = nullptr;
  StateCategory category = StateCategory::other;
  std::string where;              // short_location(user frame), "" without frames
  std::size_t findings = 0;       // findings about this fiber
  std::size_t group = 0;          // index into TopModel::groups()
};

enum class SortColumn : std::uint8_t { id, name, state, time, thread, where, count_ };
inline constexpr std::size_t kSortColumns = static_cast<std::size_t>(SortColumn::count_);

struct FiberFilter {
  std::optional<StateCategory> state;     // only fibers in this state
  std::string text;                       // substring of the name or of any frame's function
  std::optional<std::string> group_key;   // only members of the group with this report::stack_group_key
  bool with_findings = false;             // only fibers with findings
};

// Which fibers of a dump come with their arguments: every one, or (a lean dump: session::BuildOptions::fiber_args
// = false, what `top` takes at every refresh) only those given to TopModel::add_args.
enum class DumpArgs : std::uint8_t { every_fiber, on_request };

class TopModel {
 public:
  // Replaces the snapshot shown; everything derived is rebuilt.
  void set_dump(report::Dump dump, DumpArgs args = DumpArgs::every_fiber);
  // Whether the stack of this fiber carries its arguments (see DumpArgs).
  bool has_args(std::uint64_t fiber_id) const;
  // Replaces the stack of a fiber of a lean dump with the same stack read with arguments. Ignored for a fiber that
  // is not in the dump.
  void add_args(std::uint64_t fiber_id, report::Stack stack_with_args);

  bool has_dump() const { return has_dump_; }
  const report::Dump& dump() const { return dump_; }
  const std::vector<FiberRow>& rows() const { return rows_; }
  // Identical stacks, biggest group first.
  const std::vector<report::FiberGroup>& groups() const { return groups_; }
  const std::string& group_key(std::size_t group) const { return group_keys_[group]; }
  std::size_t count(StateCategory category) const { return counts_[static_cast<std::size_t>(category)]; }
  // The row of the fiber with this id, or null.
  const FiberRow* row_of(std::uint64_t fiber_id) const;
  // Indices into dump().findings of the findings about this fiber.
  std::vector<std::size_t> findings_of(std::uint64_t fiber_id) const;

  // Indices into rows() that pass `filter`, ordered by `column` (ties by id).
  std::vector<std::size_t> select(const FiberFilter& filter, SortColumn column, bool descending) const;

 private:
  bool has_dump_ = false;
  report::Dump dump_;
  std::vector<FiberRow> rows_;
  std::unordered_map<std::uint64_t, std::size_t> row_by_id_;
  std::vector<report::FiberGroup> groups_;
  std::vector<std::string> group_keys_;
  std::array<std::size_t, kStateCategories> counts_{};
  DumpArgs args_ = DumpArgs::every_fiber;
  std::unordered_set<std::uint64_t> fibers_with_args_;  // of a lean dump: the fibers whose details were opened
};

}  // namespace fiberscope::ui
