/* C side of the Go peer: kept out of main.go's preamble because a file with //export may only declare C
 * functions there. */
#include "_cgo_export.h"

void empty_c_function(void) {}

void c_calls_back_once(void) { goCallback(); }
