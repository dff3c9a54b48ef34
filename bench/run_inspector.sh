#!/usr/bin/env bash
# The inspector's scale benchmark (issue 3, "Speed"), side by side in one run:
#   - fiberscope on bench/inspector/scale_target (N fibers at depth 15), for each N;
#   - fiberscope and Delve (`goroutines -t 15`) on one process of the Go peer scale_go (N goroutines at depth 15),
#     side by side, for each N;
#   - the threads-only comparison: fiberscope, eu-stack and gdb on thread_target (100 pthreads at depth 10), and
#     on python3 with 100 threads blocked in threading.Event.wait (a real program: stripped libpython, libc with
#     its separate debug file when libc6-dbg is installed; issue 13).
# Prints one line per measurement (median of --repeat runs, each run a fresh inspector process: cold caches, DWARF
# loading included):
#   BENCH name=dump impl=fiberscope fibers=N pause_ms=.. total_ms=.. peak_rss_mb=..
#   BENCH name=dump_go impl=<fiberscope|delve> goroutines=N pause_ms=.. total_ms=.. peak_rss_mb=..
#   BENCH name=dump_core impl=fiberscope fibers=N pause_ms=.. total_ms=.. peak_rss_mb=..  (its core, mmapped)
#   BENCH name=threads impl=<fiberscope|eu-stack|gdb> threads=N pause_ms=.. total_ms=.. peak_rss_mb=..
#   BENCH name=python3 impl=<fiberscope|eu-stack|gdb> threads=N pause_ms=.. total_ms=.. peak_rss_mb=..
# then a table. How each figure is measured:
#   total_ms     wall time of the whole inspector command, from start to exit (date +%s%N around it)
#   peak_rss_mb  the inspector's maximum resident set (/usr/bin/time %M); for gdb and Delve their own process
#   pause_ms     fiberscope: what it reports ("paused X ms": first PTRACE_INTERRUPT to last detach).
#                Others: pause_watch samples every thread's state in /proc/PID/task/*/stat every 0.5 ms and
#                adds up the time any thread is seen stopped (t/T); Delve keeps the target stopped from attach to
#                detach; eu-stack stops one thread at a time, so its figure is tiny (and its stacks not simultaneous).
# Delve is driven through stdin (`goroutines -t 15`, `exit`, answering "n" to "kill the process?") with
# --allow-non-terminal-interactive; the target keeps running afterwards (checked).
#
#   bench/run_inspector.sh [build-dir] [--sizes "1000 10000 100000"] [--repeat 3] [--delve-repeat 1]
#                          [--no-delve] [--no-threads] [--no-python] [--go-only]
#   bench/run_inspector.sh build --sizes "" --no-delve      # the threads-only comparisons alone
#       --go-only: only the scale_go process (fiberscope, and Delve unless --no-delve)
# Needs: build-dir/bin/{fiberscope,scale_target,thread_target,pause_watch} (and scale_go for Go); dlv,
# eu-stack, gdb and /usr/bin/time (scripts/setup.sh installs them). 100k fibers need about 200k mappings: when
# vm.max_map_count is lower and we are root it is raised for the run (and put back at the end), and the output
# says so. The machine may be shared: numbers are medians, and noisy.
set -euo pipefail

build_dir=build
sizes="1000 10000 100000"
repeat=3
delve_repeat=1
run_delve=1
run_threads=1
run_python=1
run_fibers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --delve-repeat) delve_repeat=$2; shift 2 ;;
    --no-delve) run_delve=0; shift ;;
    --no-threads) run_threads=0; shift ;;
    --no-python) run_python=0; shift ;;
    --go-only) run_fibers=0; run_threads=0; run_python=0; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    -*) echo "run_inspector.sh: unknown option $1" >&2; exit 2 ;;
    *) build_dir=$1; shift ;;
  esac
done
bin=$build_dir/bin
for program in fiberscope pause_watch $([ "$run_fibers" -eq 1 ] && echo scale_target thread_target); do
  if [ ! -x "$bin/$program" ]; then
    echo "run_inspector.sh: $bin/$program not built (configure with -DFIBERSCOPE_BUILD_BENCH=ON and build it)" >&2
    exit 2
  fi
done
if [ ! -x /usr/bin/time ]; then
  echo "run_inspector.sh: /usr/bin/time missing (package 'time', see scripts/setup.sh)" >&2
  exit 2
fi

work=$(mktemp -d)
results=$work/results
: > "$results"
started_pids=()
old_max_map_count=""

cleanup() {
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [ -n "$old_max_map_count" ]; then
    echo "$old_max_map_count" > /proc/sys/vm/max_map_count
    echo "run_inspector: vm.max_map_count put back to $old_max_map_count"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

now_ns() { date +%s%N; }

median() {
  sort -g | awk '{ v[NR] = $1 }
    END {
      if (NR == 0) print "-"
      else if (NR % 2) print v[(NR + 1) / 2]
      else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# Starts a target program in the background and waits for its READY line; sets target_pid.
start_target() {
  local log=$1; shift
  "$@" > "$log" 2>&1 &
  target_pid=$!
  started_pids+=("$target_pid")
  for _ in $(seq 1 2400); do
    if grep -qs '^READY' "$log"; then return 0; fi
    if ! kill -0 "$target_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "run_inspector.sh: $* did not become ready:" >&2
  cat "$log" >&2
  exit 1
}

stop_target() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Runs an inspector command under /usr/bin/time and pause_watch; sets run_total_ms, run_rss_mb, run_watch_ms and
# run_exit (the command's exit status).
# The command's stdout goes to $work/out.
measure() {
  local target=$1; shift
  "$bin/pause_watch" "$target" > "$work/watch" &
  local watcher=$!
  sleep 0.05
  local start end
  start=$(now_ns)
  run_exit=0
  /usr/bin/time -f "%M" -o "$work/rss" "$@" > "$work/out" 2> "$work/err" || run_exit=$?
  end=$(now_ns)
  kill -TERM "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  run_total_ms=$(( (end - start) / 1000000 ))
  run_rss_mb=$(tail -1 "$work/rss" | awk '{ printf "%.0f", $1 / 1024 }')
  run_watch_ms=$(sed -n 's/.*stopped_ms=\([0-9.]*\).*/\1/p' "$work/watch")
  if ! kill -0 "$target" 2>/dev/null; then
    echo "run_inspector.sh: the target died under: $*" >&2
    exit 1
  fi
}

# Runs `measure` $1 times and prints a BENCH line with the medians. Arguments: label, repeat, pause source
# (fiberscope: its own report; watch: pause_watch), target pid, command...
bench_line() {
  local label=$1 count=$2 pause_from=$3 target=$4; shift 4
  local pauses=() totals=() rsses=()
  for _ in $(seq 1 "$count"); do
    measure "$target" "$@"
    if [ "$pause_from" = fiberscope ]; then
      pauses+=("$(sed -n 's/.*paused \([0-9.]*\) ms.*/\1/p' "$work/out" | head -1)")
    else
      pauses+=("$run_watch_ms")
    fi
    totals+=("$run_total_ms")
    rsses+=("$run_rss_mb")
  done
  local pause total rss
  pause=$(printf '%s\n' "${pauses[@]}" | median)
  total=$(printf '%s\n' "${totals[@]}" | median)
  rss=$(printf '%s\n' "${rsses[@]}" | median)
  # A figure from a command that failed is not a measurement of the job: say so on the line.
  local failed=""
  [ "$run_exit" -eq 0 ] || failed=" exit=$run_exit"
  echo "BENCH $label pause_ms=$pause total_ms=$total peak_rss_mb=$rss$failed" | tee -a "$results"
  if [ -n "$failed" ]; then sed 's/^/  stderr: /' "$work/err" | head -3 >&2; fi
}

echo "run_inspector: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), repeat=$repeat (medians)"
max_fibers=0
for n in $sizes; do [ "$n" -gt "$max_fibers" ] && max_fibers=$n; done
needed_maps=$(( max_fibers * 2 + 65536 ))
current_maps=$(cat /proc/sys/vm/max_map_count)
# Go's goroutine stacks live in its heap, not in mappings of their own: only scale_target needs more.
if [ "$run_fibers" -eq 1 ] && [ "$current_maps" -lt "$needed_maps" ]; then
  if [ "$(id -u)" -eq 0 ] && echo "$needed_maps" > /proc/sys/vm/max_map_count 2>/dev/null; then
    old_max_map_count=$current_maps
    echo "run_inspector: raised vm.max_map_count from $current_maps to $needed_maps (as root)" \
      "for $max_fibers fiber stacks with guard pages"
  else
    echo "run_inspector: warning: vm.max_map_count is $current_maps, $max_fibers fibers need about" \
      "$needed_maps; run as root to raise it" >&2
  fi
fi

for n in $sizes; do
  if [ "$run_fibers" -eq 1 ]; then
  start_target "$work/scale.log" "$bin/scale_target" --fibers "$n"
  scale_pid=$target_pid
  bench_line "name=dump impl=fiberscope fibers=$n" "$repeat" fiberscope "$scale_pid" \
    "$bin/fiberscope" dump "$scale_pid"
  if ! grep -q "fibers," "$work/out"; then
    echo "run_inspector.sh: fiberscope printed no dump header:" >&2
    head -5 "$work/out" "$work/err" >&2
  fi
  # The same process from a core (fiberscope gcore, not timed): dump_core's pause_ms is the target's (none).
  if "$bin/fiberscope" gcore -o "$work/scale.core" "$scale_pid" > /dev/null; then
    bench_line "name=dump_core impl=fiberscope fibers=$n" "$repeat" watch "$scale_pid" \
      "$bin/fiberscope" dump --core "$work/scale.core"
    if ! grep -q "fibers, .*core file" "$work/out"; then
      echo "run_inspector.sh: fiberscope dump --core printed no dump header (the dump_core figure is void):" >&2
      head -5 "$work/out" "$work/err" >&2
    fi
    rm -f "$work/scale.core"
  fi
  stop_target "$scale_pid"
  fi

  # The Go peer: fiberscope, then Delve, on the same process.
  if [ -x "$bin/scale_go" ]; then
    start_target "$work/go.log" "$bin/scale_go" -goroutines "$n"
    go_pid=$target_pid
    bench_line "name=dump_go impl=fiberscope goroutines=$n" "$repeat" fiberscope "$go_pid" \
      "$bin/fiberscope" dump "$go_pid"
    if ! grep -q "goroutines," "$work/out"; then
      echo "run_inspector.sh: fiberscope printed no goroutine dump header:" >&2
      head -5 "$work/out" "$work/err" >&2
    fi
    if [ "$run_delve" -eq 1 ] && command -v dlv > /dev/null; then
      printf 'goroutines -t 15\nexit\nn\n' > "$work/dlv_commands"
      bench_line "name=dump_go impl=delve goroutines=$n" "$delve_repeat" watch "$go_pid" \
        sh -c 'exec dlv attach "$1" --allow-non-terminal-interactive < "$2"' sh "$go_pid" "$work/dlv_commands"
      if ! grep -q "goroutines\]" "$work/out"; then
        echo "run_inspector.sh: Delve listed no goroutines:" >&2
        tail -5 "$work/out" "$work/err" >&2
      fi
    fi
    stop_target "$go_pid"
  else
    echo "run_inspector.sh: $bin/scale_go not built (no go): the Go comparison is skipped" >&2
  fi
done

if [ "$run_threads" -eq 1 ]; then
  start_target "$work/threads.log" "$bin/thread_target" --threads 100
  threads_pid=$target_pid
  bench_line "name=threads impl=fiberscope threads=100" "$repeat" fiberscope "$threads_pid" \
    "$bin/fiberscope" dump "$threads_pid"
  if command -v eu-stack > /dev/null; then
    bench_line "name=threads impl=eu-stack threads=100" "$repeat" watch "$threads_pid" eu-stack -p "$threads_pid"
  fi
  if command -v gdb > /dev/null; then
    bench_line "name=threads impl=gdb threads=100" "$repeat" watch "$threads_pid" \
      gdb -nx -batch -p "$threads_pid" -ex 'thread apply all bt'
  fi
  stop_target "$threads_pid"
fi

# The same three on python3: `fiberscope dump` of a process without the fiber runtime is the threads-only dump.
if [ "$run_python" -eq 1 ] && command -v python3 > /dev/null; then
  start_target "$work/python.log" python3 -c '
import threading, sys
stop = threading.Event()
threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(100)]
for t in threads: t.start()
print("READY", flush=True)
stop.wait()'
  python_pid=$target_pid
  bench_line "name=python3 impl=fiberscope threads=101" "$repeat" fiberscope "$python_pid" \
    "$bin/fiberscope" dump "$python_pid"
  if command -v eu-stack > /dev/null; then
    bench_line "name=python3 impl=eu-stack threads=101" "$repeat" watch "$python_pid" eu-stack -p "$python_pid"
  fi
  if command -v gdb > /dev/null; then
    bench_line "name=python3 impl=gdb threads=101" "$repeat" watch "$python_pid" \
      gdb -nx -batch -p "$python_pid" -ex 'thread apply all bt'
  fi
  stop_target "$python_pid"
fi

echo
awk '
  /^BENCH / {
    key = ""; impl = ""
    for (i = 2; i <= NF; i++) {
      split($i, kv, "=")
      if (kv[1] == "name") name = kv[2]
      else if (kv[1] == "impl") impl = kv[2]
      else if (kv[1] == "fibers" || kv[1] == "threads" || kv[1] == "goroutines") key = kv[1] "=" kv[2]
      else value[kv[1]] = kv[2]
    }
    failed = ("exit" in value) ? "  (exit " value["exit"] ")" : ""
    printf "%-9s %-18s %-10s %10s %10s %12s%s\n", name, key, impl, value["pause_ms"], value["total_ms"],
      value["peak_rss_mb"], failed
    delete value
  }' "$results" | { printf "%-9s %-18s %-10s %10s %10s %12s\n" bench size impl pause_ms total_ms peak_rss_mb; cat; }
