#!/usr/bin/env bash
# What each `--fsync` mode costs (README: "Durability"): for each round, and
# each mode in a rotated order, a fresh `lamed serve --fsync=MODE` takes
# 1. REQUESTS `GET /track` (unique uuids plus 25% re-sent duplicates, counts
#    checked exact) over 64 connections as fast as they go: req/s, p99, and
#    the server's CPU (user+system, from /proc) per request;
# 2. the same at a paced RATE (an open loop, latencies counted from when each
#    request was due) for PACED requests, long enough to cross several
#    checkpoints (one per 16 MiB of log): p99 through them. The log written
#    (the server's write() bytes, /proc/PID/io) / 16 MiB estimates how many.
# `none` (the old default) is the same-run baseline. Prints medians.
#
#   bash bench/durability.sh [ROUNDS] [REQUESTS] [RATE] [PACED]
#   LAMED_BIN=/tmp/before/lamed bash bench/durability.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
requests=${2:-200000}
rate=${3:-10000}
paced=${4:-100000}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --workspace --bins
lamed=${LAMED_BIN:-target/release/lamed}
dir=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$dir"' EXIT
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
written() { awk '/^wchar/ {print $2}' "/proc/$pid/io"; }

# run MODE ROUND: one fresh server, both loads; appends a JSON line.
run() {
    local mode=$1 round=$2 port data key before after wrote
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    data="$dir/data-$mode-$round"
    "$lamed" serve --listen "127.0.0.1:$port" --data-dir "$data" --fsync="$mode" >/dev/null 2>>"$dir/log.txt" &
    pid=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    key=$(cat "$data/api_key")
    before=$(cpu)
    target/release/lamed-load --addr "127.0.0.1:$port" --events "$requests" --connections 64 \
        --duplicates 0.25 --api-key "$key" --seed "$round" --json >"$dir/closed.json"
    after=$(cpu)
    wrote=$(written)
    target/release/lamed-load --addr "127.0.0.1:$port" --events "$paced" --connections 64 \
        --rate "$rate" --api-key "$key" --seed $((round + 1000)) --json >"$dir/paced.json"
    wrote=$(( $(written) - wrote ))
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    python3 - "$mode" "$round" $((after - before)) "$ticks" "$wrote" "$dir/closed.json" "$dir/paced.json" >>"$dir/runs.jsonl" <<'PY'
import json, sys
mode, round_, cpu, hz, wrote, closed, paced = sys.argv[1:]
closed, paced = json.load(open(closed)), json.load(open(paced))
assert closed["counts_exact"] and paced["counts_exact"], "counts were not exact"
print(json.dumps({
    "mode": mode, "round": int(round_),
    "rps": closed["requests_per_second"], "p99_ms": closed["p99_ms"],
    "cpu_us": int(cpu) / int(hz) / closed["requests"] * 1e6,
    "paced_p50_ms": paced["p50_ms"], "paced_p99_ms": paced["p99_ms"],
    "paced_rps": paced["requests_per_second"], "checkpoints": int(wrote) / (16 << 20),
}))
PY
    tail -1 "$dir/runs.jsonl" >&2
}

modes=(none second commit)
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        run "${modes[$(( (i + round) % 3 ))]}" "$round"
    done
done
python3 - "$dir/runs.jsonl" "$rate" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = sys.argv[2]
med = lambda mode, key: statistics.median(r[key] for r in rows if r["mode"] == mode)
base = {k: med("none", k) for k in ("rps", "cpu_us")}
print(f"| --fsync | req/s | vs none | server CPU per request | p99 | paced {rate}/s: p50 | p99 | ≈ checkpoints crossed |")
print("|---|---|---|---|---|---|---|---|")
for mode in ("none", "second", "commit"):
    print(f"| `{mode}` | {med(mode, 'rps'):,.0f} | {med(mode, 'rps') / base['rps']:.2f}× "
          f"| {med(mode, 'cpu_us'):.1f} µs | {med(mode, 'p99_ms'):.2f} ms "
          f"| {med(mode, 'paced_p50_ms'):.2f} ms | {med(mode, 'paced_p99_ms'):.2f} ms "
          f"| {med(mode, 'checkpoints'):.1f} |")
for mode in ("none", "second", "commit"):
    runs = [r for r in rows if r["mode"] == mode]
    print(f"{mode}: req/s " + " / ".join(f"{r['rps']:,.0f}" for r in runs)
          + "; CPU µs " + " / ".join(f"{r['cpu_us']:.1f}" for r in runs)
          + "; paced p99 ms " + " / ".join(f"{r['paced_p99_ms']:.2f}" for r in runs))
PY
