// Keys as the panels see them: printable ASCII as itself, control keys as their ASCII code, and the keys a
// terminal sends as escape sequences as the constants below. curses_terminal.cpp translates curses' codes.
#pragma once

namespace fiberscope::ui {

using Key = int;

namespace keys {
inline constexpr Key kCtrlC = 3;
inline constexpr Key kTab = 9;
inline constexpr Key kEnter = 10;
inline constexpr Key kEscape = 27;
inline constexpr Key kBackspace = 127;
inline constexpr Key kUp = 0x101;
inline constexpr Key kDown = 0x102;
inline constexpr Key kLeft = 0x103;
inline constexpr Key kRight = 0x104;
inline constexpr Key kPageUp = 0x105;
inline constexpr Key kPageDown = 0x106;
inline constexpr Key kHome = 0x107;
inline constexpr Key kEnd = 0x108;
inline constexpr Key kF1 = 0x111;  // F1..F10 are consecutive
inline constexpr Key kF10 = 0x11a;
inline constexpr Key kResize = 0x120;  // the terminal changed size
}  // namespace keys

}  // namespace fiberscope::ui
