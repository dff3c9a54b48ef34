// JsonWriter: a small streaming JSON writer for the JSON reporter (no third-party JSON library).
//
//   JsonWriter json;
//   json.begin_object(); json.key("pid"); json.value(42); json.end_object();
//   json.str() == "{\"pid\":42}"
//
// Given a sink, it writes there as it goes: flush() hands over what is buffered, so a document of any size needs
// no more memory than the caller lets build up between flushes.
//
// Strings may come from the target and hold any bytes: control characters are escaped, and bytes that are not
// valid UTF-8 become U+FFFD, so the output is always valid JSON. Pretty-printed with two-space indents.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace fiberscope::report {

class JsonWriter {
 public:
  JsonWriter() = default;
  // Writes to `sink` on flush(); the sink must outlive the writer.
  explicit JsonWriter(std::ostream& sink) : sink_(&sink) {}

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

  // The text not yet flushed (all of it without a sink).
  const std::string& str() const { return out_; }
  // Writes the buffered text to the sink and empties the buffer; nothing without a sink.
  void flush();

 private:
  void before_value();
  void newline();
  struct Level {
    bool is_object;
    bool empty = true;
  };
  std::string out_;
  std::ostream* sink_ = nullptr;
  std::vector<Level> levels_;
  bool after_key_ = false;
};

// `text` as a JSON string literal, quotes included (escaped as JsonWriter does).
std::string json_quote(std::string_view text);

}  // namespace fiberscope::report
