#!/usr/bin/env bash
# Overload on the embedded store: measure what lamed sustains, then offer it
# as much more as the load generator can for about SECONDS, and report the
# offered multiple, the server's memory, the p99 of accepted requests, and
# whether every event is counted exactly once after AlephBet-style re-sends.
#
#   bash bench/overload.sh [SECONDS] [CONNECTIONS]
#   SERVE_ARGS="--fsync" bash bench/overload.sh      # extra serve flags
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
connections=${2:-2048}
cargo build --release --quiet --workspace --bins
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ulimit -n 65536 2>/dev/null || true
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
target/release/lamed serve --listen "127.0.0.1:$port" --data-dir "$dir/data" ${SERVE_ARGS:-} \
    >"$dir/banner.txt" 2>"$dir/log.txt" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
key=$(cat "$dir/data/api_key")
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
load() { target/release/lamed-load --addr "127.0.0.1:$port" --json "$@" || true; }

idle=$(kib VmRSS)
# What lamed sustains: closed loop over 64 connections, counts checked.
load --events 200000 --connections 64 --namespace capacity --api-key "$key" >"$dir/capacity.json"
capacity=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests_per_second"])' "$dir/capacity.json")
events=$(python3 -c "print(int(4 * $capacity * $seconds))")
peak_before=$(kib VmHWM)
# The overload: every connection sends its next request as soon as it is
# answered; past the in-flight limit lamed answers 503 at once.
load --events "$events" --connections "$connections" --namespace overload --seed 7 >"$dir/overload.json"
peak=$(kib VmHWM)
after=$(kib VmRSS)
# AlephBet re-sends what did not get a 200: re-send everything (duplicates
# count nothing) until every request is answered 200 and the counts are exact.
for round in $(seq 10); do
    load --events "$events" --connections 32 --namespace overload --seed 7 --api-key "$key" >"$dir/resend.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["ok"] == r["requests"] and r["counts_exact"] else 1)' "$dir/resend.json" && break
done
python3 - "$dir" "$idle" "$peak_before" "$peak" "$after" "$round" <<'PY'
import json, sys
d, idle, peak_before, peak, after, rounds = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
cap = json.load(open(f"{d}/capacity.json"))
over = json.load(open(f"{d}/overload.json"))
resend = json.load(open(f"{d}/resend.json"))
assert cap["counts_exact"], "capacity run: counts not exact"
print(f"capacity (64 connections): {cap['requests_per_second']:.0f} req/s, p99 {cap['p99_ms']:.2f} ms")
print(f"overload ({over['connections']} connections, {over['requests']} requests in {over['seconds']:.1f} s): "
      f"offered {over['requests_per_second']:.0f} req/s = {over['requests_per_second'] / cap['requests_per_second']:.2f}x capacity; "
      f"{over['ok']} answered 200, {over['answered_503']} answered 503; "
      f"p99 of accepted {over['p99_accepted_ms']:.1f} ms (all answers: {over['p99_ms']:.1f} ms)")
print(f"RSS: idle {idle / 1024:.1f} MiB, peak before the overload {peak_before / 1024:.1f} MiB, "
      f"peak during it {peak / 1024:.1f} MiB, after {after / 1024:.1f} MiB")
print(f"after {rounds} re-send round(s): {resend['ok']} of {resend['requests']} answered 200, counts exact: {resend['counts_exact']}")
PY
