// JsonWriter: a small streaming JSON writer for the JSON reporter (no third-party JSON library).
//
//   JsonWriter json;
//   json.begin_object(); json.key("pid"); json.value(42); json.end_object();
//   json.str() == "{\"pid\":42}"
//
// Strings may come from the target and hold any bytes: control characters are escaped, and bytes that are not
// valid UTF-8 become U+FFFD, so the output is always valid JSON. Pretty-printed with two-space indents.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fiberscope::report {

class JsonWriter {
 public:
  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  // The key of the next member; only inside an object.
  void key(std::string_view name);
  void value(std::string_view text);
  void value(const char* text) { value(std::string_view(text)); }
  void value(std::int64_t number);
  void value(std::uint64_t number);
  void value(int number) { value(static_cast<std::int64_t>(number)); }
  void value(unsigned number) { value(static_cast<std::uint64_t>(number)); }
  void value(double number);  // non-finite numbers are written as null
  void value(bool flag);
  void null();

  const std::string& str() const { return out_; }

 private:
  void before_value();
  void newline();
  struct Level {
    bool is_object;
    bool empty = true;
  };
  std::string out_;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

// `text` as a JSON string literal, quotes included (escaped as JsonWriter does).
std::string json_quote(std::string_view text);

}  // namespace fiberscope::report
