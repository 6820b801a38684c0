#!/usr/bin/env bash
# Starts a tansu Kafka-protocol broker on loopback, in the background, and prints its pid.
#
#   scripts/start-tansu.sh [PORT]          # PORT defaults to $TANSU_PORT, then 9092
#   PID=$(scripts/start-tansu.sh 19092) && ... && kill "$PID"
#
# Environment:
#   TANSU_PORT     port to listen on (the argument wins)
#   TANSU_BIN      the tansu binary (default: $HOME/.cache/daybook/tools/bin/tansu)
#   TANSU_DATA     directory of the default storage (default: ${TMPDIR:-/tmp}/tansu-PORT)
#   TANSU_STORAGE  storage engine URL (default: a fresh sqlite:// database in TANSU_DATA)
#   TANSU_LOG      broker log file (default: ${TMPDIR:-/tmp}/tansu-PORT.log)
#   TANSU_WAIT     seconds to wait for the port to accept connections (default: 60)
#
# Install tansu once per machine (about 8 minutes on 2 cores):
#   cargo install tansu --locked --features dynostore,libsql --root ~/.cache/daybook/tools
# (scripts/test installs a lighter build, SQLite storage only, for the tests)
#
# Storage: every start gets an empty SQLite database (tansu.db* in TANSU_DATA is removed
# first), so the broker starts as empty as with memory storage. Not memory://: tansu 0.6's
# memory (dynostore) engine answers a fetch only with batches whose *base* offset is at or
# after the fetch offset, so a consumer group resuming from a commit inside a producer batch
# gets nothing (or, once later batches exist, silently skips the rest of that batch). Its
# SQLite engine stores records one by one and fetches them correctly.
#
# The broker binds 127.0.0.1 only and advertises 127.0.0.1:PORT, so clients that follow the
# metadata reconnect to the same loopback address. Only the pid goes to stdout.
set -euo pipefail

port="${1:-${TANSU_PORT:-9092}}"
bin="${TANSU_BIN:-$HOME/.cache/daybook/tools/bin/tansu}"
data="${TANSU_DATA:-${TMPDIR:-/tmp}/tansu-$port}"
log="${TANSU_LOG:-${TMPDIR:-/tmp}/tansu-$port.log}"
wait_s="${TANSU_WAIT:-60}"

die() { echo "start-tansu: $*" >&2; exit 1; }

[[ "$port" =~ ^[0-9]+$ ]] && (( port > 0 && port < 65536 )) || die "bad port: $port"
[[ -x "$bin" ]] || die "no tansu binary at $bin; install it with: cargo install tansu --locked --features dynostore,libsql --root ~/.cache/daybook/tools"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if port_open; then
    die "127.0.0.1:$port already accepts connections (another broker running?)"
fi

if [[ -n "${TANSU_STORAGE:-}" ]]; then
    storage="$TANSU_STORAGE"
    if [[ "$storage" == memory://* ]]; then
        echo "start-tansu: warning: memory:// storage cannot resume a consumer group from inside a batch (see the header of $0)" >&2
    fi
else
    [[ "$data" == /* ]] || data="$PWD/$data"
    mkdir -p "$data"
    rm -f "$data/tansu.db" "$data/tansu.db-wal" "$data/tansu.db-shm" "$data/tansu.db-journal"
    # sqlite://PATH: an absolute PATH gives four slashes (sqlite:////tmp/…).
    storage="sqlite:///$data/tansu.db"
fi

# The broker also reads LISTENER_URL, ADVERTISED_LISTENER_URL, STORAGE_ENGINE… from the
# environment: the flags below take precedence over them.
setsid "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$storage" \
    </dev/null >"$log" 2>&1 &
pid=$!

deadline=$((SECONDS + wait_s))
until port_open; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-tansu: tansu exited before listening; last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
        exit 1
    fi
    if (( SECONDS >= deadline )); then
        echo "start-tansu: 127.0.0.1:$port not accepting connections after ${wait_s}s; last lines of $log:" >&2
        tail -n 20 "$log" >&2 || true
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done

echo "start-tansu: tansu (pid $pid) listening on 127.0.0.1:$port, storage $storage, log $log" >&2
echo "$pid"
