#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang and runs them over their seed corpora.
#   scripts/fuzz.sh --ci                  every target for 10 s (CI: exit 1 on any finding)
#   scripts/fuzz.sh --time 600 [TARGET]   a long run of one target (or all, one after the other)
#   scripts/fuzz.sh --build-only
# Targets: elf_image dwarf cfi go_pclntab fiber_table core_file. The working corpus grows in build-fuzz/corpus/<target>
# (the repository's seeds in tests/fuzz/corpus/<target> are only read); a crash, leak or timeout leaves its input
# in build-fuzz/findings/<target>/ and makes the script fail. Each run's log (with libFuzzer's final stats:
# stat::number_of_executed_units) is build-fuzz/logs/<target>.log.
#
# clang 16, not the default clang 14: clang 14 cannot compile libstdc++ 12's std::expected (no P0848), and both
# need __cpp_concepts raised to C++20's value before <expected> declares anything.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) seconds=10 ;;
    --time) seconds=$2; shift ;;
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=(elf_image dwarf cfi go_pclntab fiber_table core_file)

build=${FIBERSCOPE_FUZZ_BUILD_DIR:-build-fuzz}
cxx=${FUZZ_CXX:-clang++-16}
cc=${FUZZ_CC:-clang-16}
command -v "$cxx" >/dev/null || { echo "fuzz.sh: $cxx not found (scripts/setup.sh installs clang-16)"; exit 2; }

if [ ! -f "$build/build.ninja" ]; then
  CC=$cc CXX=$cxx cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g -DNDEBUG" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g -DNDEBUG" \
    -DFIBERSCOPE_FUZZ=ON -DFIBERSCOPE_SANITIZE=address -DFIBERSCOPE_BUILD_BENCH=OFF \
    "-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link" \
    "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link -D__cpp_concepts=202002L -Wno-macro-redefined" >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")
[ $build_only -eq 1 ] && exit 0

declare -A max_len=([elf_image]=65536 [dwarf]=65536 [cfi]=16384 [go_pclntab]=16384 [fiber_table]=16384 [core_file]=65536)
status=0
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  findings="$build/findings/$target"
  mkdir -p "$corpus" "$findings" "$build/logs"
  log="$build/logs/$target.log"
  echo "== fuzz_$target for ${seconds}s"
  # -timeout: one input taking longer than 10 s is a hang; -rss_limit_mb: an allocation driven by input.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$build/bin/fuzz_$target" "$corpus" "tests/fuzz/corpus/$target" \
       -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
       -max_len="${max_len[$target]:-65536}" -artifact_prefix="$findings/" -print_final_stats=1 \
       >"$log" 2>&1; then
    grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$log" | tail -n 2 || true
  else
    echo "fuzz_$target: FINDING (log: $log, input in $findings/)"
    grep -E '^==[0-9]+==ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 8 || true
    status=1
  fi
done
exit $status
