#include "ui/canvas.h"

#include <algorithm>

namespace fiberscope::ui {

Canvas::Canvas(int width, int height)
    : width_(std::max(width, 0)),
      height_(std::max(height, 0)),
      chars_(static_cast<std::size_t>(width_) * static_cast<std::size_t>(height_), ' '),
      roles_(chars_.size(), Role::normal) {}

int Canvas::put(int row, int column, std::string_view text, Role role) {
  if (row < 0 || row >= height_) return column;
  for (char c : text) {
    if (column >= width_) break;
    if (column >= 0) {
      const auto byte = static_cast<unsigned char>(c);
      const std::size_t at = static_cast<std::size_t>(row) * static_cast<std::size_t>(width_) +
                             static_cast<std::size_t>(column);
      chars_[at] = (byte >= 0x20 && byte < 0x7f) ? c : '?';
      roles_[at] = role;
    }
    ++column;
  }
  return column;
}

void Canvas::fill_row(int row, Role role) {
  if (row < 0 || row >= height_) return;
  const std::size_t begin = static_cast<std::size_t>(row) * static_cast<std::size_t>(width_);
  std::fill_n(chars_.begin() + static_cast<std::ptrdiff_t>(begin), width_, ' ');
  std::fill_n(roles_.begin() + static_cast<std::ptrdiff_t>(begin), width_, role);
}

void Canvas::paint(int row, int column, int count, Role role) {
  for (int i = 0; i < count; ++i)
    if (inside(row, column + i))
      roles_[static_cast<std::size_t>(row) * static_cast<std::size_t>(width_) +
             static_cast<std::size_t>(column + i)] = role;
}

char Canvas::char_at(int row, int column) const {
  if (!inside(row, column)) return ' ';
  return chars_[static_cast<std::size_t>(row) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(column)];
}

Role Canvas::role_at(int row, int column) const {
  if (!inside(row, column)) return Role::normal;
  return roles_[static_cast<std::size_t>(row) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(column)];
}

std::string Canvas::row_text(int row) const {
  if (row < 0 || row >= height_) return {};
  const auto begin = chars_.begin() + static_cast<std::ptrdiff_t>(row) * width_;
  std::string text(begin, begin + width_);
  text.erase(text.find_last_not_of(' ') + 1);
  return text;
}

std::string Canvas::to_text() const {
  std::string text;
  for (int row = 0; row < height_; ++row) text += row_text(row) + "\n";
  return text;
}

}  // namespace fiberscope::ui
