#!/usr/bin/env bash
# Tests of the Python topic decoder and the DuckDB example (docs/topic.md).
#
#   clients/python/run-tests.sh [PYTEST ARGS…]
#
# Environment:
#   PYTHON              a python with pytest, confluent-kafka and duckdb (default: python3)
#   DAYBOOK_TEST_KAFKA  HOST:PORT of a Kafka-protocol broker (tansu); unset: the live tests
#                       are skipped, the golden-vector and offline tests still run
#   DAYBOOK_BIN         the daybook binary the live tests start (`daybook run` on a fresh
#                       topic, `daybook tail`, `daybook token`); default: the debug build in
#                       $CARGO_TARGET_DIR (or ./target)
#
# The live tests post reports of every kind through the device API, check that the decoder
# prints for every record what `daybook tail` prints, that the DuckDB example's calendar is the
# viewer API's, and that the example stops at a record of a newer schema version.
set -euo pipefail
cd "$(dirname "$0")"

python="${PYTHON:-python3}"
if [[ -n "${DAYBOOK_TEST_KAFKA:-}" && -z "${DAYBOOK_BIN:-}" ]]; then
    DAYBOOK_BIN="$(cd ../.. && pwd)/target/debug/daybook"
    [[ -n "${CARGO_TARGET_DIR:-}" ]] && DAYBOOK_BIN="$CARGO_TARGET_DIR/debug/daybook"
    export DAYBOOK_BIN
fi
if [[ -n "${DAYBOOK_BIN:-}" && ! -x "$DAYBOOK_BIN" ]]; then
    echo "run-tests: no daybook binary at $DAYBOOK_BIN (cargo build -p daybook)" >&2
    exit 1
fi
if [[ -z "${DAYBOOK_TEST_KAFKA:-}" ]]; then
    echo "run-tests: DAYBOOK_TEST_KAFKA is not set: the live-topic tests are skipped" >&2
fi

exec "$python" -m pytest -p no:cacheprovider -q tests "$@"
