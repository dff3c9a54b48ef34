// Error and Result: how every layer of the inspector reports a failure.
//
// Anything decoded from the target (memory, ELF, DWARF, core notes, /proc text) returns a Result<T>; the Error
// carries a message that says what failed and where ("reading fiber 12: memory at 0x7f00 unreadable").
// Layers add context as the error travels up with `with_context`. No exception crosses a public header.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace fiberscope {

// What kind of failure an Error is, for callers that must tell them apart (the CLI maps them to exit codes and
// advice). Most errors are `unspecified`; a layer sets a code only where a caller can act on it.
enum class ErrorCode : std::uint8_t {
  unspecified = 0,
  no_such_process,    // the pid does not exist (or vanished before anything was read)
  permission_denied,  // ptrace/process_vm_readv refused; the message says why and what to change
  target_exited,      // the target exited or became a zombie while being attached
  interrupted,        // the inspector received SIGINT/SIGTERM/SIGHUP and a handler chose to continue
};

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::unspecified;

  // Returns this error prefixed with "context: " (the code is kept).
  Error with_context(std::string_view context) const {
    return Error{std::string(context) + ": " + message, code};
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

// Like fail(), with an ErrorCode a caller can act on:
// `return fail_code(ErrorCode::no_such_process, "no process ", id);`
template <class... Parts>
std::unexpected<Error> fail_code(ErrorCode code, Parts&&... parts) {
  auto failure = fail(std::forward<Parts>(parts)...);
  failure.error().code = code;
  return failure;
}

// Adds context to the error of a failed Result, passing a successful one through.
template <class T>
Result<T> with_context(Result<T> result, std::string_view context) {
  if (!result) return std::unexpected(result.error().with_context(context));
  return result;
}

}  // namespace fiberscope

// Propagation: the one way a failed Result (or any std::expected) leaves the enclosing function unchanged.
//   FS_TRY(header, read_header(bytes));  // a failure returns std::unexpected(header.error()); else use *header
//   FS_TRY_DISCARD(reader.skip(4));      // the same, for a result whose value is not needed
// The enclosing function returns a std::expected with the same error type. A macro because C++ has no `?`.
#define FS_TRY(var, expr) \
  auto var = (expr);      \
  if (!var) return std::unexpected(std::move(var).error())
#define FS_TRY_DISCARD(expr)                                   \
  do {                                                         \
    if (auto fs_try_result_ = (expr); !fs_try_result_)         \
      return std::unexpected(std::move(fs_try_result_).error()); \
  } while (false)
