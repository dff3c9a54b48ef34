// The one file of fiberscope that includes curses: it maps canvas roles to colours (or to bold / reverse on a
// terminal without colours) and curses' key codes to ui::keys, and it gives the terminal back if fiberscope
// crashes while curses owns it.
#include <curses.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <string_view>

#include "ui/terminal.h"

namespace fiberscope::ui {
namespace {

struct Style {
  short foreground;
  short background;
  attr_t extra;     // added with colours
  attr_t monochrome;  // used alone without colours
};

constexpr std::size_t kRoles = static_cast<std::size_t>(Role::count_);

// htop's habits: a blue-ish bar for titles, cyan column titles, the selection reversed, states in colour.
constexpr std::array<Style, kRoles> kStyles = {{
    /* normal */ {-1, -1, A_NORMAL, A_NORMAL},
    /* title */ {COLOR_CYAN, -1, A_BOLD, A_BOLD},
    /* label */ {COLOR_CYAN, -1, A_NORMAL, A_NORMAL},
    /* value */ {-1, -1, A_BOLD, A_BOLD},
    /* column_title */ {COLOR_BLACK, COLOR_GREEN, A_NORMAL, A_REVERSE},
    /* sorted_title */ {COLOR_BLACK, COLOR_CYAN, A_BOLD, A_REVERSE | A_BOLD},
    /* selected */ {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
    /* dim */ {COLOR_BLUE, -1, A_BOLD, A_DIM},
    /* running */ {COLOR_GREEN, -1, A_BOLD, A_BOLD},
    /* runnable */ {COLOR_GREEN, -1, A_NORMAL, A_NORMAL},
    /* syscall */ {COLOR_YELLOW, -1, A_NORMAL, A_NORMAL},
    /* foreign */ {COLOR_MAGENTA, -1, A_NORMAL, A_NORMAL},
    /* waiting */ {-1, -1, A_NORMAL, A_NORMAL},
    /* sleeping */ {COLOR_BLUE, -1, A_BOLD, A_DIM},
    /* finding */ {COLOR_RED, -1, A_BOLD, A_BOLD},
    /* error */ {COLOR_RED, -1, A_BOLD, A_BOLD | A_UNDERLINE},
    /* footer_key */ {-1, -1, A_BOLD, A_BOLD},
    /* footer_text */ {COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_REVERSE},
}};

Key translate(int code) {
  switch (code) {
    case KEY_UP: return keys::kUp;
    case KEY_DOWN: return keys::kDown;
    case KEY_LEFT: return keys::kLeft;
    case KEY_RIGHT: return keys::kRight;
    case KEY_PPAGE: return keys::kPageUp;
    case KEY_NPAGE: return keys::kPageDown;
    case KEY_HOME: return keys::kHome;
    case KEY_END: return keys::kEnd;
    case KEY_ENTER:
    case '\r': return keys::kEnter;
    case KEY_BACKSPACE:
    case 8: return keys::kBackspace;
    case KEY_RESIZE: return keys::kResize;
    default: break;
  }
  if (code >= KEY_F(1) && code <= KEY_F(10)) return keys::kF1 + (code - KEY_F(1));
  return code;
}

// ---- The terminal back after a crash ----
// A fault in fiberscope while curses owns the terminal would leave the user's shell in the alternate screen with no
// echo, no cursor and raw keys. The handlers below do only async-signal-safe work: write(2) of the reset sequences
// prepared while curses started, and tcsetattr(2) back to the modes saved before it changed them. Then they put
// back the signal's previous action (the default, unless a sanitizer installed its own) and raise the signal again:
// it is delivered when the handler returns, at the crash's own registers, so the exit status, the core and a
// sanitizer's report are the real crash's.

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
struct sigaction g_previous_crash_actions[std::size(kCrashSignals)];
termios g_shell_modes{};
char g_reset_sequences[256];
std::size_t g_reset_size = 0;
std::atomic<bool> g_terminal_given_back{false};  // once, even when two threads crash together

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}

void on_crash(int signal_number) {
  const int saved_errno = errno;
  if (!g_terminal_given_back.exchange(true)) {
    write_all(STDOUT_FILENO, g_reset_sequences, g_reset_size);
    // TCSANOW: TCSADRAIN could wait forever on a terminal that stopped reading (Ctrl-S).
    ::tcsetattr(STDOUT_FILENO, TCSANOW, &g_shell_modes);
  }
  for (std::size_t i = 0; i < std::size(kCrashSignals); ++i)
    if (kCrashSignals[i] == signal_number) ::sigaction(signal_number, &g_previous_crash_actions[i], nullptr);
  ::raise(signal_number);  // blocked while this handler runs: delivered as it returns
  errno = saved_errno;
}

// Appends a terminfo string to the reset sequences, without its padding ("$<5>", for tputs only: the handler
// writes the bytes as they are). Absent capabilities are skipped.
void add_reset_sequence(const char* capability) {
  char* text = tigetstr(capability);
  if (!text || text == reinterpret_cast<char*>(-1)) return;
  for (std::string_view rest = text; !rest.empty();) {
    if (rest.starts_with("$<")) {
      if (const std::size_t end = rest.find('>'); end != std::string_view::npos) {
        rest.remove_prefix(end + 1);
        continue;
      }
    }
    if (g_reset_size >= sizeof g_reset_sequences) return;
    g_reset_sequences[g_reset_size++] = rest.front();
    rest.remove_prefix(1);
  }
}

// What endwin() sends, in its order: attributes off, cursor shown, keypad transmit off, alternate screen left.
void prepare_reset_sequences() {
  g_reset_size = 0;
  for (const char* capability : {"sgr0", "cnorm", "rmkx", "rmcup"}) add_reset_sequence(capability);
}

void install_crash_handlers() {
  g_terminal_given_back.store(false);
  struct sigaction action {};
  action.sa_handler = on_crash;
  action.sa_flags = SA_ONSTACK;  // a stack overflow leaves no room on the thread's own stack
  sigemptyset(&action.sa_mask);
  for (std::size_t i = 0; i < std::size(kCrashSignals); ++i)
    ::sigaction(kCrashSignals[i], &action, &g_previous_crash_actions[i]);
}

void remove_crash_handlers() {
  for (std::size_t i = 0; i < std::size(kCrashSignals); ++i)
    ::sigaction(kCrashSignals[i], &g_previous_crash_actions[i], nullptr);
}

class CursesTerminal final : public Terminal {
 public:
  CursesTerminal() {
    // The shell's modes, before curses changes them: what a crash handler puts back.
    const bool have_modes = ::tcgetattr(STDOUT_FILENO, &g_shell_modes) == 0;
    // newterm rather than initscr: initscr exits the process on failure, and we want to report and return.
    screen_ = newterm(nullptr, stdout, stdin);
    if (!screen_) return;
    set_term(screen_);
    prepare_reset_sequences();
    if (have_modes) {
      install_crash_handlers();
      crash_handlers_ = true;
    }
    cbreak();  // Ctrl-C stays a signal: the run loop's handler ends the session cleanly
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    // Esc alone must not wait a second for an escape sequence to follow.
    set_escdelay(25);
    if (has_colors()) {
      start_color();
      use_default_colors();
      colours_ = true;
      for (std::size_t i = 0; i < kRoles; ++i)
        init_pair(static_cast<short>(i + 1), kStyles[i].foreground, kStyles[i].background);
    }
  }
  ~CursesTerminal() override {
    if (!screen_) return;
    if (crash_handlers_) remove_crash_handlers();
    endwin();
    delscreen(screen_);
  }
  CursesTerminal(const CursesTerminal&) = delete;
  CursesTerminal& operator=(const CursesTerminal&) = delete;

  bool ok() const { return screen_ != nullptr; }
  int width() const override { return COLS; }
  int height() const override { return LINES; }

  std::optional<Key> read_key(int timeout_ms) override {
    timeout(timeout_ms);
    const int code = getch();
    if (code == ERR) return std::nullopt;
    return translate(code);
  }

  void present(const Canvas& canvas) override {
    const int rows = std::min(canvas.height(), LINES);
    const int columns = std::min(canvas.width(), COLS);
    for (int row = 0; row < rows; ++row) {
      move(row, 0);
      for (int column = 0; column < columns; ++column) {
        // The bottom-right cell: writing it scrolls some terminals; it is always a footer blank anyway.
        if (row == LINES - 1 && column == COLS - 1) break;
        const auto role = static_cast<std::size_t>(canvas.role_at(row, column));
        const Style& style = kStyles[role < kRoles ? role : 0];
        const attr_t attributes =
            colours_ ? (COLOR_PAIR(static_cast<int>(role + 1)) | style.extra) : style.monochrome;
        addch(static_cast<chtype>(static_cast<unsigned char>(canvas.char_at(row, column))) | attributes);
      }
    }
    refresh();
  }

 private:
  CrashSignalStack signal_stack_;  // for this thread's crash handlers
  SCREEN* screen_ = nullptr;
  bool colours_ = false;
  bool crash_handlers_ = false;
};

}  // namespace

CrashSignalStack::CrashSignalStack() {
  // SIGSTKSZ is no longer a constant in recent glibc; 64 KiB is ample for on_crash and a sanitizer's handler.
  constexpr std::size_t kSize = 64 * 1024;
  memory_ = std::make_unique<char[]>(kSize);
  stack_t stack{};
  stack.ss_sp = memory_.get();
  stack.ss_size = kSize;
  installed_ = ::sigaltstack(&stack, &previous_) == 0;
}

CrashSignalStack::~CrashSignalStack() {
  // Back to the stack the thread had (a sanitizer's, or none) before this memory goes.
  if (installed_) ::sigaltstack(&previous_, nullptr);
}

Result<std::unique_ptr<Terminal>> open_curses_terminal() {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
    return fail("fiberscope top needs a terminal (stdin and stdout are not both terminals)");
  auto terminal = std::make_unique<CursesTerminal>();
  if (!terminal->ok()) return fail("cannot use the terminal (is TERM set to a type terminfo knows?)");
  return std::unique_ptr<Terminal>(std::move(terminal));
}

}  // namespace fiberscope::ui
