// The fiber list of `fiberscope top`: one row per fiber (id, name, state, time in state, worker thread,
// findings mark, where in user code), sorted by any column, filtered by state, by text and by group. The
// selection follows its fiber across snapshots.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ui/panel.h"
#include "ui/top_model.h"

namespace fiberscope::ui {

class FiberListPanel {
 public:
  explicit FiberListPanel(const TopModel& model) : model_(model) {}

  // Re-reads the model (new snapshot, new filter or order), keeping the selected fiber selected if it is still
  // listed.
  void refresh();
  void draw(Canvas& canvas, const Rect& area);
  // Keys: movement, Enter (details), s/</> (sort column), r (reverse), f (cycle state filter), n (next fiber
  // with findings).
  KeyResult on_key(Key key);

  FiberFilter& filter() { return filter_; }
  const FiberFilter& filter() const { return filter_; }
  SortColumn sort_column() const { return column_; }
  bool descending() const { return descending_; }
  void sort_by(SortColumn column, bool descending);
  // Selects the fiber with this id; clears the filters if they hide it. False if no such fiber.
  bool select_fiber(std::uint64_t fiber_id);
  std::optional<std::uint64_t> selected_fiber() const;
  std::size_t listed() const { return visible_.size(); }
  // "state=waiting text=conn group sorted by time v": what limits and orders the list.
  std::string describe() const;

 private:
  void select_next_with_findings();
  const TopModel& model_;
  FiberFilter filter_;
  SortColumn column_ = SortColumn::id;
  bool descending_ = false;
  std::vector<std::size_t> visible_;  // indices into model_.rows()
  ListCursor cursor_;
  std::optional<std::uint64_t> selected_id_;
};

// "ID", "NAME", ... the title of a sort column.
std::string_view sort_column_title(SortColumn column);

}  // namespace fiberscope::ui
