// The screens of `fiberscope top`, drawn by the real panels into a text canvas over hand-built dumps and compared
// with tests/golden/ui/ (FIBERSCOPE_UPDATE_GOLDEN=1 rewrites them; review the diff).
#include <catch2/catch.hpp>

#include "report/golden.h"
#include "sample_dumps.h"
#include "ui/top_screen.h"

using namespace fiberscope::ui;
using fiberscope::testing::check_golden;

namespace {

std::string render(TopScreen& screen, int width, int height) {
  Canvas canvas(width, height);
  screen.draw(canvas);
  return canvas.to_text();
}

void press(TopScreen& screen, std::initializer_list<Key> keys) {
  for (Key key : keys) screen.on_key(key);
}

TopScreen& small_screen(std::unique_ptr<TopScreen>& holder) {
  holder = std::make_unique<TopScreen>(TopSettings{.target = "pid 4242 /opt/demo/demo_server",
                                                   .interval_seconds = 1.0, .live = true});
  holder->show_snapshot(testing::small_server(), 123.4);
  return *holder;
}

}  // namespace

TEST_CASE("the fiber list shows the header, every fiber's columns and the footer keys", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  check_golden("ui/list_100x20.txt", render(screen, 100, 20));
}

TEST_CASE("sorting by time reversed puts the fiber waiting longest first", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  press(screen, {'s', 's', 's', 'r'});  // id -> name -> state -> time, then reversed
  REQUIRE(screen.fiber_list().sort_column() == SortColumn::time);
  const std::string text = render(screen, 100, 20);
  check_golden("ui/list_by_time_reversed_100x20.txt", text);
  CHECK(text.find("main") < text.find("idle-conn-0"));
  CHECK(text.find("idle-conn-0") < text.find("hash-worker-0"));
}

TEST_CASE("filtering by state and by text narrows the list and says so", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  press(screen, {'f', 'f', 'f', 'f', 'f'});  // running, runnable, syscall, foreign, waiting
  CHECK(screen.fiber_list().listed() == 3);
  press(screen, {'/', 'h', 'a', 'n', 'd', 'l', 'e', keys::kEnter});
  check_golden("ui/list_filtered_100x20.txt", render(screen, 100, 20));
  CHECK(screen.fiber_list().listed() == 2);
  press(screen, {keys::kEscape});
  CHECK(screen.fiber_list().listed() == 8);
}

TEST_CASE("the details show the stitched backtrace with arguments, stacks, findings and the spawn site",
          "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  press(screen, {'n', keys::kEnter});  // the next fiber with findings: 22
  REQUIRE(screen.view() == TopScreen::View::details);
  const std::string text = render(screen, 100, 30);
  check_golden("ui/details_100x30.txt", text);
  CHECK(text.find("resolve(host=\"example.org\")") != std::string::npos);
  CHECK(text.find("[system stack]") != std::string::npos);
  press(screen, {keys::kEscape});
  CHECK(screen.view() == TopScreen::View::fibers);
}

TEST_CASE("the groups view counts identical stacks biggest first and enter lists the members", "[ui][golden]") {
  TopScreen screen({.target = "pid 4242 /opt/demo/demo_server", .interval_seconds = 0.5, .live = true});
  screen.show_snapshot(testing::crowded_server(30));
  press(screen, {'g'});
  REQUIRE(screen.view() == TopScreen::View::groups);
  check_golden("ui/groups_100x20.txt", render(screen, 100, 20));
  press(screen, {keys::kEnter});  // the biggest group: 20 request handlers (+2 from the small server)
  CHECK(screen.view() == TopScreen::View::fibers);
  CHECK(screen.fiber_list().listed() == 22);
  check_golden("ui/group_members_100x20.txt", render(screen, 100, 20));
  press(screen, {keys::kEscape});
  CHECK(screen.view() == TopScreen::View::groups);
  press(screen, {'1'});
  CHECK(screen.fiber_list().listed() == 38);
}

TEST_CASE("the findings view lists every finding and enter opens its fiber", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  press(screen, {'F'});
  check_golden("ui/findings_100x20.txt", render(screen, 100, 20));
  press(screen, {keys::kEnter});
  REQUIRE(screen.view() == TopScreen::View::details);
  CHECK(screen.fiber_list().selected_fiber() == 22u);
}

TEST_CASE("a narrow terminal drops the thread column and still shows header, list and footer", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  check_golden("ui/list_60x15.txt", render(screen, 60, 15));
  press(screen, {keys::kDown, keys::kEnter});
  check_golden("ui/details_60x15.txt", render(screen, 60, 15));
}

TEST_CASE("the help lists the keys and any key leaves it", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  press(screen, {'?'});
  check_golden("ui/help_100x30.txt", render(screen, 100, 30));
  press(screen, {'x'});
  CHECK(screen.view() == TopScreen::View::fibers);
}

TEST_CASE("a paused screen and an exited target say so in the header and status line", "[ui][golden]") {
  std::unique_ptr<TopScreen> holder;
  TopScreen& screen = small_screen(holder);
  press(screen, {' '});
  CHECK_FALSE(screen.refreshing());
  CHECK(render(screen, 100, 20).find("PAUSED") != std::string::npos);
  press(screen, {' '});
  CHECK(screen.refreshing());
  screen.stop_refreshing("target exited: showing its last snapshot (q quits)");
  CHECK_FALSE(screen.refreshing());
  check_golden("ui/target_exited_100x12.txt", render(screen, 100, 12));
}

TEST_CASE("a core's screen shows the core file and the crash in the header and marks the crashed fiber",
          "[ui][golden]") {
  TopScreen screen({.target = "core /tmp/core.4242 (pid 4242 /opt/demo/demo_server)", .live = false});
  screen.show_snapshot(testing::crashed_core(), 80.0);
  const std::string list = render(screen, 100, 20);
  check_golden("ui/core_crash_list_100x20.txt", list);
  CHECK(list.find("core file  crashed SIGSEGV at 0x0, thread 4243, fiber 18") != std::string::npos);
  CHECK(list.find("pause") == std::string::npos);  // a core has none
  // The crashed fiber's row: its state is the runtime's, the mark says it crashed.
  const std::size_t row = list.find("    18 hash-worker-0");
  REQUIRE(row != std::string::npos);
  CHECK(list.substr(row, list.find('\n', row) - row).find("running") != std::string::npos);
  CHECK(list.substr(row, list.find('\n', row) - row).find(" X checksum") != std::string::npos);

  // The groups view marks the crashed fiber's group the same way.
  press(screen, {'g'});
  const std::string groups = render(screen, 100, 20);
  check_golden("ui/core_crash_groups_100x20.txt", groups);
  const std::size_t group_row = groups.find(" X checksum");
  REQUIRE(group_row != std::string::npos);
  CHECK(groups.substr(groups.rfind('\n', group_row) + 1, 6) == "     1");
  press(screen, {'1'});

  press(screen, {keys::kDown, keys::kDown, keys::kEnter});  // 1, 17, 18
  REQUIRE(screen.view() == TopScreen::View::details);
  REQUIRE(screen.details_fiber() == 18u);
  const std::string details = render(screen, 100, 30);
  check_golden("ui/core_crash_details_100x30.txt", details);
  CHECK(details.find("fiber 18 \"hash-worker-0\"  running for 12ms, thread 4243") != std::string::npos);
  CHECK(details.find("crashed here: SIGSEGV at 0x0 in thread 4243") != std::string::npos);
}
