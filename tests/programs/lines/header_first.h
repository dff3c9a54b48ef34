// Included first by header_first.c: gcc emits this header's out-of-line function before any of the .c file's, so
// the DWARF 5 line program starts in file 1 (this header) without a DW_LNS_set_file, while file 0 is the .c file.
#pragma once

static __attribute__((noinline)) int header_first_work(int x) {
  volatile int y = x;  // header_first_work body
  return y * 3;
}

static inline int header_first_inlined(int x) {
  return x + 11;  // header_first_inlined body
}
