// A shared library whose small exported function is followed by a static one. Once stripped, only the exported
// symbol (in .dynsym) is left: a pc in the static function lies past the exported symbol's st_size and must not be
// named after it (gdb says "??"; the defect named every such frame "sized_small_export +0x40").
#include <stdint.h>

// Small on purpose: a handful of bytes, so st_size ends long before the static function does.
__attribute__((visibility("default"), noinline)) int sized_small_export(int x) { return x + 1; }

// Static: only .symtab names it, and strip removes that. The volatile loop keeps its body large.
static __attribute__((noinline, used)) uint64_t sized_hidden_static(uint64_t n) {
  volatile uint64_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum += i * 7 + (sum >> 3);
  return sum;
}

__attribute__((visibility("default"), noinline)) uint64_t sized_call_hidden(uint64_t n) {
  return sized_hidden_static(n) + 1;
}
