#!/usr/bin/env bash
# Notifications under load, two figures:
#  1. delivery latency at a steady 2 000 event starts/s with 3 subscriptions (receivers inside
#     daybook-bench on keep-alive connections, notifier inside the all-in-one), then the same
#     beside a hanging, a 500-forever, a 410 and a slow-drip receiver (memory every second);
#  2. the midnight burst without and with a subscription to `person` starts (the background
#     traffic carries them), alternated RUNS times each, then the medians: accepted/s with and
#     without and their ratio, and when the receiver had every person start after the burst.
#
#   bench/notify.sh [OUT_DIR] [RUNS]          (default bench-out/notify, 3)
#
# Builds daybook and daybook-bench with --release first (into CARGO_TARGET_DIR; skipped when
# DAYBOOK_BENCH_PREBUILT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-out/notify}"
runs="${2:-3}"
mkdir -p "$out"
[[ -n "${DAYBOOK_BENCH_PREBUILT:-}" ]] || cargo build --release -q -p daybook -p daybook-bench
bench="${CARGO_TARGET_DIR:-target}/release/daybook-bench"

echo "== delivery latency" >&2
"$bench" notify --out "$out/latency" >/dev/null
echo "== delivery latency beside bad receivers" >&2
"$bench" notify --bad-receivers --seconds 40 --out "$out/latency-bad" >/dev/null

for i in $(seq "$runs"); do
    # Alternate which goes first, so drift over the session weighs on both alike.
    order=(plain subscribed)
    (( i % 2 == 0 )) && order=(subscribed plain)
    for kind in "${order[@]}"; do
        args=(burst --skip-direct --out "$out/$kind-$i")
        [[ $kind == subscribed ]] && args+=(--subscribe-person)
        echo "== burst $i: $kind" >&2
        "$bench" "${args[@]}" >/dev/null
    done
done

python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
load = lambda p: json.load(open(f"{out}/{p}/result.json"))
r = {k: [load(f"{k}-{i}") for i in range(1, runs + 1)] for k in ("plain", "subscribed")}
med = lambda k, f: statistics.median(x[f] for x in r[k])
lat, bad = load("latency"), load("latency-bad")
summary = {
    "latency": {k: lat[k] for k in ("rate_per_s", "subscriptions", "delivered_distinct", "expected_deliveries", "delivery_p50_ms", "delivery_p99_ms", "delivery_max_ms", "rss_after_warmup_mib", "rss_end_mib")},
    "latency_beside_bad_receivers": {k: bad[k] for k in ("delivered_distinct", "expected_deliveries", "delivery_p50_ms", "delivery_p99_ms", "delivery_max_ms", "rss_after_warmup_mib", "rss_peak_after_warmup_mib", "rss_end_mib")},
    "runs": runs,
    "plain_accepted_per_s": [x["pipeline_accepted_per_s"] for x in r["plain"]],
    "subscribed_accepted_per_s": [x["pipeline_accepted_per_s"] for x in r["subscribed"]],
    "ratio_subscribed_vs_plain": med("subscribed", "pipeline_accepted_per_s") / med("plain", "pipeline_accepted_per_s"),
    "notify_expected": [x["notify_expected"] for x in r["subscribed"]],
    "notify_caught_up_ms": [x["notify_caught_up_ms"] for x in r["subscribed"]],
    "lost": sum(x["lost"] for k in r for x in r[k]),
    "errors_5xx": sum(x["errors_5xx"] for k in r for x in r[k]),
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
