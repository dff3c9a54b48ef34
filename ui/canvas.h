// Canvas: what a panel draws into — a grid of one-byte cells, each with a colour role — so that panels know
// nothing of curses. The curses terminal (curses_terminal.h) shows a canvas; tests print one as text.
//
//   Canvas canvas(80, 24);
//   canvas.fill_row(0, Role::header);
//   canvas.put(0, 1, "fiberscope top", Role::title);
//   std::string screen = canvas.to_text();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fiberscope::ui {

// What a cell means; the terminal maps roles to colours (or to bold/reverse without colours).
enum class Role : std::uint8_t {
  normal,
  title,         // the program's name in the header
  label,         // header labels ("fibers", "pause")
  value,         // header values
  column_title,  // the fiber list's column titles
  sorted_title,  // the column the list is sorted by
  selected,      // the selection bar
  dim,           // secondary text (file:line, ids of a group)
  running,
  runnable,
  syscall,
  foreign,
  waiting,
  sleeping,
  finding,       // findings and the count of findings
  error,         // capture errors, "target exited"
  footer_key,    // "F1" in the footer
  footer_text,   // "Help" in the footer
  count_,
};

class Canvas {
 public:
  Canvas(int width, int height);

  int width() const { return width_; }
  int height() const { return height_; }

  // Writes `text` from (row, column), clipped at the right edge; returns the column after the text. Bytes
  // outside printable ASCII become '?': one byte is one column, so layout never depends on the terminal's
  // idea of a character's width.
  int put(int row, int column, std::string_view text, Role role = Role::normal);
  // Blanks `row` and gives every cell `role` (a bar such as the selection or the footer).
  void fill_row(int row, Role role);
  // Gives the cells [column, column + count) of `row` the role `role`, keeping their characters.
  void paint(int row, int column, int count, Role role);

  char char_at(int row, int column) const;
  Role role_at(int row, int column) const;
  // One row's characters, trailing blanks removed.
  std::string row_text(int row) const;
  // Every row, each ending in '\n', trailing blanks removed: the form golden screens are stored in.
  std::string to_text() const;

 private:
  bool inside(int row, int column) const {
    return row >= 0 && row < height_ && column >= 0 && column < width_;
  }
  int width_;
  int height_;
  std::vector<char> chars_;
  std::vector<Role> roles_;
};

}  // namespace fiberscope::ui
