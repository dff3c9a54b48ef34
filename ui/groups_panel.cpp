#include "ui/groups_panel.h"

#include <algorithm>

#include "report/text_reporter.h"

namespace fiberscope::ui {

void GroupsPanel::draw(Canvas& canvas, const Rect& area) {
  if (area.height <= 0) return;
  refresh();
  const int where_width = std::max(area.width - 33, 10) * 2 / 3;
  canvas.fill_row(area.row, Role::column_title);
  int x = canvas.put(area.row, area.column, fit("COUNT", 6, true) + " " + fit("STATE", 13) + "   ", Role::column_title);
  x = canvas.put(area.row, x, fit("WHERE", where_width) + " ", Role::column_title);
  canvas.put(area.row, x, "FIBERS", Role::column_title);

  const int list_rows = area.height - 1;
  if (list_rows <= 0) return;
  const auto& groups = model_.groups();
  if (groups.empty()) {
    canvas.put(area.row + 1, area.column + 1, "no fibers", Role::dim);
    return;
  }
  const std::size_t first = cursor_.first_visible(list_rows);
  for (int line = 0; line < list_rows && first + static_cast<std::size_t>(line) < groups.size(); ++line) {
    const std::size_t index = first + static_cast<std::size_t>(line);
    const report::FiberGroup& group = groups[index];
    const report::Fiber& fiber = *group.members.front();
    const FiberRow* row = model_.row_of(fiber.id);
    const int y = area.row + 1 + line;
    const bool selected = index == cursor_.selected();
    if (selected) canvas.fill_row(y, Role::selected);
    auto role = [&](Role wanted) { return selected ? Role::selected : wanted; };
    std::vector<std::uint64_t> ids;
    ids.reserve(group.members.size());
    bool crashed = false, findings = false;  // marked as in the fiber list: 'X' the crashed fiber, '!' findings
    const bool any_findings = !model_.dump().findings.empty();
    for (const report::Fiber* member : group.members) {
      ids.push_back(member->id);
      crashed = crashed || member->crashed;
      if (any_findings && !findings)
        if (const FiberRow* member_row = model_.row_of(member->id)) findings = member_row->findings > 0;
    }
    x = canvas.put(y, area.column, fit(std::to_string(group.members.size()), 6, true) + " ", role(Role::value));
    x = canvas.put(y, x, fit(report::printable(report::state_label(fiber)), 13) + " ", role(Role::normal));
    if (crashed) x = canvas.put(y, x, "X ", role(Role::error));
    else x = canvas.put(y, x, findings ? "! " : "  ", role(Role::finding));
    x = canvas.put(y, x, fit(row ? report::printable(row->where) : "", where_width) + " ", role(Role::normal));
    canvas.put(y, x, report::format_id_ranges(std::move(ids), 8), role(Role::dim));
  }
}

KeyResult GroupsPanel::on_key(Key key) {
  if (cursor_.on_key(key)) return KeyResult::handled();
  if ((key == keys::kEnter || key == keys::kRight) && cursor_.selected() < model_.groups().size())
    return KeyResult::show_group(model_.group_key(cursor_.selected()));
  if (key == keys::kEscape || key == keys::kLeft || key == keys::kBackspace) return KeyResult::back();
  return KeyResult::ignored();
}

}  // namespace fiberscope::ui
