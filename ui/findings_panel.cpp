#include "ui/findings_panel.h"

#include "report/text_reporter.h"

namespace fiberscope::ui {

void FindingsPanel::draw(Canvas& canvas, const Rect& area) {
  if (area.height <= 0) return;
  const auto& findings = model_.dump().findings;
  cursor_.set_count(findings.size());
  canvas.fill_row(area.row, Role::column_title);
  int x = canvas.put(area.row, area.column, fit("FIBER", 6, true) + " " + fit("NAME", 20) + " ", Role::column_title);
  x = canvas.put(area.row, x, fit("KIND", 22) + " ", Role::column_title);
  canvas.put(area.row, x, "FRAME: MESSAGE", Role::column_title);
  const int list_rows = area.height - 1;
  if (list_rows <= 0) return;
  if (findings.empty()) {
    canvas.put(area.row + 1, area.column + 1,
               model_.has_dump() ? "no findings: the runtime's invariants hold in this snapshot" : "no snapshot yet",
               Role::dim);
    return;
  }
  const std::size_t first = cursor_.first_visible(list_rows);
  for (int line = 0; line < list_rows && first + static_cast<std::size_t>(line) < findings.size(); ++line) {
    const std::size_t index = first + static_cast<std::size_t>(line);
    const report::Finding& finding = findings[index];
    const int y = area.row + 1 + line;
    const bool selected = index == cursor_.selected();
    if (selected) canvas.fill_row(y, Role::selected);
    auto role = [&](Role wanted) { return selected ? Role::selected : wanted; };
    const FiberRow* row = finding.fiber_id ? model_.row_of(*finding.fiber_id) : nullptr;
    x = canvas.put(y, area.column, fit(finding.fiber_id ? std::to_string(*finding.fiber_id) : "-", 6, true) + " ",
                   role(Role::normal));
    x = canvas.put(y, x, fit(row ? report::printable(row->fiber->name) : "", 20) + " ", role(Role::normal));
    x = canvas.put(y, x, fit(report::printable(finding.kind), 22) + " ", role(Role::finding));
    const std::string first_line = finding.message.substr(0, finding.message.find('\n'));
    std::string text = finding.frame.empty() ? "" : report::printable(finding.frame) + ": ";
    canvas.put(y, x, text + report::printable(first_line), role(Role::normal));
  }
}

KeyResult FindingsPanel::on_key(Key key) {
  if (cursor_.on_key(key)) return KeyResult::handled();
  const auto& findings = model_.dump().findings;
  if ((key == keys::kEnter || key == keys::kRight) && cursor_.selected() < findings.size()) {
    const auto& fiber_id = findings[cursor_.selected()].fiber_id;
    return fiber_id ? KeyResult::show_fiber(*fiber_id) : KeyResult::handled();
  }
  if (key == keys::kEscape || key == keys::kLeft || key == keys::kBackspace) return KeyResult::back();
  return KeyResult::ignored();
}

}  // namespace fiberscope::ui
