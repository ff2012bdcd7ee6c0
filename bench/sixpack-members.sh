#!/usr/bin/env bash
# What Sixpack's per-client memory costs: CLIENTS clients (uuid4 ids, as
# Sixpack's clients make them) participate in one experiment through
# lamed's Sixpack API, half of them convert on a KPI; then the bytes of the
# memberships are read from the store itself:
#   - embedded store: the pages of the memberships' log and its index
#     (`members` in layouts before 3) (SQLite's dbstat);
#   - Redis: MEMORY USAGE of the experiment's `:x` hash (SAMPLES 0: exact).
# Bytes per participant = bytes / CLIENTS after the participations; per
# conversion = the growth from the conversions / conversions.
#
# Usage: bench/sixpack-members.sh   (LAMED_BIN defaults to target/release/lamed;
#        the test venv's python from scripts/aws-test-env.sh drives it)
# Env: CLIENTS (default 20000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAMED_BIN=${LAMED_BIN:-$ROOT/target/release/lamed}
CLIENTS=${CLIENTS:-20000}
PYTHON=$(dirname "$(bash "$ROOT/scripts/aws-test-env.sh")")/python
KEY=bench-api-key-0123456789abcdef
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local status=$?
    [ "$status" -eq 0 ] || tail -n 5 "$WORK"/lamed-*.log >&2 || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_lamed() { # port args...
    local port=$1; shift
    "$LAMED_BIN" serve --listen "127.0.0.1:$port" --api-key "$KEY" "$@" >/dev/null 2>"$WORK/lamed-$port.log" &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/_status" >/dev/null && return; sleep 0.1; done
    echo "lamed did not start" >&2; exit 1
}

# Participations, then conversions of every other client; prints nothing.
drive() { # url phase
    "$PYTHON" - "$1" "$2" "$CLIENTS" <<'PY'
import sys, uuid, random, requests
url, phase, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7)
ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
http = requests.Session()
retried = 0
for i, cid in enumerate(ids):
    if phase == "participate":
        path, params = "participate", {"experiment": "button-color", "client_id": cid,
                                       "alternatives": ["red", "blue", "green"]}
    elif i % 2 == 0:
        path, params = "convert", {"experiment": "button-color", "client_id": cid, "kpi": "checkout"}
    else:
        continue
    # A 503 (the store past its deadline on a busy machine) is retried, as
    # a client's next request would be.
    while (r := http.get(f"{url}/{path}", params=params)).status_code == 503:
        retried += 1
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
if retried:
    print(f"{phase}: {retried} answers 503 retried", file=sys.stderr)
PY
}

members_bytes_sqlite() {
    python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT sum(pgsize) FROM dbstat WHERE name IN ('members', 'member_log', 'member_log_by_experiment')").fetchone()[0])
PY
}

members_bytes_redis() {
    local port=$1 key
    key=$(redis-cli -p "$port" --scan --pattern 'lmd:*:x' | head -1)
    redis-cli -p "$port" MEMORY USAGE "$key" SAMPLES 0
}

report() { # store before after
    awk -v s="$1" -v p="$2" -v c="$3" -v n="$CLIENTS" 'BEGIN {
        printf "%-9s %d clients: %.1f B per participant, %.1f B per conversion\n", s, n, p / n, (c - p) / (n / 2) }'
}

port=$(free_port)
start_lamed "$port" --data-dir "$WORK/data"
drive "http://127.0.0.1:$port" participate
p=$(members_bytes_sqlite "$WORK/data/lamed.db")
drive "http://127.0.0.1:$port" convert
c=$(members_bytes_sqlite "$WORK/data/lamed.db")
report embedded "$p" "$c"

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
port=$(free_port)
start_lamed "$port" --data-dir "$WORK/redis-data" --redis "redis://127.0.0.1:$rport"
drive "http://127.0.0.1:$port" participate
p=$(members_bytes_redis "$rport")
drive "http://127.0.0.1:$port" convert
c=$(members_bytes_redis "$rport")
report redis "$p" "$c"
