#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds fiberscope, starts the bundled demo server and dumps every fiber of it.
# Usage: scripts/demo.sh [extra `fiberscope dump` options, e.g. --format json]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target fiberscope demo_server

fifo=$(mktemp -u)
mkfifo "$fifo"
build/bin/demo_server >"$fifo" &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -f "$fifo"' EXIT
# The demo prints its pid, then READY once every fiber is in place.
while read -r line; do
  echo "demo_server: $line"
  [ "$line" = "READY" ] && break
done <"$fifo"
cat "$fifo" >/dev/null &

build/bin/fiberscope dump "$demo" "$@"
