// The findings view of `fiberscope top`: every finding of the checks (which fiber, which kind, in which frame,
// the first line of the message). Enter opens the fiber's details, where the whole evidence is.
#pragma once

#include "ui/panel.h"
#include "ui/top_model.h"

namespace fiberscope::ui {

class FindingsPanel {
 public:
  explicit FindingsPanel(const TopModel& model) : model_(model) {}

  void draw(Canvas& canvas, const Rect& area);
  // Keys: movement, Enter (the finding's fiber), Esc (back).
  KeyResult on_key(Key key);

 private:
  const TopModel& model_;
  ListCursor cursor_;
};

}  // namespace fiberscope::ui
