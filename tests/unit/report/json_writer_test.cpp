#include <catch2/catch.hpp>

#include "report/json_writer.h"
#include "report/text_reporter.h"

using namespace fiberscope::report;

TEST_CASE("json strings escape quotes, backslashes and control characters") {
  CHECK(json_quote("a\"b\\c") == R"("a\"b\\c")");
  CHECK(json_quote("line\nnext\ttab") == R"("line\nnext\ttab")");
  CHECK(json_quote(std::string("nul\0bell\x07", 9)) == R"("nul\u0000bell\u0007")");
  CHECK(json_quote("\x1b[31m") == R"("\u001b[31m")");
}

TEST_CASE("json strings keep valid UTF-8 and replace each invalid byte") {
  CHECK(json_quote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\"");
  CHECK(json_quote("\xff\xfe") == R"("\ufffd\ufffd")");
  CHECK(json_quote("\xc3") == R"("\ufffd")");                 // truncated sequence
  CHECK(json_quote("\xc0\xaf") == R"("\ufffd\ufffd")");       // overlong '/'
  CHECK(json_quote("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");  // a UTF-16 surrogate
  CHECK(json_quote("\xf4\x90\x80\x80") == R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
}

TEST_CASE("the json writer separates members and nests containers") {
  JsonWriter json;
  json.begin_object();
  json.key("a"), json.value(1);
  json.key("b"), json.begin_array();
  json.value(true), json.null(), json.value(std::uint64_t{18446744073709551615ull});
  json.end_array();
  json.key("empty"), json.begin_object(), json.end_object();
  json.key("ratio"), json.value(1.5);
  json.end_object();
  CHECK(json.str() ==
        "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    null,\n    18446744073709551615\n  ],\n  \"empty\": {},\n"
        "  \"ratio\": 1.500\n}");
}

TEST_CASE("durations read like Go's") {
  CHECK(format_duration(412'000'000) == "412ms");
  CHECK(format_duration(12'400'000'000) == "12s");
  CHECK(format_duration(192'000'000'000) == "3m12s");
  CHECK(format_duration(3'723'000'000'000) == "1h2m3s");
}

TEST_CASE("fiber id lists collapse consecutive runs and stop after a cap") {
  CHECK(format_id_ranges({40, 3, 7, 9, 10, 11, 12}) == "3, 7, 9-12, 40");
  CHECK(format_id_ranges({1, 3, 5, 7}, 2) == "1, 3, ... (2 more)");
  CHECK(format_id_ranges({}) == "");
}
