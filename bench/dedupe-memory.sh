#!/usr/bin/env bash
# RAM per remembered event and rebuild time of the embedded store's dedupe
# memory at scale: for each binary given, creates a store with it, writes
# EVENTS (default 100,000,000) remembered events, all inside the window,
# straight into its log in the layout that binary made (one row per event
# in `seen`, or rows of 64 hashes sharing a millisecond in `seen_log`;
# Python's sqlite3, one transaction), then starts `lamed serve` on it
# ROUNDS times (default 3), which rebuilds the in-memory index from the
# log, and reports the median time until /health answers and the server's
# RSS over that of the same binary on an empty store.
#
#   bash bench/dedupe-memory.sh [EVENTS] [BINARY...]
#   bash bench/dedupe-memory.sh 100000000 /tmp/before/lamed target/release/lamed
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000000}
shift || true
binaries=("$@")
if [ ${#binaries[@]} -eq 0 ]; then
    cargo build --release --quiet --bin lamed
    binaries=(target/release/lamed)
fi
rounds=${ROUNDS:-3}
dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts BINARY on DATA, waits for /health; prints "seconds rss_kib".
serve_once() {
    local binary=$1 data=$2 port start
    port=$(free_port)
    start=$(date +%s.%N)
    "$binary" serve --listen "127.0.0.1:$port" --data-dir "$data" --uuid-expiry-seconds 315360000 \
        >/dev/null 2>"$dir/log.txt" &
    pid=$!
    until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/log.txt" >&2; exit 1; }
        sleep 0.05
    done
    local ready rss
    ready=$(python3 -c "print($(date +%s.%N) - $start)")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    kill -TERM "$pid"; wait "$pid" || true; pid=
    echo "$ready $rss"
}

mkdir -p "$dir/empty"
# Fills the log of the store in $1 with $2 events, in the layout it has.
fill() {
    python3 - "$1/lamed.db" "$2" <<'PY'
import os, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=OFF")
grouped = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'seen_log'").fetchone()[0]
now = int(time.time() * 1000)
started = time.time()
batch = 1_000_000
for first in range(0, n, batch):
    keys = os.urandom(16 * min(batch, n - first))
    if grouped:
        rows = ((now, keys[i:i + 16 * 64]) for i in range(0, len(keys), 16 * 64))
        conn.executemany("INSERT INTO seen_log (first_seen, keys) VALUES (?, ?)", rows)
    else:
        rows = ((keys[i:i + 16], now) for i in range(0, len(keys), 16))
        conn.executemany("INSERT INTO seen (key, first_seen) VALUES (?, ?)", rows)
conn.commit()
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.close()
layout = "seen_log, 64 per row" if grouped else "seen, one per row"
print(f"wrote {n} remembered events ({layout}) in {time.time() - started:.0f} s, "
      f"{os.path.getsize(db) / n:.1f} bytes per event on disk", file=sys.stderr)
PY
}

for binary in "${binaries[@]}"; do
    rm -rf "$dir/data"
    serve_once "$binary" "$dir/data" >/dev/null  # the schema this binary makes
    fill "$dir/data" "$events"
    results=()
    for _ in $(seq "$rounds"); do
        read -r _ idle < <(serve_once "$binary" "$dir/empty")
        read -r seconds rss < <(serve_once "$binary" "$dir/data")
        results+=("$seconds $rss $idle")
    done
    printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
n = $events
secs = statistics.median(r[0] for r in rows)
per = statistics.median((r[1] - r[2]) * 1024 / n for r in rows)
rss = statistics.median(r[1] for r in rows) / 1024
print(f'$binary: {n} remembered events: ready in {secs:.1f} s (median of {len(rows)}), '
      f'RSS {rss:.0f} MiB, {per:.1f} bytes per event over an empty server')
"
done
