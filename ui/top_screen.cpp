#include "ui/top_screen.h"

#include <algorithm>
#include <cstdio>

#include "report/text_reporter.h"

namespace fiberscope::ui {

const char* const kTopKeysHelp =
    "Keys of fiberscope top\n"
    "\n"
    "  Up Down PgUp PgDn Home End j k   move the selection (or scroll)\n"
    "  Enter, Right                    details of the selected fiber / the group's fibers / the finding's fiber\n"
    "  Esc, Left, Backspace            back; in the fiber list: clear the filters\n"
    "  Tab                             next view: fibers, groups, findings\n"
    "  1  2  3                         fibers, groups, findings\n"
    "  g                               groups of identical stacks, biggest first\n"
    "  F                               all findings\n"
    "  s or >, <                       sort the fiber list by the next / previous column\n"
    "  r                               reverse the order\n"
    "  f                               filter by state: running, runnable, syscall, foreign, waiting, sleeping, all\n"
    "  /                               filter by a substring of the name or of any frame's function\n"
    "                                  (Enter keeps it, Esc cancels)\n"
    "  n                               jump to the next fiber with findings\n"
    "  !                               list only fibers with findings (again: all)\n"
    "  Space                           pause / resume refreshing\n"
    "  ? F1                            this help (any key leaves it)\n"
    "  q F10 Ctrl-C                    quit (the target keeps running)\n"
    "\n"
    "Columns: ID, NAME, STATE (wait reason or state), TIME (in that state), THREAD (worker running it),\n"
    "'!' (the fiber has findings) or 'X' (from a core: the fiber that crashed),\n"
    "WHERE (first frame outside the runtime, with file:line).\n";

namespace {

std::string format_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs", seconds);
  return text;
}

std::string_view view_title(TopScreen::View view) {
  switch (view) {
    case TopScreen::View::fibers: return "FIBERS";
    case TopScreen::View::details: return "DETAILS";
    case TopScreen::View::groups: return "GROUPS";
    case TopScreen::View::findings: return "FINDINGS";
    case TopScreen::View::help: return "HELP";
  }
  return "";
}

}  // namespace

TopScreen::TopScreen(TopSettings settings) : settings_(std::move(settings)) {}

void TopScreen::show_snapshot(report::Dump dump, std::optional<double> elapsed_ms, DumpArgs args) {
  model_.set_dump(std::move(dump), args);
  elapsed_ms_ = elapsed_ms;
  ++snapshots_;
  list_.refresh();
  groups_.refresh();
  message_.clear();  // a capture error or note belongs to the snapshot it came with
}

std::optional<std::uint64_t> TopScreen::details_fiber() const {
  if (std::find(views_.begin(), views_.end(), View::details) == views_.end()) return std::nullopt;
  return details_.fiber_id();
}

std::optional<std::uint64_t> TopScreen::fiber_needing_args() const {
  const std::optional<std::uint64_t> fiber = details_fiber();
  if (!fiber || !model_.row_of(*fiber) || model_.has_args(*fiber)) return std::nullopt;
  return fiber;
}

void TopScreen::show_fiber_args(std::uint64_t fiber_id, report::Stack stack_with_args) {
  model_.add_args(fiber_id, std::move(stack_with_args));
}

void TopScreen::show_message(std::string message, bool error) {
  message_ = std::move(message);
  message_is_error_ = error;
}

void TopScreen::stop_refreshing(std::string why) {
  stopped_ = true;
  show_message(std::move(why), true);
}

KeyResult TopScreen::on_key(Key key) {
  if (key == keys::kResize) return KeyResult::handled();
  if (editing_filter_) return on_filter_key(key);
  if (key == keys::kCtrlC || key == keys::kF10) return {KeyResult::Action::quit, 0, {}};
  KeyResult result;
  switch (view()) {
    case View::fibers: result = list_.on_key(key); break;
    case View::details: result = details_.on_key(key); break;
    case View::groups: result = groups_.on_key(key); break;
    case View::findings: result = findings_.on_key(key); break;
    case View::help:
      if (help_scroll_.on_key(key)) return KeyResult::handled();
      go_back();  // any other key leaves the help
      return KeyResult::handled();
  }
  if (result.action == KeyResult::Action::ignored) result = on_screen_key(key);
  act(result);
  return result;
}

KeyResult TopScreen::on_screen_key(Key key) {
  switch (key) {
    case 'q': return {KeyResult::Action::quit, 0, {}};
    case '?':
    case keys::kF1:
      help_scroll_.reset();
      views_.push_back(View::help);
      return KeyResult::handled();
    case ' ':
      if (settings_.live && !stopped_) paused_ = !paused_;
      return KeyResult::handled();
    case keys::kTab:
      switch (views_.front()) {
        case View::fibers: switch_top_view(View::groups); break;
        case View::groups: switch_top_view(View::findings); break;
        default: switch_top_view(View::fibers); break;
      }
      return KeyResult::handled();
    case '1': switch_top_view(View::fibers); return KeyResult::handled();
    case '2':
    case 'g': switch_top_view(View::groups); return KeyResult::handled();
    case '3':
    case 'F': switch_top_view(View::findings); return KeyResult::handled();
    case '/':
      if (view() != View::fibers) switch_top_view(View::fibers);
      editing_filter_ = true;
      filter_before_edit_ = list_.filter().text;
      return KeyResult::handled();
    case '!':
      if (view() != View::fibers) switch_top_view(View::fibers);
      list_.filter().with_findings = !list_.filter().with_findings;
      list_.refresh();
      return KeyResult::handled();
    case 'n':
      if (view() != View::fibers) switch_top_view(View::fibers);
      return list_.on_key('n');
    case keys::kEscape:
    case keys::kLeft:
    case keys::kBackspace:
      if (views_.size() > 1) return KeyResult::back();
      if (view() == View::fibers) {
        list_.filter() = {};
        list_.refresh();
        return KeyResult::handled();
      }
      return KeyResult::ignored();
    default: return KeyResult::ignored();
  }
}

KeyResult TopScreen::on_filter_key(Key key) {
  std::string& text = list_.filter().text;
  if (key == keys::kEnter) {
    editing_filter_ = false;
  } else if (key == keys::kEscape) {
    editing_filter_ = false;
    text = filter_before_edit_;
  } else if (key == keys::kBackspace || key == 8) {
    if (!text.empty()) text.pop_back();
  } else if (key >= 0x20 && key < 0x7f) {
    if (text.size() < 200) text.push_back(static_cast<char>(key));
  } else if (key == keys::kCtrlC) {
    return {KeyResult::Action::quit, 0, {}};
  } else {
    return KeyResult::ignored();
  }
  list_.refresh();
  return KeyResult::handled();
}

void TopScreen::act(const KeyResult& result) {
  switch (result.action) {
    case KeyResult::Action::back: go_back(); break;
    case KeyResult::Action::show_fiber:
      list_.select_fiber(result.fiber_id);
      details_.show(result.fiber_id);
      views_.push_back(View::details);
      break;
    case KeyResult::Action::show_group:
      saved_filters_.push_back(list_.filter());
      list_.filter() = {};
      list_.filter().group_key = result.group_key;
      list_.refresh();
      views_.push_back(View::fibers);
      break;
    case KeyResult::Action::ignored:
    case KeyResult::Action::handled:
    case KeyResult::Action::quit: break;
  }
}

void TopScreen::go_back() {
  if (views_.size() <= 1) return;
  // Leaving a group's member list restores the list as it was before.
  if (view() == View::fibers && !saved_filters_.empty()) {
    list_.filter() = saved_filters_.back();
    saved_filters_.pop_back();
    list_.refresh();
  }
  views_.pop_back();
}

void TopScreen::switch_top_view(View top) {
  while (views_.size() > 1) go_back();
  views_.front() = top;
}

void TopScreen::draw_header(Canvas& canvas) {
  const report::Dump& dump = model_.dump();
  const bool narrow = canvas.width() < 90;
  // Row 0: what is shown, and how fresh it is. The freshness wins over the target's path when space is short.
  std::string right;
  if (!settings_.live) {
    right = "static snapshot";
  } else {
    right = "snapshot " + std::to_string(snapshots_) + ", every " + format_seconds(settings_.interval_seconds);
    if (paused_) right += ", PAUSED";
    if (stopped_) right += ", ended";
  }
  const int right_at = std::max(0, canvas.width() - static_cast<int>(right.size()));
  int x = canvas.put(0, 0, fit("fiberscope top", std::min(14, right_at)), Role::title);
  canvas.put(0, x, fit("  " + report::printable(settings_.target), std::max(0, right_at - x - 1)), Role::value);
  canvas.put(0, right_at, right, paused_ ? Role::error : Role::value);

  // Row 1: fibers by state.
  x = canvas.put(1, 0, "fibers ", Role::label);
  x = canvas.put(1, x, std::to_string(dump.fibers.size()), Role::value);
  x = canvas.put(1, x, ":", Role::label);
  static constexpr std::pair<StateCategory, Role> kShown[] = {
      {StateCategory::running, Role::running}, {StateCategory::runnable, Role::runnable},
      {StateCategory::syscall, Role::syscall}, {StateCategory::foreign, Role::foreign},
      {StateCategory::waiting, Role::waiting}, {StateCategory::sleeping, Role::sleeping}};
  static constexpr std::string_view kShort[] = {"run", "rdy", "sys", "ffi", "wait", "sleep"};
  for (std::size_t i = 0; i < std::size(kShown); ++i) {
    const auto [category, role] = kShown[i];
    x = canvas.put(1, x, " " + std::string(narrow ? kShort[i] : category_name(category)) + " ", role);
    x = canvas.put(1, x, std::to_string(model_.count(category)), Role::value);
  }
  if (const std::size_t other = model_.count(StateCategory::other)) {
    x = canvas.put(1, x, " other ", Role::error);
    canvas.put(1, x, std::to_string(other), Role::value);
  }

  // Row 2: threads, pause (or the core file and its crash), findings, errors.
  x = canvas.put(2, 0, "threads ", Role::label);
  x = canvas.put(2, x, std::to_string(dump.threads.size()), Role::value);
  auto put_elapsed = [&](const char* format) {
    if (!elapsed_ms_) return;
    char text[48];
    std::snprintf(text, sizeof text, format, *elapsed_ms_);
    x = canvas.put(2, x, text, Role::dim);
  };
  const bool from_core = model_.has_dump() && dump.source.kind == report::Source::Kind::core;
  if (from_core) {
    x = canvas.put(2, x, "  core file", Role::value);
  } else {
    x = canvas.put(2, x, "  pause ", Role::label);
    std::string pause = "-";
    if (model_.has_dump() && dump.source.kind == report::Source::Kind::live_no_stop) {
      pause = "none (--no-stop)";
    } else if (dump.pause_ms) {
      char text[32];
      std::snprintf(text, sizeof text, "%.2f ms", *dump.pause_ms);
      pause = text;
    }
    x = canvas.put(2, x, pause, Role::value);
    put_elapsed(" (snapshot took %.0f ms)");
  }
  if (dump.crash) {
    x = canvas.put(2, x, "  crashed ", Role::label);
    std::string crash = report::printable(report::crash_label(*dump.crash)) + ", thread " +
                        std::to_string(dump.crash->tid);
    if (dump.crash->fiber_id) crash += ", fiber " + std::to_string(*dump.crash->fiber_id);
    x = canvas.put(2, x, crash, Role::error);
  }
  x = canvas.put(2, x, "  findings ", Role::label);
  x = canvas.put(2, x, std::to_string(dump.findings.size()), dump.findings.empty() ? Role::value : Role::finding);
  if (!dump.errors.empty()) {
    x = canvas.put(2, x, "  errors ", Role::label);
    x = canvas.put(2, x, std::to_string(dump.errors.size()), Role::error);
  }
  if (model_.has_dump() && !dump.has_fiber_table) x = canvas.put(2, x, "  no fiber table", Role::error);
  // A core is read once: how long that took matters less than the crash and the findings, so it goes last.
  if (from_core) put_elapsed("  read in %.0f ms");
}

void TopScreen::draw_title(Canvas& canvas, int row) {
  int x = canvas.put(row, 0, std::string(view_title(view())), Role::title);
  std::string detail;
  switch (view()) {
    case View::fibers: detail = list_.describe(); break;
    case View::details: detail = "fiber " + std::to_string(details_.fiber_id()); break;
    case View::groups: detail = std::to_string(model_.groups().size()) + " groups of identical stacks"; break;
    case View::findings: {
      const std::size_t count = model_.dump().findings.size();
      detail = std::to_string(count) + (count == 1 ? " finding" : " findings");
      break;
    }
    case View::help: break;
  }
  x = canvas.put(row, x, "  " + detail, Role::dim);
  if (editing_filter_) {
    x = canvas.put(row, x, "  filter: ", Role::label);
    x = canvas.put(row, x, report::printable(list_.filter().text), Role::value);
    canvas.put(row, x, "_", Role::selected);
  }
  if (!message_.empty()) {
    const int at = std::max(x + 2, canvas.width() - static_cast<int>(message_.size()));
    canvas.put(row, x + 2 > at ? x + 2 : at, report::printable(message_),
               message_is_error_ ? Role::error : Role::value);
  }
}

void TopScreen::draw_footer(Canvas& canvas, int row) {
  canvas.fill_row(row, Role::footer_text);
  static constexpr std::pair<std::string_view, std::string_view> kKeys[] = {
      {"?", "Help"}, {"Enter", "Details"}, {"Tab", "Views"}, {"/", "Filter"}, {"f", "State"},
      {"s", "Sort"}, {"n", "Finding"},     {"Space", "Pause"}, {"q", "Quit"}};
  int x = 0;
  for (const auto& [key, what] : kKeys) {
    x = canvas.put(row, x, std::string(key), Role::footer_key);
    x = canvas.put(row, x, std::string(what) + " ", Role::footer_text);
  }
}

void TopScreen::draw_help(Canvas& canvas, const Rect& area) {
  std::vector<std::string> lines;
  for (std::string_view text = kTopKeysHelp; !text.empty();) {
    const std::size_t end = text.find('\n');
    lines.emplace_back(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  const std::size_t first = help_scroll_.first_visible(lines.size(), area.height);
  for (int y = 0; y < area.height && first + static_cast<std::size_t>(y) < lines.size(); ++y)
    canvas.put(area.row + y, area.column, lines[first + static_cast<std::size_t>(y)],
               first + static_cast<std::size_t>(y) == 0 ? Role::title : Role::normal);
}

void TopScreen::draw(Canvas& canvas) {
  // Header (3 rows), title row, panel, footer: below 8 rows or 20 columns nothing useful fits.
  if (canvas.height() < 8 || canvas.width() < 20) {
    canvas.put(0, 0, "terminal too small", Role::error);
    return;
  }
  draw_header(canvas);
  draw_title(canvas, 3);
  const Rect area{4, 0, canvas.width(), canvas.height() - 5};
  switch (view()) {
    case View::fibers: list_.draw(canvas, area); break;
    case View::details: details_.draw(canvas, area); break;
    case View::groups: groups_.draw(canvas, area); break;
    case View::findings: findings_.draw(canvas, area); break;
    case View::help: draw_help(canvas, area); break;
  }
  draw_footer(canvas, canvas.height() - 1);
}

}  // namespace fiberscope::ui
