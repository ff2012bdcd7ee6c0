#!/usr/bin/env bash
# What a request costs the server as the number of open connections grows
# (issue 24), counted by valgrind rather than timed: instructions and
# simulated cache misses per request, which do not depend on what else the
# machine runs. `lamed serve` runs under callgrind with a cache model of
# one core (L1d 32 KiB; "LL" set to the 1 MiB L2 of this machine's cores,
# the cache a connection's state falls out of first); `lamed-load` sends
# EVENTS requests over 64, 256 and 2,048 keep-alive connections, to
# /track and to the no-store baseline /_bench/empty. The counters are
# zeroed before and dumped after each run, so start-up is not counted.
#
#   bash bench/connection-cost-callgrind.sh [EVENTS]
#   BIN_DIR=/tmp/reltarget/release (where lamed and lamed-load are; the
#   default builds them into target/release)
#   KEEP=DIR keeps the callgrind dumps there (read them with
#   callgrind_annotate --inclusive=yes)
#   CONNECTIONS="64 256 2048" the connection counts
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-20000}
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --quiet --workspace --bins
    BIN_DIR=target/release
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=error taskset -c 0 valgrind --tool=callgrind --cache-sim=yes \
    --D1=32768,8,64 --LL=1048576,16,64 --I1=32768,8,64 \
    --callgrind-out-file="$dir/cg.%p" \
    "$BIN_DIR/lamed" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --bench-routes \
    >/dev/null 2>"$dir/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; [ -z "${KEEP:-}" ] || cp "$dir"/cg.* "$KEEP"/; rm -rf "$dir"' EXIT
# Under valgrind the start (the bot rules' regular expressions) takes minutes.
for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; exit 1; }
    sleep 1
done
key=$(cat "$dir/data/api_key")
# One run: zero the counters, send, dump; prints the per-request figures.
measure() {
    local path=$1 connections=$2
    callgrind_control -z "$pid" >/dev/null
    taskset -c 1 "$BIN_DIR/lamed-load" --addr "127.0.0.1:$port" --path "$path" --json \
        --events "$events" --connections "$connections" --namespace "c$connections${path//\//_}" \
        --api-key "$key" >/dev/null || true
    callgrind_control -d "$pid" >/dev/null
    local dump
    dump=$(ls -t "$dir"/cg."$pid".* | head -1)
    python3 - "$path" "$connections" "$events" "$dump" <<'PY'
import sys
path, connections, events, dump = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names, totals = [], None
for line in open(dump):
    if line.startswith("events:"):
        names = line.split()[1:]
    elif line.startswith("totals:") or line.startswith("summary:"):
        totals = list(map(int, line.split()[1:]))
t = dict(zip(names, totals))
per = lambda k: t.get(k, 0) / events
print(f"{path:14} {connections:5} connections: {per('Ir'):9.0f} instructions, "
      f"L1d misses {per('D1mr') + per('D1mw'):7.0f}, L2 misses (LL) {per('DLmr') + per('DLmw'):6.0f} "
      f"per request")
PY
}
for connections in ${CONNECTIONS:-64 256 2048}; do
    measure /_bench/empty "$connections"
    measure /track "$connections"
done
