// What every panel of `fiberscope top` shares: the rectangle it draws in, what a key did (the screen acts on
// it: quit, go back, open a fiber or a group), and the selection/scrolling of a list longer than its window.
// Panels draw into a Canvas and read a TopModel; none of them knows curses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ui/canvas.h"
#include "ui/keys.h"

namespace fiberscope::ui {

struct Rect {
  int row = 0;
  int column = 0;
  int width = 0;
  int height = 0;
};

// What a key did. The screen acts on everything past `handled`.
struct KeyResult {
  enum class Action : std::uint8_t {
    ignored,     // not this panel's key: the screen may use it
    handled,     // the panel changed; redraw
    quit,
    back,        // leave this panel for the previous one
    show_fiber,  // open the details of `fiber_id`
    show_group,  // list the members of the group with `group_key`
  };
  Action action = Action::ignored;
  std::uint64_t fiber_id = 0;
  std::string group_key;

  static KeyResult ignored() { return {}; }
  static KeyResult handled() { return {Action::handled, 0, {}}; }
  static KeyResult back() { return {Action::back, 0, {}}; }
  static KeyResult show_fiber(std::uint64_t id) { return {Action::show_fiber, id, {}}; }
  static KeyResult show_group(std::string key) { return {Action::show_group, 0, std::move(key)}; }
};

// The selection and first visible row of a list drawn `height` rows at a time. Only the visible rows are ever
// drawn, so a list of 10k fibers costs what a screenful costs.
class ListCursor {
 public:
  // The list now has `count` items; the selection stays in range.
  void set_count(std::size_t count);
  void select(std::size_t index);
  std::size_t selected() const { return selected_; }
  std::size_t count() const { return count_; }
  // Moves the selection for arrow, page, home/end keys (and j/k); false for any other key.
  bool on_key(Key key);
  // The first item to draw in a window of `height` rows, scrolled so that the selection is visible.
  std::size_t first_visible(int height);

 private:
  std::size_t count_ = 0;
  std::size_t selected_ = 0;
  std::size_t top_ = 0;
  int page_rows_ = 10;  // the height of the last window drawn
};

// A scrollable page of text lines (details, help): the first line shown, moved by the same keys.
class TextScroll {
 public:
  bool on_key(Key key);
  // The first line to draw of `total` lines in `height` rows.
  std::size_t first_visible(std::size_t total, int height);
  void reset() { top_ = 0; }

 private:
  std::size_t top_ = 0;
  int page_rows_ = 10;
};

// Text clipped or padded to exactly `width` columns; numbers right-aligned with `right`.
std::string fit(std::string_view text, int width, bool right = false);

}  // namespace fiberscope::ui
