// dwarf_sample: a program with known functions, inlined functions and parameters of known values, built at -O0
// and -O2 -g for the binary/ tests. Run with no argument it prints READY and blocks; the tests mostly read it
// statically (symbols, line table, DWARF), so the markers below (LINE comments) are what they look for.
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "dwarf_helpers.h"

namespace dwarf_sample {

volatile long sink;

// Exported to .dynsym so a stripped copy still has it (as the runtime's debug root is).
extern "C" {
__attribute__((visibility("default"), used)) long dwarf_sample_root[4] = {1, 2, 3, 4};
}

__attribute__((noinline)) long leaf_add(int first, long second, const char* label) {
  sink = first;  // LEAF_ADD_BODY
  sink = std::strlen(label);
  return first + second;
}

// Tail-calls leaf_add: leaf_add's frame then returns straight to main's call of this function, whose call site
// says what main passed here, not what leaf_add got.
__attribute__((noinline)) long tail_caller(int base) { return leaf_add(base + 1, 7, "tail"); }

// A lambda inlined into its function: DWARF names its body only "operator()", declared in an unnamed class inside
// with_lambda; frames qualify the name by those scopes.
__attribute__((noinline)) long with_lambda(long base) {
  auto scaled = [base](long factor) {
    sink = factor;
    return base * factor;
  };
  return scaled(3) + scaled(5);
}

// The same in a function that is itself always inlined: the closure is defined in its abstract instance only.
inline __attribute__((always_inline)) long inlined_with_lambda(long base) {
  auto offset = [base](long value) {
    sink = value;
    return base + value;
  };
  return offset(7);
}

__attribute__((noinline)) long calls_inlined_with_lambda(long x) { return inlined_with_lambda(x) * 3; }

__attribute__((noinline)) long uses_inlines(long start) {
  long total = inlined_twice(start);  // USES_INLINES_CALLS_TWICE
  sink = total;
  return total + start;
}

struct Point {
  int x;
  int y;
};

__attribute__((noinline)) int takes_struct(Point* point, unsigned count) {
  int sum = 0;
  for (unsigned i = 0; i < count; ++i) sum += point->x * static_cast<int>(i) + point->y;
  sink = sum;
  return sum;
}

}  // namespace dwarf_sample

int main(int argc, char** argv) {
  using namespace dwarf_sample;
  dwarf_sample::Point point{3, 4};
  long result = leaf_add(42, 1000, "forty-two");  // MAIN_CALLS_LEAF_ADD
  result += uses_inlines(argc + 6);
  result += tail_caller(argc + 20);
  result += with_lambda(argc + 2);
  result += calls_inlined_with_lambda(argc + 4);
  result += takes_struct(&point, static_cast<unsigned>(argc) + 1);
  if (argc > 1 && std::strcmp(argv[1], "--print") == 0) {
    std::printf("%ld\n", result);
    return 0;
  }
  std::printf("READY\n");
  std::fflush(stdout);
  pause();
  return 0;
}
