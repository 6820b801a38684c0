#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser of untrusted bytes:
#   envelope     the topic envelope decoder (decode never panics; decode(encode(x)) == x)
#   device_json  each device request body, through what its route runs
#   batch        POST …/reports bodies, JSON array and NDJSON, with the item cap
#   ids          event/segment/device ids, event types, days, timestamps, offsets, zones
#   cursor       day page cursors: the API's decoder and the stores' decoders inside
#   token        bearer tokens through the HS256 verifier (only issued tokens verify)
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
#   DAYBOOK_FUZZ_RUNS=N       run each target for exactly N executions instead (no time cap)
#   DAYBOOK_FUZZ_TARGETS="…"  only these targets (default: all six)
#   DAYBOOK_FUZZ_WORK=DIR     grown corpora and logs (default ~/.cache/daybook/fuzz-work)
#
# Builds with the nightly toolchain into ~/.cache/daybook/fuzz-target (never the main target
# dir). Each target starts from its seeds (fuzz/corpus/<target>, never written to) plus the
# corpus earlier runs grew (DAYBOOK_FUZZ_WORK/corpus/<target>). Prints the executions per
# target; exits non-zero if any target crashes (the input is saved under fuzz/artifacts/).
# Without a nightly toolchain, or where cargo-fuzz cannot be installed, it says why and exits 0.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seconds=${1:-20}
runs=${DAYBOOK_FUZZ_RUNS:-}
targets=${DAYBOOK_FUZZ_TARGETS:-envelope device_json batch ids cursor token}
cache=${DAYBOOK_CACHE:-$HOME/.cache/daybook}
target_dir=$cache/fuzz-target
export CARGO_TARGET_DIR=$target_dir  # scripts/test exports the main one
tools=$cache/tools
work=${DAYBOOK_FUZZ_WORK:-$cache/fuzz-work}
grown=$work/corpus

skip() {
    echo "fuzz: SKIPPED — $*" >&2
    exit 0
}

if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

command -v cargo >/dev/null || skip "cargo is not installed"
if ! command -v rustup >/dev/null; then
    skip "no rustup, so no nightly toolchain (cargo-fuzz needs nightly's -Zsanitizer/sancov flags)"
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    skip "no nightly toolchain (install one with: rustup toolchain install nightly --profile minimal)"
fi

export PATH=$tools/bin:$PATH
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into $tools" >&2
    if ! cargo install cargo-fuzz --version 0.13.2 --locked --root "$tools" >&2; then
        skip "cargo-fuzz is not installed and could not be installed (cargo install cargo-fuzz --locked --root $tools)"
    fi
fi

# -s none: the code under test is safe Rust (unsafe_code = "forbid"), so AddressSanitizer adds
# little beyond halving the speed. -a: debug assertions and overflow checks stay on, so an
# arithmetic overflow on hostile input is a crash, as it is in a debug build.
fuzz_flags=(--sanitizer none --debug-assertions --target-dir "$target_dir")
cd "$here"
echo "fuzz: building $(rustup run nightly rustc --version)" >&2
cargo +nightly fuzz build "${fuzz_flags[@]}" >&2

triple=$(rustup run nightly rustc -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$triple/release
logs=$work/logs
mkdir -p "$logs"

failed=()
summary=()
for t in $targets; do
    mkdir -p "$grown/$t" "$here/artifacts/$t"
    if [[ -n $runs ]]; then
        budget=(-runs="$runs")
        what="$runs executions"
    else
        budget=(-max_total_time="$seconds")
        what="${seconds}s"
    fi
    echo "fuzz: $t for $what" >&2
    start=$(date +%s)
    status=0
    # The grown corpus comes first: libFuzzer writes new inputs only to the first directory.
    "$bin_dir/$t" "$grown/$t" "$here/corpus/$t" "${budget[@]}" \
        -artifact_prefix="$here/artifacts/$t/" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1 || status=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    corpus=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$logs/$t.log" | tail -1 || true)
    line=$(printf '%-12s %12s executions in %5ss  %s' "$t" "${execs:-?}" "$took" "${corpus:-}")
    if ((status != 0)); then
        failed+=("$t")
        line+="  FAILED (exit $status)"
        echo "fuzz: $t failed; the end of its log ($logs/$t.log):" >&2
        tail -40 "$logs/$t.log" >&2
        crash=$(grep -o "Test unit written to [^ ]*" "$logs/$t.log" | tail -1 | sed 's/Test unit written to //' || true)
        if [[ -n $crash ]]; then
            echo "fuzz: reproduce with: (cd fuzz && cargo +nightly fuzz run ${fuzz_flags[*]} $t $crash)" >&2
        fi
    fi
    summary+=("$line")
    echo "fuzz: $line" >&2
done

echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no crashes"
