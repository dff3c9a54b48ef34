#include "ui/fiber_list_panel.h"

#include <algorithm>

#include "report/text_reporter.h"

namespace fiberscope::ui {
namespace {

Role category_role(StateCategory category) {
  switch (category) {
    case StateCategory::running: return Role::running;
    case StateCategory::runnable: return Role::runnable;
    case StateCategory::syscall: return Role::syscall;
    case StateCategory::foreign: return Role::foreign;
    case StateCategory::waiting: return Role::waiting;
    case StateCategory::sleeping: return Role::sleeping;
    case StateCategory::other:
    case StateCategory::count_: break;
  }
  return Role::error;
}

// Column widths for a terminal `width` columns wide; WHERE takes what is left. Narrow terminals lose the
// thread column first, then shrink the name.
struct Layout {
  int id = 6, name = 18, state = 13, time = 7, thread = 7;
  bool show_thread = true;
};

Layout layout_for(int width) {
  Layout layout;
  if (width >= 120) layout.name = 24;
  if (width < 90) layout.name = 14;
  if (width < 72) {
    layout.show_thread = false;
    layout.name = 12;
    layout.state = 12;
    layout.id = 5;
  }
  return layout;
}

}  // namespace

std::string_view sort_column_title(SortColumn column) {
  switch (column) {
    case SortColumn::id: return "ID";
    case SortColumn::name: return "NAME";
    case SortColumn::state: return "STATE";
    case SortColumn::time: return "TIME";
    case SortColumn::thread: return "THREAD";
    case SortColumn::where: return "WHERE";
    case SortColumn::count_: break;
  }
  return "?";
}

void FiberListPanel::refresh() {
  visible_ = model_.select(filter_, column_, descending_);
  cursor_.set_count(visible_.size());
  if (selected_id_) {
    const FiberRow* row = model_.row_of(*selected_id_);
    if (row) {
      const auto index = static_cast<std::size_t>(row - model_.rows().data());
      auto it = std::find(visible_.begin(), visible_.end(), index);
      if (it != visible_.end()) cursor_.select(static_cast<std::size_t>(it - visible_.begin()));
    }
  }
  selected_id_ = selected_fiber();
}

std::optional<std::uint64_t> FiberListPanel::selected_fiber() const {
  if (visible_.empty()) return std::nullopt;
  return model_.rows()[visible_[cursor_.selected()]].fiber->id;
}

void FiberListPanel::sort_by(SortColumn column, bool descending) {
  column_ = column;
  descending_ = descending;
  refresh();
}

bool FiberListPanel::select_fiber(std::uint64_t fiber_id) {
  if (!model_.row_of(fiber_id)) return false;
  selected_id_ = fiber_id;
  refresh();
  if (selected_fiber() != fiber_id) {
    filter_ = {};
    selected_id_ = fiber_id;
    refresh();
  }
  return selected_fiber() == fiber_id;
}

void FiberListPanel::select_next_with_findings() {
  for (std::size_t step = 1; step <= visible_.size(); ++step) {
    const std::size_t index = (cursor_.selected() + step) % visible_.size();
    if (model_.rows()[visible_[index]].findings > 0) {
      cursor_.select(index);
      selected_id_ = selected_fiber();
      return;
    }
  }
  // None listed: a fiber with findings hidden by the filters is still worth jumping to.
  for (const FiberRow& row : model_.rows())
    if (row.findings > 0) {
      select_fiber(row.fiber->id);
      return;
    }
}

KeyResult FiberListPanel::on_key(Key key) {
  if (cursor_.on_key(key)) {
    selected_id_ = selected_fiber();
    return KeyResult::handled();
  }
  switch (key) {
    case keys::kEnter:
    case keys::kRight:
      if (auto id = selected_fiber()) return KeyResult::show_fiber(*id);
      return KeyResult::handled();
    case 's':
    case '>':
      sort_by(static_cast<SortColumn>((static_cast<std::size_t>(column_) + 1) % kSortColumns), descending_);
      return KeyResult::handled();
    case '<':
      sort_by(static_cast<SortColumn>((static_cast<std::size_t>(column_) + kSortColumns - 1) % kSortColumns),
              descending_);
      return KeyResult::handled();
    case 'r':
      sort_by(column_, !descending_);
      return KeyResult::handled();
    case 'f': {
      // all -> running -> runnable -> ... -> sleeping -> all
      if (!filter_.state) {
        filter_.state = StateCategory::running;
      } else if (*filter_.state == StateCategory::sleeping) {
        filter_.state.reset();
      } else {
        filter_.state = static_cast<StateCategory>(static_cast<std::size_t>(*filter_.state) + 1);
      }
      refresh();
      return KeyResult::handled();
    }
    case 'n':
      select_next_with_findings();
      return KeyResult::handled();
    default: return KeyResult::ignored();
  }
}

std::string FiberListPanel::describe() const {
  std::string text = std::to_string(visible_.size()) + " of " + std::to_string(model_.rows().size()) + " fibers";
  if (filter_.state) text += ", state " + std::string(category_name(*filter_.state));
  if (!filter_.text.empty()) text += ", matching \"" + report::printable(filter_.text) + "\"";
  if (filter_.group_key) text += ", one group";
  if (filter_.with_findings) text += ", with findings";
  text += ", sorted by " + std::string(sort_column_title(column_)) + (descending_ ? " (reversed)" : "");
  return text;
}

void FiberListPanel::draw(Canvas& canvas, const Rect& area) {
  if (area.height <= 0) return;
  const Layout layout = layout_for(area.width);
  // Column titles; the sort column is marked and highlighted.
  canvas.fill_row(area.row, Role::column_title);
  int column = area.column;
  auto title = [&](SortColumn sort, int width, bool right) {
    std::string text(sort_column_title(sort));
    if (sort == column_) text += descending_ ? "v" : "^";
    const Role role = sort == column_ ? Role::sorted_title : Role::column_title;
    column = canvas.put(area.row, column, fit(text, width, right), role);
    column = canvas.put(area.row, column, " ", Role::column_title);
  };
  title(SortColumn::id, layout.id, true);
  title(SortColumn::name, layout.name, false);
  title(SortColumn::state, layout.state, false);
  title(SortColumn::time, layout.time, true);
  if (layout.show_thread) title(SortColumn::thread, layout.thread, true);
  column = canvas.put(area.row, column, "  ", Role::column_title);
  title(SortColumn::where, std::max(area.width - (column - area.column) - 1, 5), false);

  const int list_rows = area.height - 1;
  if (list_rows <= 0) return;
  if (visible_.empty()) {
    canvas.put(area.row + 1, area.column + 1,
               model_.has_dump() ? "no fibers match (Esc clears the filters)" : "waiting for the first snapshot",
               Role::dim);
    return;
  }
  const std::size_t first = cursor_.first_visible(list_rows);
  for (int line = 0; line < list_rows && first + static_cast<std::size_t>(line) < visible_.size(); ++line) {
    const std::size_t position = first + static_cast<std::size_t>(line);
    const FiberRow& row = model_.rows()[visible_[position]];
    const report::Fiber& fiber = *row.fiber;
    const int y = area.row + 1 + line;
    const bool selected = position == cursor_.selected();
    if (selected) canvas.fill_row(y, Role::selected);
    auto role = [&](Role wanted) { return selected ? Role::selected : wanted; };
    int x = area.column;
    x = canvas.put(y, x, fit(std::to_string(fiber.id), layout.id, true) + " ", role(Role::normal));
    x = canvas.put(y, x, fit(report::printable(fiber.name), layout.name) + " ", role(Role::normal));
    x = canvas.put(y, x, fit(report::printable(report::state_label(fiber)), layout.state) + " ",
                   role(category_role(row.category)));
    const std::string time = fiber.time_in_state_ns ? report::format_duration(*fiber.time_in_state_ns) : "-";
    x = canvas.put(y, x, fit(time, layout.time, true) + " ", role(Role::normal));
    if (layout.show_thread) {
      const std::string thread = fiber.thread ? std::to_string(*fiber.thread) : "-";
      x = canvas.put(y, x, fit(thread, layout.thread, true) + " ", role(Role::dim));
    }
    if (fiber.crashed) {
      x = canvas.put(y, x, "X ", role(Role::error));
    } else {
      x = canvas.put(y, x, row.findings ? "! " : "  ", role(Role::finding));
    }
    canvas.put(y, x, report::printable(row.where), role(Role::normal));
  }
}

}  // namespace fiberscope::ui
