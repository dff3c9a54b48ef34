// Arguments: walks one subcommand's command line. Every command (dump, check, gcore, top) parses its own options
// with it, so they all say the same things the same way ("--depth needs a value", "'x' is not a process id").
//
//   Arguments args(arguments, "dump");
//   std::optional<int> pid;
//   while (args.next()) {
//     if (args.is("--depth")) {
//       FS_TRY(depth, args.number<std::size_t>());
//     } else {
//       FS_TRY_DISCARD(args.pid_operand(pid));
//     }
//   }
#pragma once

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace fiberscope {

// `text` as a whole number of type Number (or a floating-point one), nothing if any of it is not.
template <class Number>
std::optional<Number> parse_number(std::string_view text) {
  Number value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

class Arguments {
 public:
  Arguments(const std::vector<std::string>& arguments, std::string command)
      : arguments_(arguments), command_(std::move(command)) {}

  // Moves to the next argument; false once they are all used.
  bool next() { return ++index_ < arguments_.size(); }
  const std::string& current() const { return arguments_[index_]; }
  bool is(std::string_view option) const { return current() == option; }
  bool is_help() const { return is("-h") || is("--help"); }

  // The value of the current option: the argument after it, which is used up.
  Result<std::string> value() {
    if (index_ + 1 >= arguments_.size() || arguments_[index_ + 1].empty()) return fail(current(), " needs a value");
    return arguments_[++index_];
  }

  // The value of the current option as a number; `what` describes it in the error ("a positive number").
  template <class Number>
  Result<Number> number(std::string_view what = "a number") {
    const std::string option = current();
    FS_TRY(text, value());
    auto parsed = parse_number<Number>(*text);
    if (!parsed) return fail(option, " needs ", what, ", not '", *text, "'");
    return *parsed;
  }

  // --core FILE, --exe PATH, --sysroot DIR (every command that reads a core takes them): stores the value of the
  // current argument if it is one of them and returns true; false if it is none of them.
  Result<bool> core_option(std::optional<std::string>& core_path, std::string& exe_path, std::string& sysroot) {
    if (!is("--core") && !is("--exe") && !is("--sysroot")) return false;
    std::string& stored = is("--core") ? core_path.emplace() : is("--exe") ? exe_path : sysroot;
    FS_TRY(text, value());
    stored = *text;
    return true;
  }

  // The current argument, which the caller did not recognise as one of its options: the command's PID operand if
  // `pid` is still empty, otherwise an unknown option or an extra operand.
  Result<void> pid_operand(std::optional<int>& pid) const {
    const std::string& argument = current();
    if (!argument.empty() && argument.front() == '-')
      return fail("unknown option '", argument, "' (see fiberscope ", command_, " --help)");
    if (pid) return fail("unexpected argument '", argument, "'");
    auto parsed = parse_number<int>(argument);
    if (!parsed || *parsed <= 0) return fail("'", argument, "' is not a process id");
    pid = *parsed;
    return {};
  }

 private:
  const std::vector<std::string>& arguments_;
  std::string command_;
  std::size_t index_ = static_cast<std::size_t>(-1);  // before the first argument
};

}  // namespace fiberscope
