// Terminal: where `fiberscope top` shows its canvas and reads keys. The only implementation that talks to a
// real terminal is curses_terminal.cpp (the one file that includes curses); keeping curses behind this
// interface lets everything else be tested with a text canvas.
#pragma once

#include <signal.h>

#include <memory>
#include <optional>

#include "base/result.h"
#include "ui/canvas.h"
#include "ui/keys.h"

namespace fiberscope::ui {

class Terminal {
 public:
  virtual ~Terminal() = default;
  // Current size in columns and rows (re-read after keys::kResize).
  virtual int width() const = 0;
  virtual int height() const = 0;
  // The next key, waiting at most `timeout_ms`; nullopt if none came (or a signal interrupted the wait).
  virtual std::optional<Key> read_key(int timeout_ms) = 0;
  // Shows `canvas` (same size as the terminal), only the cells that changed being sent.
  virtual void present(const Canvas& canvas) = 0;
};

// Takes over the controlling terminal (alternate screen, no echo, keypad keys, colours if it has them). The
// terminal is given back when the object is destroyed, and also if fiberscope crashes meanwhile (SIGSEGV, SIGBUS,
// SIGABRT, SIGFPE, SIGILL: the crash then goes on as it would have). Fails when stdin/stdout is not a terminal.
Result<std::unique_ptr<Terminal>> open_curses_terminal();

// An alternate signal stack for the calling thread while the object lives, so that the crash handlers that give
// the terminal back run after a stack overflow too. The terminal holds one for its thread, the pump for its own.
class CrashSignalStack {
 public:
  CrashSignalStack();
  ~CrashSignalStack();
  CrashSignalStack(const CrashSignalStack&) = delete;
  CrashSignalStack& operator=(const CrashSignalStack&) = delete;

 private:
  std::unique_ptr<char[]> memory_;
  stack_t previous_{};
  bool installed_ = false;
};

}  // namespace fiberscope::ui
