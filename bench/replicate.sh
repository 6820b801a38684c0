#!/usr/bin/env bash
# The cost of continuous shipping under the midnight burst: `daybook-bench burst` without and
# with `--replicate-to` a directory and the embedded S3 endpoint of a second daybook,
# alternated RUNS times each (single runs vary by ±10 % on a 2-core VM), then the medians:
# accepted/s with and without and their ratio, and each record's time from append to stored in
# the directory repository (p99, max) during the burst.
#
#   bench/replicate.sh [OUT_DIR] [RUNS]          (default bench-out/replicate, 3)
#
# Builds daybook and daybook-bench with --release first (into CARGO_TARGET_DIR; skipped when
# DAYBOOK_BENCH_PREBUILT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-out/replicate}"
runs="${2:-3}"
mkdir -p "$out"
[[ -n "${DAYBOOK_BENCH_PREBUILT:-}" ]] || cargo build --release -q -p daybook -p daybook-bench
target="${CARGO_TARGET_DIR:-target}/release"

# The S3 repository: another daybook's embedded endpoint on loopback.
s3dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$target/daybook" run --data-dir "$s3dir" --http-addr 127.0.0.1:0 --s3-addr "127.0.0.1:$port" >/dev/null 2>&1 &
s3pid=$!
trap 'kill $s3pid 2>/dev/null || true; rm -rf "$s3dir"' EXIT
for _ in $(seq 100); do [[ -s "$s3dir/s3-credentials" ]] && break; sleep 0.1; done
IFS=: read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY < "$s3dir/s3-credentials" || [[ -n "${AWS_SECRET_ACCESS_KEY:-}" ]]
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY DAYBOOK_BACKUP_S3_ENDPOINT="http://127.0.0.1:$port"

for i in $(seq "$runs"); do
    # Alternate which goes first, so drift over the session weighs on both alike.
    order=(plain ship)
    (( i % 2 == 0 )) && order=(ship plain)
    for kind in "${order[@]}"; do
        args=(burst --skip-direct --out "$out/$kind-$i")
        if [[ $kind == ship ]]; then
            repo="$out/$kind-$i/repo"
            rm -rf "$repo"
            args+=(--replicate-to "$repo" --replicate-to "s3://daybook/replica-$i")
        fi
        echo "== run $i: $kind" >&2
        "$target/daybook-bench" "${args[@]}" >/dev/null
    done
done

python3 - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
r = {k: [json.load(open(f"{out}/{k}-{i}/result.json")) for i in range(1, runs + 1)] for k in ("plain", "ship")}
med = lambda k, f: statistics.median(x[f] for x in r[k])
summary = {
    "runs": runs,
    "plain_accepted_per_s": [x["pipeline_accepted_per_s"] for x in r["plain"]],
    "ship_accepted_per_s": [x["pipeline_accepted_per_s"] for x in r["ship"]],
    "plain_median_per_s": med("plain", "pipeline_accepted_per_s"),
    "ship_median_per_s": med("ship", "pipeline_accepted_per_s"),
    "ratio_ship_vs_plain": med("ship", "pipeline_accepted_per_s") / med("plain", "pipeline_accepted_per_s"),
    "plain_cpu_us_per_report": med("plain", "cpu_us_per_report"),
    "ship_cpu_us_per_report": med("ship", "cpu_us_per_report"),
    "lost": sum(x["lost"] for k in r for x in r[k]),
    "errors_5xx": sum(x["errors_5xx"] for k in r for x in r[k]),
    "replica_delay_p99_s": [x["replica_delay_p99_s"] for x in r["ship"]],
    "replica_delay_max_s": [x["replica_delay_max_s"] for x in r["ship"]],
    "projection_complete_ms": {k: [x["projection_complete_ms"] for x in r[k]] for k in r},
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
EOF
