#!/usr/bin/env bash
# Bytes on disk per unique event: sends N unique events (default 1,000,000),
# stops the server cleanly (which checkpoints the WAL into the database
# file), and divides the database size by N.
#
#   bash bench/store-size.sh [EVENTS]
#   LAMED_BIN=/tmp/before/lamed bash bench/store-size.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --workspace --bins
lamed=${LAMED_BIN:-target/release/lamed}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$lamed" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >/dev/null 2>"$dir/log.txt" &
pid=$!
trap 'kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
target/release/lamed-load --addr "127.0.0.1:$port" --events "$events" --connections 64 \
    --api-key "$(cat "$dir/data/api_key")"
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid"
bytes=$(stat -c %s "$dir/data/lamed.db")
ls -l "$dir/data"
python3 -c "print(f'{$bytes} bytes on disk for {$events} unique events: {$bytes / $events:.1f} bytes per event; server RSS {$rss_kb} KiB')"
