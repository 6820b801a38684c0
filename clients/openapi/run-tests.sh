#!/usr/bin/env bash
# The OpenAPI document, tested the way client generators and gateways use it.
#
#   DAYBOOK_BIN=$CARGO_TARGET_DIR/debug/daybook PYTHON=~/.cache/daybook/venv-api/bin/python \
#       clients/openapi/run-tests.sh
#
# Environment:
#   DAYBOOK_BIN   the daybook binary (`daybook run` on free ports, `daybook token`)
#   PYTHON        a python with requirements.txt installed
#   ST_MAX_EXAMPLES  schemathesis examples per operation and phase (default 30)
#
# Starts `daybook run` in a temp dir, then:
#   1. validates /openapi.json with openapi-spec-validator;
#   2. generates a client with openapi-python-client and drives every operation through it
#      (test_generated_client.py; fails if the generator skipped one);
#   3. fuzzes every operation with schemathesis (`--checks all`, device and managing viewer tokens,
#      the path's `cid` pinned to the tokens' device): no 5xx, every answer in the documented
#      statuses and schemas, schema-violating requests refused, schema-valid ones refused
#      only by rules no schema can state (st_hooks.py).
set -euo pipefail
cd "$(dirname "$0")"
here="$(pwd)"

: "${DAYBOOK_BIN:?set DAYBOOK_BIN to the built daybook binary}"
python="${PYTHON:-python3}"
bin_dir="$(dirname "$python")"
max_examples="${ST_MAX_EXAMPLES:-30}"
[[ -x "$DAYBOOK_BIN" ]] || { echo "run-tests: no daybook binary at $DAYBOOK_BIN" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cid="cam-openapi"
# Rate limits far above what the fuzzer sends, so every request reaches validation.
RUST_LOG="${RUST_LOG:-warn}" "$DAYBOOK_BIN" run --data-dir "$work/data" --http-addr 127.0.0.1:0 --s3-addr 127.0.0.1:0 \
    --device-rate 100000 --device-burst 100000 >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
for _ in $(seq 300); do
    grep -q '"listening"' "$work/stdout" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/stderr" >&2; echo "run-tests: daybook exited" >&2; exit 1; }
    sleep 0.1
done
http=$("$python" -c 'import json,sys; print(next(json.loads(l)["http"] for l in open(sys.argv[1]) if "listening" in l))' "$work/stdout")
url="http://$http"
export DAYBOOK_URL="$url" DAYBOOK_CID="$cid"
DAYBOOK_DEVICE_TOKEN=$("$DAYBOOK_BIN" token device "$cid" --data-dir "$work/data" | tail -1)
DAYBOOK_VIEWER_TOKEN=$("$DAYBOOK_BIN" token viewer "$cid" --data-dir "$work/data" | tail -1)
DAYBOOK_MANAGER_TOKEN=$("$DAYBOOK_BIN" token viewer "$cid" --manage --data-dir "$work/data" | tail -1)
# The generated client erases another camera: the fuzzing goes on with this one's device token.
DAYBOOK_ERASE_CID="cam-openapi-erased"
DAYBOOK_ERASER_TOKEN=$("$DAYBOOK_BIN" token viewer "$DAYBOOK_ERASE_CID" --manage --data-dir "$work/data" | tail -1)
export DAYBOOK_DEVICE_TOKEN DAYBOOK_VIEWER_TOKEN DAYBOOK_MANAGER_TOKEN DAYBOOK_ERASE_CID DAYBOOK_ERASER_TOKEN
echo "run-tests: daybook at $url" >&2

"$python" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
    "$url/openapi.json" "$work/openapi.json"

echo "== openapi-spec-validator" >&2
"$bin_dir/openapi-spec-validator" "$work/openapi.json"

echo "== openapi-python-client generate" >&2
(cd "$work" && "$bin_dir/openapi-python-client" generate --path "$work/openapi.json" --meta none \
    --output-path daybook_client --config "$here/client-config.yaml") >"$work/generate.log" 2>&1 \
    || { cat "$work/generate.log" >&2; exit 1; }
cat "$work/generate.log" >&2
if grep -qi "warning" "$work/generate.log"; then
    echo "run-tests: the generator skipped parts of the document (above)" >&2
    exit 1
fi

echo "== the generated client, every operation" >&2
DAYBOOK_CLIENT_DIR="$work" DAYBOOK_OPENAPI="$work/openapi.json" \
    "$python" -m pytest -p no:cacheprovider -q "$here/test_generated_client.py"

echo "== schemathesis" >&2
# `positive_data_acceptance` is replaced by `valid_requests_accepted` (st_hooks.py). The
# stateful phase is left out: schemathesis 4.32 labels a step whose invalid path parameter a
# link replaced with a valid value as negative, and reports its 2xx as a failure.
st() {
    local token=$1 exclude=$2
    shift 2
    (cd "$work" && SCHEMATHESIS_HOOKS=st_hooks PYTHONPATH="$here" "$bin_dir/st" --config-file "$here/schemathesis.toml" \
        run "$url/openapi.json" -H "Authorization: Bearer $token" "$@" \
        --checks all --exclude-checks "$exclude" --phases examples,coverage,fuzzing \
        --max-examples "$max_examples" --seed "${ST_SEED:-20261122}" --request-timeout 10 --no-color)
}
st "$DAYBOOK_DEVICE_TOKEN" positive_data_acceptance --include-tag devices --exclude-operation-id report_batch
# A batch answers 200 with a result per item: an item that breaks the document is refused
# alone (README, Contracts), so instead of `negative_data_rejection` the batch is held to
# `invalid_batch_items_rejected`.
st "$DAYBOOK_DEVICE_TOKEN" positive_data_acceptance,negative_data_rejection --include-operation-id report_batch
# The viewer routes with a token that may also manage the camera, so a deletion is refused only
# for what it names (422, 404), never for the token. (Its erasure, fuzzed too, comes after the
# device routes: the device token it revokes is used no more.)
st "$DAYBOOK_MANAGER_TOKEN" positive_data_acceptance --include-tag viewers

if grep -E '"status":5[0-9][0-9]' "$work/stderr" >/dev/null; then
    echo "run-tests: the server logged a 5xx" >&2
    exit 1
fi
echo "run-tests: ok" >&2
