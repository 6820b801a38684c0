#!/usr/bin/env bash
# Profiles the server under test of a daybook-bench run and splits its CPU by part.
#
#   bench/perf/record.sh OUT_DIR burst [--skip-direct …]
#   bench/perf/record.sh OUT_DIR sustain --fraction 0.5 --seconds 10
#
# Runs the bench (release binary from $CARGO_TARGET_DIR, default ~/.cache/daybook/target),
# attaches `perf record -e cpu-clock` with DWARF call graphs to the first `daybook-bench serve`
# child (the all-in-one) for PROF_SECS seconds (default 5), then prints the categories
# (bench/perf/categories.py). OUT_DIR gets result.json, perf.data and perf.txt.
# PROF_TARGET=noop profiles the bare no-op server instead (PROF_DELAY: seconds before recording).
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
bin="${CARGO_TARGET_DIR:-$HOME/.cache/daybook/target}/release/daybook-bench"
mkdir -p "$out"
"$bin" "$@" --out "$out" > "$out/bench.log" 2>&1 &
bench=$!
pid=
for _ in $(seq 1 600); do
  pid=$(pgrep -f "daybook-bench ${PROF_TARGET:-serve}" | head -1 || true)
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { echo "no server child found" >&2; exit 1; }
sleep "${PROF_DELAY:-2}"
perf record -e cpu-clock -F 250 --call-graph dwarf,32768 -p "$pid" -o "$out/perf.data" -- sleep "${PROF_SECS:-5}" > /dev/null 2>&1
wait "$bench"
perf script -i "$out/perf.data" 2> /dev/null > "$out/perf.txt"
python3 "$here/categories.py" < "$out/perf.txt"
