// A DWARF 5 unit whose line program starts in a header (file 1) rather than in its own file (file 0): the rows of
// header_first_work must name header_first.h. main also inlines a function from the same header.
#include "header_first.h"

int main(int argc, char** argv) {
  (void)argv;
  return header_first_work(argc) + header_first_inlined(argc);  // header_first main call
}
