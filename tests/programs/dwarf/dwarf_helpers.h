// Inline helpers for dwarf_sample: their bodies live in this header so inlined frames have a different file
// than their call sites.
#pragma once

namespace dwarf_sample {

extern volatile long sink;

__attribute__((always_inline)) inline long inlined_square(long value) {
  sink = value;  // HELPER_SQUARE_BODY
  return value * value;
}

__attribute__((always_inline)) inline long inlined_twice(long value) {
  long squared = inlined_square(value + 1);  // HELPER_TWICE_CALLS_SQUARE
  return squared + 2;
}

}  // namespace dwarf_sample
