#!/usr/bin/env bash
# Runs every benchmark program of a build directory and prints their `BENCH name=... impl=... ns_per_op=...`
# lines, then a table. Builds nothing: configure with -DFIBERSCOPE_BUILD_BENCH=ON and build first.
#   bench/run.sh [build-dir]     (default: build, relative to the current directory)
#   BENCH_CLOCK=cpu bench/run.sh  times with process CPU time instead of wall time (steadier on a loaded machine)
set -euo pipefail

build_dir=${1:-build}
bin_dir=$build_dir/bin
if [ ! -d "$bin_dir" ]; then
  echo "run.sh: no $bin_dir; build with -DFIBERSCOPE_BUILD_BENCH=ON first" >&2
  exit 2
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT


for program in bench_fiberscope bench_boost_context bench_boost_fiber bench_go; do
  if [ ! -x "$bin_dir/$program" ]; then
    echo "run.sh: $bin_dir/$program not built, skipped" >&2

    continue
  fi
  # Every peer runs on one OS thread's worth of scheduler; GOMAXPROCS=1 is also set inside the Go program.
  GOMAXPROCS=1 "$bin_dir/$program" | tee -a "$results"
done

echo
awk '
  /^BENCH / {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); field[kv[1]] = kv[2] }
    name = field["name"]; impl = field["impl"]
    if (!(name in seen)) { seen[name] = 1; names[++n] = name }
    if (!(impl in seen_impl)) { seen_impl[impl] = 1; impls[++m] = impl }
    value[name, impl] = field["ns_per_op"]
  }
  END {
    printf "%-24s", "ns/op"; for (j = 1; j <= m; j++) printf " %14s", impls[j]; printf "\n"
    for (i = 1; i <= n; i++) {
      printf "%-24s", names[i]
      for (j = 1; j <= m; j++) {
        v = ((names[i], impls[j]) in value) ? value[names[i], impls[j]] : "-"; printf " %14s", v
      }
      printf "\n"
    }
  }' "$results"
exit 0
