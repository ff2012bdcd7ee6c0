#!/usr/bin/env bash
# Soak on the embedded store: measure what lamed sustains, then offer half
# of it, paced (an open loop), for MINUTES minutes with a dedupe window of
# WINDOW seconds, so that pruning runs all the time once the window is
# full. Every minute is its own namespace with 10% re-sent events, and its
# counts are checked exactly; after each minute the server's RSS, the data
# directory's size, the remembered uuids and the minute's p99 are recorded.
# Prints the table and whether RSS, p99 and disk stayed flat after the
# window filled (last minute within 15% of the first full-window minute's,
# p99 below 4x the median p99 of the full-window minutes).
#
#   bash bench/soak.sh [MINUTES] [WINDOW_SECONDS] [RATE]
#   LAMED_BIN=/tmp/b/lamed LOAD_BIN=/tmp/b/lamed-load bash bench/soak.sh   # other builds
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
window=${2:-600}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --workspace --bins
lamed=${LAMED_BIN:-target/release/lamed}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$lamed" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --uuid-expiry-seconds "$window" \
    >"$dir/banner.txt" 2>"$dir/log.txt" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
key=$(cat "$dir/data/api_key")
load() { "${LOAD_BIN:-target/release/lamed-load}" --addr "127.0.0.1:$port" --connections 64 --api-key "$key" --json "$@"; }

rate=${3:-}
if [ -z "$rate" ]; then
    load --events 200000 --namespace capacity >"$dir/capacity.json"
    rate=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["requests_per_second"] / 2))' "$dir/capacity.json")
fi
# One minute's row: lamed-load's answer plus what was sampled, as JSON on
# stdout and as a line of the table on stderr.
cat >"$dir/row.py" <<'PY'
import json, sys
row = json.load(open(sys.argv[1]))
row.update(zip(("minute", "elapsed_s", "rss_kib", "disk_kib"), map(int, sys.argv[2:6])))
row["entries"] = int(float(sys.argv[6]))
print(json.dumps(row))
print("minute %(minute)3d: %(requests_per_second)8.0f req/s  p99 %(p99_ms)7.2f ms  RSS %(rss)7.1f MiB  "
      "disk %(disk)7.1f MiB  remembered %(entries)9d  exact %(counts_exact)s"
      % dict(row, rss=row["rss_kib"] / 1024, disk=row["disk_kib"] / 1024), file=sys.stderr, flush=True)
PY
echo "soak: $rate req/s for $minutes min, window $window s (pid $pid)"
started=$(date +%s)
for minute in $(seq "$minutes"); do
    load --rate "$rate" --events $((rate * 60)) --duplicates 0.1 --seed "$minute" \
        --namespace "soak-$minute" >"$dir/minute.json" || true
    rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")
    disk=$(du -sk "$dir/data" | cut -f1)
    entries=$(curl -fs -H "X-Api-Key: $key" "http://127.0.0.1:$port/metrics" | awk '$1 == "lamed_dedupe_entries" {print $2}')
    python3 "$dir/row.py" "$dir/minute.json" "$minute" $(($(date +%s) - started)) "$rss" "$disk" \
        "${entries:-0}" >>"$dir/soak.jsonl"
done
python3 - "$dir/soak.jsonl" "$window" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
window_min = int(sys.argv[2]) // 60
full = [r for r in rows if r["minute"] > window_min]
exact = all(r["counts_exact"] and r["ok"] == r["requests"] for r in rows)
print(f"counts exact and every request answered 200 in all {len(rows)} minutes: {exact}")
verdicts = []
if full:
    first, last = full[0], full[-1]
    for name, key in (("RSS", "rss_kib"), ("disk", "disk_kib")):
        change = last[key] / first[key] - 1
        flat = abs(change) <= 0.15
        verdicts.append(flat)
        print(f"{name} from minute {first['minute']} to {last['minute']}: {first[key]/1024:.1f} -> {last[key]/1024:.1f} MiB ({change:+.1%}), flat: {flat}")
    p99s = [r["p99_ms"] for r in full]
    median = statistics.median(p99s)
    flat = max(p99s) <= 4 * median
    verdicts.append(flat)
    print(f"p99 over minutes {first['minute']}..{last['minute']}: median {median:.2f} ms, max {max(p99s):.2f} ms, flat: {flat}")
sys.exit(0 if exact and all(verdicts) else 1)
PY
