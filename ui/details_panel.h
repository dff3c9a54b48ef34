// The details of one fiber in `fiberscope top`: its header line, spawn site, findings with their evidence,
// errors, and the full stitched backtrace — every frame with its arguments, file:line and the stack it lives
// on. Scrolls; long lines wrap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ui/panel.h"
#include "ui/top_model.h"

namespace fiberscope::ui {

class DetailsPanel {
 public:
  explicit DetailsPanel(const TopModel& model) : model_(model) {}

  // Shows the fiber with this id (from the top of its details).
  void show(std::uint64_t fiber_id);
  std::uint64_t fiber_id() const { return fiber_id_; }
  void draw(Canvas& canvas, const Rect& area);
  // Keys: movement scrolls; Esc, Left, Backspace go back.
  KeyResult on_key(Key key);

  struct Line {
    std::string text;
    Role role = Role::normal;
    int indent = 0;  // continuation lines of a wrapped line start here
  };
  // The lines shown for the current fiber in the current snapshot (before wrapping).
  std::vector<Line> lines() const;

 private:
  const TopModel& model_;
  std::uint64_t fiber_id_ = 0;
  TextScroll scroll_;
};

}  // namespace fiberscope::ui
