// TopScreen: the whole screen of `fiberscope top` without curses — header (process, fibers by state, pause,
// refresh interval, findings), one of the views (fiber list, details, groups, findings, help), a status line
// and a footer with the main keys — and what every key does. The run loop (top_command.h) feeds it snapshots
// and keys and shows what it draws; the golden tests do the same with a text canvas.
//
//   TopScreen screen({.target = "pid 4242 demo_server", .interval_seconds = 1});
//   screen.show_snapshot(std::move(dump));
//   if (screen.on_key('q').action == KeyResult::Action::quit) ...
//   screen.draw(canvas);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ui/details_panel.h"
#include "ui/fiber_list_panel.h"
#include "ui/findings_panel.h"
#include "ui/groups_panel.h"
#include "ui/panel.h"
#include "ui/top_model.h"

namespace fiberscope::ui {

struct TopSettings {
  std::string target;             // "pid 4242 /opt/demo/demo_server" or "core /tmp/core.4242"
  double interval_seconds = 1.0;  // between snapshots (live)
  bool live = true;               // false: one static snapshot (a core file)
};

class TopScreen {
 public:
  enum class View : std::uint8_t { fibers, details, groups, findings, help };

  explicit TopScreen(TopSettings settings);
  TopScreen(const TopScreen&) = delete;
  TopScreen& operator=(const TopScreen&) = delete;

  // Shows a new snapshot; the selection, filters, order and view are kept. `elapsed_ms`: how long it took to
  // take and decode (shown beside the pause, which is only the part the target was stopped for). `args`: whether
  // its fibers come with their arguments, or (lean) the details wait for show_fiber_args().
  void show_snapshot(report::Dump dump, std::optional<double> elapsed_ms = std::nullopt,
                     DumpArgs args = DumpArgs::every_fiber);
  // The fiber whose details are open (also under the help), if any: the one whose arguments are shown.
  std::optional<std::uint64_t> details_fiber() const;
  // The details fiber when the snapshot shown has it without its arguments (a lean snapshot).
  std::optional<std::uint64_t> fiber_needing_args() const;
  // The stack with arguments of a fiber of the snapshot shown (see TopModel::add_args).
  void show_fiber_args(std::uint64_t fiber_id, report::Stack stack_with_args);
  // A line under the header: a capture that failed (`error`) or news such as "target exited".
  void show_message(std::string message, bool error);
  // Refreshing ends for good (the target exited): the last snapshot stays, with `why` on the status line.
  void stop_refreshing(std::string why);

  KeyResult on_key(Key key);
  void draw(Canvas& canvas);

  // Whether the loop should take snapshots now (live, not paused with space, target still there).
  bool refreshing() const { return settings_.live && !paused_ && !stopped_; }
  bool paused() const { return paused_; }
  std::uint64_t snapshots() const { return snapshots_; }
  View view() const { return views_.back(); }
  const TopModel& model() const { return model_; }
  FiberListPanel& fiber_list() { return list_; }

 private:
  KeyResult on_screen_key(Key key);
  KeyResult on_filter_key(Key key);
  void act(const KeyResult& result);
  void go_back();
  void switch_top_view(View view);
  void draw_header(Canvas& canvas);
  void draw_title(Canvas& canvas, int row);
  void draw_footer(Canvas& canvas, int row);
  void draw_help(Canvas& canvas, const Rect& area);

  TopSettings settings_;
  TopModel model_;
  FiberListPanel list_{model_};
  DetailsPanel details_{model_};
  GroupsPanel groups_{model_};
  FindingsPanel findings_{model_};
  TextScroll help_scroll_;
  std::vector<View> views_{View::fibers};
  std::vector<FiberFilter> saved_filters_;  // the list's filter before a group's members were listed
  bool editing_filter_ = false;
  std::string filter_before_edit_;
  bool paused_ = false;
  bool stopped_ = false;
  std::uint64_t snapshots_ = 0;
  std::optional<double> elapsed_ms_;
  std::string message_;
  bool message_is_error_ = false;
};

// The keys, one per line, as `?` shows them (and `fiberscope top --help` lists them).
extern const char* const kTopKeysHelp;

}  // namespace fiberscope::ui
