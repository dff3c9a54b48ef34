// The one file of fiberscope that includes curses: it maps canvas roles to colours (or to bold / reverse on a
// terminal without colours) and curses' key codes to ui::keys.
#include <curses.h>
#include <unistd.h>

#include <array>

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

class CursesTerminal final : public Terminal {
 public:
  CursesTerminal() {
    // newterm rather than initscr: initscr exits the process on failure, and we want to report and return.
    screen_ = newterm(nullptr, stdout, stdin);
    if (!screen_) return;
    set_term(screen_);
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
  SCREEN* screen_ = nullptr;
  bool colours_ = false;
};

}  // namespace

Result<std::unique_ptr<Terminal>> open_curses_terminal() {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
    return fail("fiberscope top needs a terminal (stdin and stdout are not both terminals)");
  auto terminal = std::make_unique<CursesTerminal>();
  if (!terminal->ok()) return fail("cannot use the terminal (is TERM set to a type terminfo knows?)");
  return std::unique_ptr<Terminal>(std::move(terminal));
}

}  // namespace fiberscope::ui
