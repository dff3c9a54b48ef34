// Error and Result: how every layer of the inspector reports a failure.
//
// Anything decoded from the target (memory, ELF, DWARF, core notes, /proc text) returns a Result<T>; the Error
// carries a message that says what failed and where ("reading fiber 12: memory at 0x7f00 unreadable").
// Layers add context as the error travels up with `with_context`. No exception crosses a public header.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace fiberscope {

struct Error {
  std::string message;

  // Returns this error prefixed with "context: ".
  Error with_context(std::string_view context) const {
    return Error{std::string(context) + ": " + message};
  }
};

template <class T>
using Result = std::expected<T, Error>;

// Builds the failure side of a Result: `return fail("truncated note at offset 0x", hex(off));`
template <class... Parts>
std::unexpected<Error> fail(Parts&&... parts) {
  std::string message;
  (message.append(std::string_view(std::forward<Parts>(parts))), ...);
  return std::unexpected(Error{std::move(message)});
}

// Adds context to the error of a failed Result, passing a successful one through.
template <class T>
Result<T> with_context(Result<T> result, std::string_view context) {
  if (!result) return std::unexpected(result.error().with_context(context));
  return result;
}

}  // namespace fiberscope
