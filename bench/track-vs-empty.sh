#!/usr/bin/env bash
# Tracking throughput and latency of GET /track against the empty handler
# (GET /_bench/empty: 200 {} through the same router, layers and server),
# measured in the same run, alternating, several rounds; prints medians.
#
#   bash bench/track-vs-empty.sh [ROUNDS] [REQUESTS] [CONNECTIONS]
#   SERVE_ARGS="--fsync" bash bench/track-vs-empty.sh     # extra serve flags
#   LAMED_BIN=/tmp/before/lamed bash bench/track-vs-empty.sh  # another build
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
requests=${2:-200000}
connections=${3:-64}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --workspace --bins
lamed=${LAMED_BIN:-target/release/lamed}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
"$lamed" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --bench-routes ${SERVE_ARGS:-} \
    >"$dir/banner.txt" 2>"$dir/log.txt" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
key=$(cat "$dir/data/api_key")
load() { target/release/lamed-load --addr "127.0.0.1:$port" --events "$requests" --connections "$connections" --json "$@"; }
for round in $(seq "$rounds"); do
    load --path /_bench/empty >>"$dir/empty.jsonl"
    load --path /track --duplicates 0.25 --api-key "$key" --seed "$round" >>"$dir/track.jsonl"
done
python3 - "$dir" <<'PY'
import json, statistics, sys
d = sys.argv[1]
def med(name, key):
    rows = [json.loads(l) for l in open(f"{d}/{name}.jsonl")]
    return statistics.median(r[key] for r in rows), rows
e, erows = med("empty", "requests_per_second")
t, trows = med("track", "requests_per_second")
assert all(r["counts_exact"] for r in trows), "counts were not exact"
for name, rows in (("empty handler", erows), ("GET /track", trows)):
    runs = ", ".join("%.0f" % r["requests_per_second"] for r in rows)
    print(f"{name:14} median {statistics.median(r['requests_per_second'] for r in rows):9.0f} req/s"
          f"  p50 {statistics.median(r['p50_ms'] for r in rows):.2f} ms"
          f"  p99 {statistics.median(r['p99_ms'] for r in rows):.2f} ms  (runs: {runs})")
print(f"ratio track/empty: {t / e:.2f}  (counts exact in every run)")
PY
