#include "ui/panel.h"

#include <algorithm>
#include <optional>

namespace fiberscope::ui {
namespace {

// How far a key moves a cursor; nullopt for keys that do not move it. `to_end` for End.
struct Move {
  long long delta = 0;
  bool to_start = false;
  bool to_end = false;
};

std::optional<Move> movement(Key key, int page_rows) {
  const long long page = std::max(page_rows - 1, 1);
  switch (key) {
    case keys::kUp: case 'k': return Move{-1};
    case keys::kDown: case 'j': return Move{1};
    case keys::kPageUp: return Move{-page};
    case keys::kPageDown: return Move{page};
    case keys::kHome: return Move{0, true, false};
    case keys::kEnd: return Move{0, false, true};
    default: return std::nullopt;
  }
}

}  // namespace

void ListCursor::set_count(std::size_t count) {
  count_ = count;
  if (selected_ >= count_) selected_ = count_ == 0 ? 0 : count_ - 1;
}

void ListCursor::select(std::size_t index) { selected_ = count_ == 0 ? 0 : std::min(index, count_ - 1); }

bool ListCursor::on_key(Key key) {
  auto move = movement(key, page_rows_);
  if (!move) return false;
  if (count_ == 0) return true;
  if (move->to_start) {
    selected_ = 0;
  } else if (move->to_end) {
    selected_ = count_ - 1;
  } else {
    const long long target = static_cast<long long>(selected_) + move->delta;
    selected_ = static_cast<std::size_t>(std::clamp<long long>(target, 0, static_cast<long long>(count_) - 1));
  }
  return true;
}

std::size_t ListCursor::first_visible(int height) {
  page_rows_ = std::max(height, 1);
  const auto rows = static_cast<std::size_t>(page_rows_);
  if (selected_ < top_) top_ = selected_;
  if (selected_ >= top_ + rows) top_ = selected_ + 1 - rows;
  // After the list shrank, show as many items as fit rather than a mostly empty window.
  if (count_ >= rows && top_ > count_ - rows) top_ = count_ - rows;
  if (count_ < rows) top_ = 0;
  return top_;
}

bool TextScroll::on_key(Key key) {
  auto move = movement(key, page_rows_);
  if (!move) return false;
  if (move->to_start) {
    top_ = 0;
  } else if (move->to_end) {
    top_ = static_cast<std::size_t>(-1) / 2;  // clamped by first_visible
  } else {
    const long long target = static_cast<long long>(std::min<std::size_t>(top_, 1u << 30)) + move->delta;
    top_ = static_cast<std::size_t>(std::max<long long>(target, 0));
  }
  return true;
}

std::size_t TextScroll::first_visible(std::size_t total, int height) {
  page_rows_ = std::max(height, 1);
  const auto rows = static_cast<std::size_t>(page_rows_);
  const std::size_t last_top = total > rows ? total - rows : 0;
  top_ = std::min(top_, last_top);
  return top_;
}

std::string fit(std::string_view text, int width, bool right) {
  if (width <= 0) return {};
  const auto columns = static_cast<std::size_t>(width);
  if (text.size() >= columns) return std::string(text.substr(0, columns));
  const std::string padding(columns - text.size(), ' ');
  return right ? padding + std::string(text) : std::string(text) + padding;
}

}  // namespace fiberscope::ui
