#!/usr/bin/env bash
# `fiberscope check` vs `fiberscope dump` on the Go scale program (bench/inspector/go_scale: N goroutines parked at
# depth 15), same process, best of R runs each: wall time of the command and the pause it reports. Issue 16's goal:
# check costs at most 1.5x dump. Prints figures; asserts nothing.
#
#   bench/go_check_vs_dump.sh [build-dir] [goroutines] [runs]     # defaults: build 10000 5
set -euo pipefail
build=${1:-build}
n=${2:-10000}
runs=${3:-5}
bin=$build/bin
for tool in fiberscope scale_go; do
  [ -x "$bin/$tool" ] || { echo "missing $bin/$tool (cmake --build $build --target $tool)" >&2; exit 2; }
done
log=$(mktemp)
"$bin/scale_go" -goroutines "$n" > "$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 600); do grep -q READY "$log" && break; sleep 0.1; done
grep -q READY "$log" || { echo "scale_go did not get ready" >&2; exit 2; }

# best_of COMMAND...: the fastest wall time in ms over $runs runs, and that run's "paused X ms" if it printed one.
best_of() {
  local best="" pause=""
  for _ in $(seq 1 "$runs"); do
    local start end out ms
    start=$(date +%s%N)
    out=$("$@" 2>&1 || true)
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then
      best=$ms
      pause=$(grep -o 'paused [0-9.]* ms' <<< "$out" | head -1 | grep -o '[0-9.]*' || true)
    fi
  done
  echo "$best ${pause:-?}"
}

read -r dump_ms dump_pause < <(best_of "$bin/fiberscope" dump "$pid")
read -r check_ms check_pause < <(best_of "$bin/fiberscope" check "$pid")
echo "scale_go, $n goroutines at depth 15, best of $runs:"
printf '  %-22s %8s ms total, paused %s ms\n' "fiberscope dump" "$dump_ms" "$dump_pause"
printf '  %-22s %8s ms total, paused %s ms\n' "fiberscope check" "$check_ms" "$check_pause"
awk -v c="$check_ms" -v d="$dump_ms" 'BEGIN { if (d > 0) printf "  check / dump = %.2f (goal <= 1.5)\n", c / d }'
