#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds fiberscope and runs the whole test suite:
#   1. the plain build (RelWithDebInfo), every test;
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build, every test;
#   3. ThreadSanitizer build, the runtime's tests;
#   4. the libFuzzer targets (tests/fuzz), 10 s each over their seed corpora.
# The sanitizer builds compile at -O1 -g (about a third faster to build than -O2 -g with the instrumentation; the
# test programs keep their own -O0/-O2 flags, and full debug info stays for the runtime's DWARF the checks read).
# Each stage prints how long it took; the whole run stays under 15 minutes on 2 cores.
# Usage: scripts/test.sh [--quick]   (--quick: step 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/setup.sh

jobs=$(nproc)
werror=OFF
[ -n "${CI:-}" ] && werror=ON

configure() {  # configure DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DFIBERSCOPE_WERROR=$werror "$@" >/dev/null
}
# The sanitizer trees share the plain tree's Go build cache (tests/programs/go): Go programs are not instrumented.
sanitizer_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g -DNDEBUG"
                 "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g -DNDEBUG" -DFIBERSCOPE_BUILD_BENCH=OFF
                 "-DFIBERSCOPE_GO_CACHE=$PWD/build/tests/programs/go/home/cache")

stage_start=$SECONDS
stage() {  # stage NAME: ends the previous stage (printing its time) and starts the next; "done" ends the last
  [ -n "${stage_name:-}" ] && echo "== $stage_name: $((SECONDS - stage_start)) s"
  [ "$1" = done ] && { echo "== all stages: $SECONDS s"; return; }
  stage_name=$1
  stage_start=$SECONDS
  echo "== $1"
}

# ctest runs each Catch test case by name; a name starting with '-' would be read as an option and fail.
if grep -rn --include='*.cpp' 'TEST_CASE("-' tests/; then
  echo "test names above start with '-': Catch would take them for options under ctest"; exit 1
fi

stage "plain build"
configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
stage "plain tests"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 300 --no-tests=error ||
  { echo "plain tests failed"; exit 1; }
[ $quick -eq 1 ] && { stage "done"; exit 0; }

stage "address+undefined sanitizer build"
configure build-asan "${sanitizer_flags[@]}" -DFIBERSCOPE_SANITIZE=address
cmake --build build-asan -j"$jobs"
stage "address+undefined sanitizer tests"
# handle_sigbus=0: the inspector guards its own reads of mapped files with a SIGBUS handler, and one test checks that
# a SIGBUS outside a guard still ends the process as SIGBUS does (ASan would report and exit 1 instead).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:handle_sigbus=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 300 --no-tests=error ||
  { echo "address/undefined sanitizer tests failed"; exit 1; }

stage "thread sanitizer build and the runtime's tests"
configure build-tsan "${sanitizer_flags[@]}" -DFIBERSCOPE_SANITIZE=thread
cmake --build build-tsan -j"$jobs" --target runtime_tests
# Only runtime_tests is built in this tree: the other executables register one placeholder *_NOT_BUILT test each.
TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j"$jobs" --timeout 300 --no-tests=error \
  -E "_NOT_BUILT-" ||
  { echo "thread sanitizer tests failed"; exit 1; }

stage "fuzzing (libFuzzer, 10 s per decoder; scripts/fuzz.sh)"
if command -v clang++-16 >/dev/null; then
  bash scripts/fuzz.sh --ci || { echo "fuzzing found a crash, leak or hang (input in build-fuzz/findings/)"; exit 1; }
else
  echo "skipped: clang++-16 is not installed (scripts/setup.sh installs it)"
fi
stage "done"
