#!/usr/bin/env bash
# Side-by-side benchmark on one private redis-server (127.0.0.1 only):
#   1. original Lamed track() (PyPI lamed==0.4.3) vs lamed serve on Redis
#      over HTTP (lamed-load), at equal client concurrency;
#      with the empty handler at the same concurrency: the ceiling no
#      tracking server exceeds on this machine;
#   2. Redis memory per remembered event, Lamed's layout vs ours
#      (INFO used_memory delta over the same number of unique events, each
#      from an empty Redis, so that neither pays for the other's keys).
#
# Usage: bench/compare.sh [VENV]   (VENV has lamed==0.4.3; default
#        /work/lamed-venv). Needs target/release/{lamed,lamed-load}:
#        cargo build --release --workspace
# Env: CONCURRENCY (default "4 64"), ROUNDS (3; medians are printed),
#      EVENTS (100000), LAMED_EVENTS (20000), MEMORY_EVENTS (200000).
set -euo pipefail

VENV=${1:-/work/lamed-venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAMED_BIN=$ROOT/target/release/lamed
LOAD_BIN=$ROOT/target/release/lamed-load
CONCURRENCY=${CONCURRENCY:-"4 64"}
EVENTS=${EVENTS:-100000}
LAMED_EVENTS=${LAMED_EVENTS:-20000}
MEMORY_EVENTS=${MEMORY_EVENTS:-200000}
ROUNDS=${ROUNDS:-3}
KEY=bench-api-key-0123456789abcdef

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done
used_memory() { redis-cli -p "$REDIS_PORT" info memory | tr -d '\r' | awk -F: '/^used_memory:/{print $2}'; }
echo "redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$REDIS_PORT"

# Lamed's working directory, laid out like its Lambda zip.
SITE=$("$VENV/bin/python" -c 'import lamed, os; print(os.path.dirname(lamed.__file__))')
mkdir -p "$WORK/lamed"
ln -s "$SITE/vendor" "$WORK/lamed/vendor"
echo "{\"redis\": {\"host\": \"127.0.0.1\", \"port\": $REDIS_PORT}}" >"$WORK/lamed/config.json"
lamed_py() { (cd "$WORK/lamed" && "$VENV/bin/python" "$ROOT/bench/lamed_driver.py" "$@"); }

# Sets PORT. Not called in $(...): the PID must reach this shell's PIDS so
# that cleanup stops the server.
start_serve() {
    PORT=$(free_port)
    "$LAMED_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --api-key "$KEY" \
        --redis "redis://127.0.0.1:$REDIS_PORT" --bench-routes "$@" >"$WORK/serve.log" 2>&1 &
    PIDS+=($!)
    until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.05; done
}

echo "== 1. events/s: original Lamed track() vs lamed serve on Redis (HTTP), $ROUNDS rounds =="
start_serve
for c in $CONCURRENCY; do
    runs=()
    for round in $(seq "$ROUNDS"); do
        lamed_json=$(lamed_py track --events "$LAMED_EVENTS" --processes "$c")
        ours_json=$("$LOAD_BIN" --addr "127.0.0.1:$PORT" --events "$EVENTS" --connections "$c" \
            --duplicates 0.25 --api-key "$KEY" --json)
        empty_json=$("$LOAD_BIN" --addr "127.0.0.1:$PORT" --events "$EVENTS" --connections "$c" \
            --path /_bench/empty --json)
        runs+=("$lamed_json" "$ours_json" "$empty_json")
    done
    python3 - "$c" "${runs[@]}" <<'PY'
import json, statistics, sys
c, runs = sys.argv[1], [json.loads(a) for a in sys.argv[2:]]
lamed = [r["events_per_second"] for r in runs[0::3]]
ours = [r["requests_per_second"] for r in runs[1::3]]
empty = [r["requests_per_second"] for r in runs[2::3]]
assert all(r["counts_exact"] for r in runs[1::3]), "lamed serve counted wrong"
for i, (a, b, e) in enumerate(zip(lamed, ours, empty), 1):
    print(f"  round {i}: Lamed {a:,.0f}, lamed serve on Redis {b:,.0f} ({b / a:.1f}x), empty handler {e:,.0f}")
a, b, e = statistics.median(lamed), statistics.median(ours), statistics.median(empty)
p99 = statistics.median(r["p99_ms"] for r in runs[1::3])
print(f"concurrency {c}, medians: Lamed {a:,.0f} events/s; lamed serve on Redis {b:,.0f} events/s "
      f"(p99 {p99:.2f} ms, counts exact); ratio {b / a:.1f}x; empty handler {e:,.0f} req/s "
      f"(the most any server reaches here: {e / a:.1f}x Lamed)")
PY
done

echo "== 2. Redis memory per remembered event ($MEMORY_EVENTS unique events each) =="
redis-cli -p "$REDIS_PORT" flushall >/dev/null
before=$(used_memory)
lamed_py layout --events "$MEMORY_EVENTS" >/dev/null
lamed_bytes=$(( $(used_memory) - before ))
redis-cli -p "$REDIS_PORT" flushall >/dev/null
before=$(used_memory)
"$LOAD_BIN" --addr "127.0.0.1:$PORT" --events "$MEMORY_EVENTS" --connections 64 \
    --duplicates 0 --json >/dev/null
ours_bytes=$(( $(used_memory) - before ))
python3 - "$MEMORY_EVENTS" "$lamed_bytes" "$ours_bytes" <<'PY'
import sys
n, lamed, ours = (int(x) for x in sys.argv[1:])
print(f"Lamed layout {lamed / n:.1f} B/event, ours {ours / n:.1f} B/event, ratio {ours / lamed:.3f}")
PY
