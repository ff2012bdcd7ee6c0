#!/usr/bin/env bash
# The dashboard's cost on one `lamed serve` (embedded store): a namespace
# of EXPERIMENTS registered experiments of 3 variants and 2 goals, each
# with a few hundred visitors per variant. Then:
#  1. the time to load the dashboard as a browser does (its list requests,
#     then every card's report over 6 keep-alive connections), ROUNDS
#     times: median and worst, against the issue's target of 300 ms;
#  2. GET /participate's p99 (wrk --latency, 2 threads, 16 connections, a
#     browser's User-Agent, a new client per request) for SECONDS idle,
#     the baseline, then for SECONDS while the dashboard loads in a loop:
#     the ratio, against the issue's target of at most 2x.
#
#   bash bench/dashboard.sh [ROUNDS] [SECONDS] [EXPERIMENTS]
#   LAMED_BIN=target/debug/lamed bash bench/dashboard.sh 3 5   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
seconds=${2:-10}
experiments=${3:-200}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
source bench/wrk-lib.sh
start_lamed "${LAMED_BIN:-target/release/lamed}" "$bench_dir/data" --max-experiments "$experiments"
dir=$bench_dir
key=$(cat "$dir/data/api_key")
driver() { python3 bench/dashboard_driver.py "$1" "$port" "$key" dash "$2"; }

driver fill "$experiments"
driver load 1 >/dev/null # warm the caches
driver load "$rounds" >"$dir/loads.json"

{ wrk_script_head; cat <<'LUA'
function request()
  counter = counter + 1
  local who = args[1] .. "-" .. id .. "-" .. counter
  return wrk.format("GET", "/participate?experiment=e&alternatives=a&alternatives=b&client_id=" .. who)
end
LUA
} >"$dir/participate.lua"
participate() {
    wrk -t2 -c16 -d"${seconds}s" --latency -s "$dir/participate.lua" "http://127.0.0.1:$port/" -- "$1" >"$dir/$1.txt"
    [ -z "$(wrk_non2xx "$dir/$1.txt")" ] || { cat "$dir/$1.txt"; echo "refused requests in $1" >&2; exit 1; }
}
participate idle
driver loop "$dir/stop" >"$dir/loops.txt" &
loop=$!
bench_pids+=("$loop")
sleep 1 # the loop is under way before wrk starts
participate loaded
touch "$dir/stop"
wait "$loop"

python3 - "$dir" "$experiments" "$seconds" <<'PY'
import json, statistics, sys
d, experiments, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def p99(name):
    """wrk's 99th percentile latency, in milliseconds."""
    for line in open(f"{d}/{name}.txt"):
        parts = line.split()
        if len(parts) == 2 and parts[0] == "99%":
            value = parts[1]
            for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
                if value.endswith(unit):
                    return float(value[: -len(unit)]) * scale
    raise SystemExit(f"no p99 in {name}.txt")

def rate(name):
    for line in open(f"{d}/{name}.txt"):
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])

loads = [s * 1000 for s in json.load(open(f"{d}/loads.json"))]
median, worst = statistics.median(loads), max(loads)
print(f"dashboard of {experiments} experiments ({experiments} reports): "
      f"median {median:.0f} ms, worst {worst:.0f} ms over {len(loads)} loads "
      f"(target <= 300 ms: {'met' if median <= 300 else 'missed'})")
idle, loaded = p99("idle"), p99("loaded")
looped = int(open(f"{d}/loops.txt").read())
print(f"GET /participate p99 idle {idle:.2f} ms ({rate('idle'):.0f} req/s), "
      f"while the dashboard loads ({looped} loads in {seconds} s) {loaded:.2f} ms "
      f"({rate('loaded'):.0f} req/s): ratio {loaded / idle:.2f} "
      f"(target <= 2: {'met' if loaded <= 2 * idle else 'missed'})")
PY
