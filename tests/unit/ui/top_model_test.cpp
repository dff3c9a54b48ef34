// The ui's model and building blocks without a screen: categories, the user frame, sorting and filtering,
// selection that follows its fiber, scrolling of long lists, and the canvas's clipping.
#include <catch2/catch.hpp>

#include "sample_dumps.h"
#include "ui/canvas.h"
#include "ui/fiber_list_panel.h"
#include "ui/panel.h"
#include "ui/top_model.h"

using namespace fiberscope;
using namespace fiberscope::ui;

TEST_CASE("fibers are counted by state, a sleep counting as sleeping", "[ui]") {
  TopModel model;
  model.set_dump(ui::testing::small_server());
  CHECK(model.count(StateCategory::running) == 1);
  CHECK(model.count(StateCategory::runnable) == 1);
  CHECK(model.count(StateCategory::syscall) == 1);
  CHECK(model.count(StateCategory::foreign) == 1);
  CHECK(model.count(StateCategory::waiting) == 3);
  CHECK(model.count(StateCategory::sleeping) == 1);
  CHECK(model.count(StateCategory::other) == 0);
  CHECK(model.row_of(22)->findings == 1);
  CHECK(model.row_of(17)->findings == 0);
}

TEST_CASE("where a fiber is skips the runtime's frames and prefers a frame with a line", "[ui]") {
  TopModel model;
  model.set_dump(ui::testing::small_server());
  CHECK(model.row_of(17)->where == "read_request conn.cpp:57");     // not read (libc) nor fiber::syscall
  CHECK(model.row_of(22)->where == "c_resolve demo_foreign.c:14");  // not poll nor the trampoline
  CHECK(model.row_of(19)->where == "handle_requests handlers.cpp:33");
  CHECK(model.row_of(1)->where == "demo_main demo_server.cpp:290");
  // Inlined runtime frames carry unqualified names: their files give them away; lambdas yield to their function.
  report::Fiber inlined = ui::testing::fiber(
      6, "y", "syscall", "", 0,
      {ui::testing::frame(1, "__GI___libc_read", "./io/../sysdeps/unix/sysv/linux/read.c", 26),
       ui::testing::frame(2, "operator()", "/app/server.cpp", 199),
       ui::testing::frame(3, "syscall<lambda>", "/usr/local/include/fiberscope/runtime.h", 57),
       ui::testing::frame(4, "switch_fiber_to_fiber", "/build/runtime_lib/src/scheduler.cpp", 426),
       ui::testing::frame(5, "read_connection", "/app/server.cpp", 199)});
  REQUIRE(user_frame(inlined) != nullptr);
  CHECK(short_location(*user_frame(inlined)) == "read_connection server.cpp:199");
  report::Fiber only_runtime = ui::testing::fiber(5, "x", "running", "", 0,
                                                  {ui::testing::frame(1, "fiber::detail::switch_to", "", 0)});
  REQUIRE(user_frame(only_runtime) != nullptr);
  CHECK(user_frame(only_runtime)->function == "fiber::detail::switch_to");
  CHECK(user_frame(report::Fiber{}) == nullptr);
}

TEST_CASE("parameter lists are cut from demangled names, nested parentheses included", "[ui]") {
  CHECK(without_parameters("f(int)") == "f");
  CHECK(without_parameters("ns::g<void (*)(int)>(void (*)(int)) const") == "ns::g<void (*)(int)>");
  CHECK(without_parameters("(anonymous namespace)::h()") == "(anonymous namespace)::h");
  CHECK(without_parameters("plain") == "plain");
  CHECK(without_parameters("unbalanced)") == "unbalanced)");
}

TEST_CASE("select filters by state, text in names or functions, group and findings, and sorts with ties by id",
          "[ui]") {
  TopModel model;
  model.set_dump(ui::testing::crowded_server(9));
  auto filter = [](auto&& set) {
    FiberFilter f;
    set(f);
    return f;
  };
  auto ids = [&](const std::vector<std::size_t>& rows) {
    std::vector<std::uint64_t> out;
    for (std::size_t i : rows) out.push_back(model.rows()[i].fiber->id);
    return out;
  };
  CHECK(ids(model.select(filter([](FiberFilter& f) { f.state = StateCategory::sleeping; }), SortColumn::id, false)) ==
        std::vector<std::uint64_t>{21, 100, 103, 106});
  CHECK(ids(model.select(filter([](FiberFilter& f) { f.text = "resolve"; }), SortColumn::id, false)) ==
        std::vector<std::uint64_t>{22});
  CHECK(ids(model.select(filter([](FiberFilter& f) { f.text = "keep_alive"; }), SortColumn::id, true)) ==
        std::vector<std::uint64_t>{106, 103, 100, 21});
  CHECK(ids(model.select(filter([](FiberFilter& f) { f.with_findings = true; }), SortColumn::id, false)) ==
        std::vector<std::uint64_t>{22});
  const auto by_time = ids(model.select({}, SortColumn::time, true));
  CHECK(by_time.front() == 1);  // 754 s in waitgroup
  REQUIRE(!model.groups().empty());
  CHECK(model.groups().front().members.size() == 8);  // 6 handlers + 2 from the small server
  CHECK(model.select(filter([&](FiberFilter& f) { f.group_key = model.group_key(0); }), SortColumn::id, false)
            .size() == 8);
  CHECK(model.select(filter([](FiberFilter& f) { f.group_key = "no such group"; }), SortColumn::id, false).empty());
}

TEST_CASE("the selection follows its fiber across snapshots and re-sorting", "[ui]") {
  TopModel model;
  model.set_dump(ui::testing::small_server());
  FiberListPanel list(model);
  list.refresh();
  REQUIRE(list.select_fiber(21));
  list.sort_by(SortColumn::name, false);
  CHECK(list.selected_fiber() == 21u);
  auto next = ui::testing::small_server();
  next.fibers.erase(next.fibers.begin());  // fiber 1 finished
  model.set_dump(std::move(next));
  list.refresh();
  CHECK(list.selected_fiber() == 21u);
}

TEST_CASE("a list of ten thousand fibers draws only the rows that fit and End reaches the last", "[ui]") {
  TopModel model;
  model.set_dump(ui::testing::crowded_server(10'000));
  FiberListPanel list(model);
  list.refresh();
  Canvas canvas(100, 30);
  list.draw(canvas, {0, 0, 100, 30});
  CHECK(canvas.row_text(1).find("main") != std::string::npos);
  list.on_key(keys::kEnd);
  Canvas after(100, 30);
  list.draw(after, {0, 0, 100, 30});
  CHECK(after.row_text(29).find("10099") != std::string::npos);
  CHECK(after.role_at(29, 0) == Role::selected);
  list.on_key(keys::kPageUp);
  CHECK(list.selected_fiber() == 10099u - 28u);
}

TEST_CASE("a list cursor stays in range when its list shrinks or is empty", "[ui]") {
  ListCursor cursor;
  cursor.set_count(50);
  cursor.on_key(keys::kEnd);
  CHECK(cursor.selected() == 49);
  CHECK(cursor.first_visible(10) == 40);
  cursor.set_count(5);
  CHECK(cursor.selected() == 4);
  CHECK(cursor.first_visible(10) == 0);
  cursor.set_count(0);
  CHECK(cursor.on_key(keys::kDown));
  CHECK(cursor.selected() == 0);
}

TEST_CASE("a canvas clips at its edges and shows bytes that are not printable ASCII as '?'", "[ui]") {
  Canvas canvas(8, 2);
  CHECK(canvas.put(0, 5, "abcdef", Role::title) == 8);
  CHECK(canvas.row_text(0) == "     abc");
  CHECK(canvas.role_at(0, 7) == Role::title);
  canvas.put(1, -2, "xy\x1b[2J\xc3\xa9", Role::normal);
  CHECK(canvas.row_text(1) == "?[2J??");
  canvas.put(5, 0, "outside");  // ignored
  CHECK(canvas.to_text() == "     abc\n?[2J??\n");
  CHECK(Canvas(0, 0).to_text().empty());
}
