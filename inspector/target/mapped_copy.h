// copy_from_mapping: memcpy out of a mapped file that may shrink under us. A page of a mapping past the file's new
// end raises SIGBUS, which would kill the inspector; here the fault of that copy turns into `false` instead (a
// SIGBUS handler, installed once, jumps back when the fault lies inside the copy in progress on this thread; any
// other SIGBUS takes its usual course). Only a plain byte copy runs under the guard, so jumping out of it skips
// nothing that needs unwinding.
//
//   if (!copy_from_mapping(out.data(), mapped + offset, out.size())) return fail(path, " shrank while being read");
#pragma once

#include <cstddef>

namespace fiberscope::target {

// Copies `size` bytes from `source` (inside a file mapping) to `destination`; false if the file no longer backs them.
bool copy_from_mapping(void* destination, const void* source, std::size_t size);

}  // namespace fiberscope::target
