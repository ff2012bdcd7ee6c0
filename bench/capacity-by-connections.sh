#!/usr/bin/env bash
# The pinned server's closed-loop capacity as the number of open
# connections grows, with no overload (issue 24): `lamed serve` pinned to
# one core, `lamed-load` to the other, 200,000 tracked events per run at
# 64, 256 and 2,048 connections, alternating, ROUNDS rounds on one server.
# Prints req/s, the server's CPU (share of its core, µs per request) and
# the generator's share of its core, so that it shows which side limits.
#
#   bash bench/capacity-by-connections.sh [ROUNDS]
#   BIN_DIR=/tmp/reltarget/release (where lamed and lamed-load are; the
#   default builds them into target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
if [ -z "${BIN_DIR:-}" ]; then
    cargo build --release --quiet --workspace --bins
    BIN_DIR=target/release
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=error taskset -c 0 "$BIN_DIR/lamed" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >/dev/null 2>"$dir/log" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
key=$(cat "$dir/data/api_key")
# The server's user and kernel CPU ticks, "user,system".
cpu_ticks() { awk '{print $14 "," $15}' "/proc/$pid/stat"; }
for round in $(seq "$rounds"); do
    for connections in 64 256 2048; do
        before=$(cpu_ticks)
        start=$(date +%s.%N)
        out=$({ /usr/bin/time -f "%U %S" taskset -c 1 "$BIN_DIR/lamed-load" --addr "127.0.0.1:$port" \
            --json --events 200000 --connections "$connections" \
            --namespace "cap$connections-$round" --api-key "$key"; } 2>&1)
        end=$(date +%s.%N)
        after=$(cpu_ticks)
        python3 - "$round" "$connections" "$start" "$end" "$before" "$after" "$out" <<'PY'
import json, os, sys
round_, connections, start, end, before, after, out = sys.argv[1:]
lines = out.strip().splitlines()
rate = json.loads(lines[0])["requests_per_second"]
wall = float(end) - float(start)
tick = os.sysconf("SC_CLK_TCK")
user, system = ((float(a) - float(b)) / tick for a, b in zip(after.split(","), before.split(",")))
server = user + system
generator = sum(map(float, lines[-1].split()))
print(f"round {round_} connections {connections}: {rate:.0f} req/s; server CPU "
      f"{server / wall:.0%} of its core, {server / 200000 * 1e6:.1f} us/request "
      f"({user / 200000 * 1e6:.1f} user + {system / 200000 * 1e6:.1f} kernel); "
      f"generator CPU {generator / wall:.0%} of its core")
PY
    done
done
