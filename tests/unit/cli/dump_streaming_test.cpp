// `fiberscope dump` streams its report: the dump is built without fiber arguments and each fiber's arguments are
// read just before it is printed (session::FiberArgsReader). These tests hold the streamed bytes to what a dump
// built with every argument up front prints, on real fiber programs, live and from a core.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <sstream>

#include "cli/dump_command.h"
#include "cli/gcore_command.h"
#include "report/json_reporter.h"
#include "session/inspection.h"
#include "target/test_process.h"

using namespace fiberscope;
using namespace fiberscope::cli;
using fiberscope::testing::bin;
using fiberscope::testing::TestProcess;

namespace {

// Just enough JSON to check a dump's structure: a strict parser (RFC 8259 grammar, string escapes kept as
// written) that fails the test on the first syntax error.
struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  std::string text;  // number or string contents
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;

  const JsonValue& operator[](const std::string& key) const {
    for (const auto& [name, value] : members)
      if (name == key) return value;
    FAIL("no member " << key);
    return *this;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  JsonValue document() {
    JsonValue value = parse_value();
    skip_space();
    if (at_ < text_.size()) fail("text after the document");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    FAIL("JSON: " << what << " at offset " << at_);
    throw std::runtime_error(what);  // not reached: FAIL throws
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  void expect(char c) {
    skip_space();
    if (at_ >= text_.size() || text_[at_] != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  bool take_word(std::string_view word) {
    if (text_.compare(at_, word.size(), word) != 0) return false;
    at_ += word.size();
    return true;
  }
  std::string parse_string() {
    expect('"');
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      if (static_cast<unsigned char>(text_[at_]) < 0x20) fail("raw control character in a string");
      if (text_[at_] == '\\') out.push_back(text_[at_++]);
      if (at_ < text_.size()) out.push_back(text_[at_++]);
    }
    expect('"');
    return out;
  }
  JsonValue parse_value() {
    skip_space();
    if (at_ >= text_.size()) fail("unexpected end");
    JsonValue value;
    const char c = text_[at_];
    if (c == '{') {
      value.kind = JsonValue::Kind::object;
      ++at_;
      skip_space();
      if (at_ < text_.size() && text_[at_] == '}') return ++at_, value;
      do {
        std::string key = parse_string();
        expect(':');
        value.members.emplace_back(std::move(key), parse_value());
        skip_space();
      } while (at_ < text_.size() && text_[at_] == ',' && ++at_);
      expect('}');
    } else if (c == '[') {
      value.kind = JsonValue::Kind::array;
      ++at_;
      skip_space();
      if (at_ < text_.size() && text_[at_] == ']') return ++at_, value;
      do {
        value.items.push_back(parse_value());
        skip_space();
      } while (at_ < text_.size() && text_[at_] == ',' && ++at_);
      expect(']');
    } else if (c == '"') {
      value.kind = JsonValue::Kind::string;
      value.text = parse_string();
    } else if (take_word("null")) {
      value.kind = JsonValue::Kind::null;
    } else if (take_word("true") || take_word("false")) {
      value.kind = JsonValue::Kind::boolean;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      value.kind = JsonValue::Kind::number;
      const std::size_t start = at_++;
      while (at_ < text_.size() && std::strchr("0123456789.eE+-", text_[at_])) ++at_;
      value.text = text_.substr(start, at_ - start);
    } else {
      fail(std::string("unexpected '") + c + "'");
    }
    return value;
  }

  const std::string& text_;
  std::size_t at_ = 0;
};

struct Streamed {
  int exit_code;
  std::string out;
  std::string err;
};

Streamed streamed_dump(const DumpOptions& options) {
  std::ostringstream out;
  Streamed run;
  run.exit_code = run_dump(options, out, run.err);
  run.out = std::move(out).str();
  return run;
}

}  // namespace

TEST_CASE("a lean dump streamed with each fiber's arguments read on demand is the bytes of a dump built with "
          "all of them, in JSON and in text") {
  TestProcess target({bin("fiber_states_O0"), "--sleepers=20"});
  REQUIRE(target.wait_for("READY"));
  auto inspection = session::inspect_live(target.pid(), {.stop = true});
  REQUIRE(inspection);
  const report::Dump full = session::build_dump(*inspection, {});
  session::BuildOptions lean_options;
  lean_options.fiber_args = false;
  const report::Dump lean = session::build_dump(*inspection, lean_options);
  session::FiberArgsReader reader(inspection->snapshot, &*inspection->table, *inspection->modules, lean_options);
  std::size_t asked = 0;
  const report::FiberStackSource with_args = [&](const report::Fiber& fiber) {
    ++asked;
    std::optional<report::Stack> stack = reader.stack_with_args(fiber.id);
    REQUIRE(stack);
    return std::move(*stack);
  };

  std::ostringstream json;
  report::write_json(lean, json, with_args);
  CHECK(json.str() == report::render_json(full));
  CHECK(json.str().find("\"name\": \"seconds\",\n") != std::string::npos);
  CHECK(asked == full.fibers.size());

  for (auto grouping : {report::TextOptions::Grouping::off, report::TextOptions::Grouping::on}) {
    std::ostringstream text;
    report::write_text(lean, text, {.grouping = grouping}, with_args);
    CHECK(text.str() == report::render_text(full, {.grouping = grouping}));
  }
  CHECK_FALSE(reader.stack_with_args(999'999'999));  // no such fiber
}

TEST_CASE("run_dump streams the same bytes, errors and exit code as its string form (from a core, so that both "
          "read the same snapshot)") {
  TestProcess target({bin("fiber_states_O0"), "--sleepers=5"});
  REQUIRE(target.wait_for("READY"));
  const std::filesystem::path core =
      std::filesystem::temp_directory_path() / ("fiberscope-streaming-" + std::to_string(::getpid()) + ".core");
  std::string gcore_out, gcore_err;
  REQUIRE(run_gcore({.pid = target.pid(), .output_path = core.string()}, gcore_out, gcore_err) == kExitClean);

  for (auto format : {DumpOptions::Format::text, DumpOptions::Format::json, DumpOptions::Format::folded}) {
    for (auto grouping : {report::TextOptions::Grouping::off, report::TextOptions::Grouping::on}) {
      DumpOptions options;
      options.core_path = core.string();
      options.format = format;
      options.grouping = grouping;
      INFO("format " << static_cast<int>(format) << ", grouping " << static_cast<int>(grouping));
      std::string out, err;
      const int code = run_dump(options, out, err);
      const Streamed streamed = streamed_dump(options);
      CHECK(code == kExitClean);
      CHECK(streamed.exit_code == code);
      CHECK(streamed.out == out);
      CHECK(streamed.err == err);
      CHECK(out.find("sleep_outer") != std::string::npos);
    }
  }
  std::filesystem::remove(core);

  DumpOptions gone;  // an error before any report: nothing on out, the message on err
  gone.pid = 999'999'999;
  const Streamed failed = streamed_dump(gone);
  CHECK(failed.exit_code == kExitError);
  CHECK(failed.out.empty());
  CHECK(failed.err.starts_with("fiberscope: "));
}

TEST_CASE("a streamed JSON dump of a program with many fibers parses and has every fiber with its arguments") {
  constexpr int kSleepers = 300;
  TestProcess target({bin("fiber_states_O0"), "--sleepers=" + std::to_string(kSleepers)});
  REQUIRE(target.wait_for("READY"));
  DumpOptions options;
  options.pid = target.pid();
  options.format = DumpOptions::Format::json;
  const Streamed run = streamed_dump(options);
  INFO(run.err);
  CHECK(run.exit_code == kExitClean);
  REQUIRE(run.out.ends_with("}\n"));

  const JsonValue dump = JsonParser(run.out).document();
  const JsonValue& fibers = dump["fibers"];
  REQUIRE(fibers.kind == JsonValue::Kind::array);
  CHECK(fibers.items.size() >= 6 + kSleepers);  // the six named fibers, the sleepers, and the runtime's own
  std::vector<bool> seen(kSleepers + 1, false);
  for (const JsonValue& fiber : fibers.items) {
    const std::string& name = fiber["name"].text;
    if (!name.starts_with("sleeper-")) continue;
    const int k = std::stoi(name.substr(8));
    REQUIRE(k >= 1);
    REQUIRE(k <= kSleepers);
    INFO(name);
    // Its sleep_outer frame has the argument that only this sleeper has: seconds=3600+k.
    bool found = false;
    for (const JsonValue& frame : fiber["frames"].items) {
      if (frame["function"].text.find("sleep_outer") == std::string::npos) continue;
      REQUIRE(frame["args"].kind == JsonValue::Kind::array);
      for (const JsonValue& arg : frame["args"].items)
        found |= arg["name"].text == "seconds" && arg["value"].text == std::to_string(3600 + k);
    }
    CHECK(found);
    seen[static_cast<std::size_t>(k)] = true;
  }
  CHECK(std::count(seen.begin() + 1, seen.end(), true) == kSleepers);
}
