// The groups view of `fiberscope top`: fibers with identical stacks (report/grouping.h) as one row each —
// count, state, where in user code, ids — biggest first. Enter lists the group's members.
#pragma once

#include "ui/panel.h"
#include "ui/top_model.h"

namespace fiberscope::ui {

class GroupsPanel {
 public:
  explicit GroupsPanel(const TopModel& model) : model_(model) {}

  // Re-reads the model after a new snapshot.
  void refresh() { cursor_.set_count(model_.groups().size()); }
  void draw(Canvas& canvas, const Rect& area);
  // Keys: movement, Enter (the group's fibers), Esc (back).
  KeyResult on_key(Key key);

 private:
  const TopModel& model_;
  ListCursor cursor_;
};

}  // namespace fiberscope::ui
