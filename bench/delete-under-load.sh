#!/usr/bin/env bash
# Deleting a big Sixpack experiment while tracking runs: the p99 latency of
# concurrent GET /track, with and without a delete, on one `lamed serve`.
#
# 1. MEMBERS participations (new client each) fill experiment `big` with as
#    many memberships (and counts), through GET /participate.
# 2. Two wrk runs of SECONDS each of GET /track (new uuid per request, 16
#    connections): the first as a baseline, the second with
#    DELETE /api/experiments/big?namespace=sixpack sent after a second.
# Prints both p99s, the delete's own time, and checks the experiment is gone.
#
#   bash bench/delete-under-load.sh [MEMBERS] [SECONDS]            # embedded store
#   REDIS_URL=redis://127.0.0.1:6390 bash bench/delete-under-load.sh  # a Redis of yours
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-1000000}
seconds=${2:-6}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
source bench/wrk-lib.sh
key=bench-key-0123456789abcdef
flags=(--api-key "$key")
if [ -n "${REDIS_URL:-}" ]; then flags+=(--redis "$REDIS_URL"); fi
start_lamed "${LAMED_BIN:-target/release/lamed}" "$bench_dir/data" "${flags[@]}"
dir=$bench_dir

{ wrk_script_head; cat <<'LUA'
function request()
  counter = counter + 1
  local who = args[1] .. "-" .. id .. "-" .. counter
  if args[1] == "fill" then
    return wrk.format("GET", "/participate?experiment=big&alternatives=a&alternatives=b&client_id=" .. who)
  end
  return wrk.format("GET", "/track?namespace=bench&experiment=e&variant=v" .. (counter % 2)
    .. "&event=participate&uuid=" .. who)
end
LUA
} >"$dir/phase.lua"

echo "filling experiment big with $members memberships..."
participants() {
    curl -fs -H "X-Api-Key: $key" "http://127.0.0.1:$port/api/experiments/big/report?namespace=sixpack" |
        python3 -c 'import json,sys; print(sum(v["participants"] for v in json.load(sys.stdin)["variants"]))' 2>/dev/null || echo 0
}
wrk -t2 -c64 -d1200s -s "$dir/phase.lua" "http://127.0.0.1:$port/" -- fill >"$dir/fill.txt" &
fill=$!
bench_pids+=("$fill")
until [ "$(participants)" -ge "$members" ]; do sleep 2; done
kill "$fill"; wait "$fill" 2>/dev/null || true
echo "participants counted: $(participants)"

p99() { awk '/^ +99%/ {print $2}' "$1"; }
wrk -t2 -c16 -d"${seconds}s" --latency -s "$dir/phase.lua" "http://127.0.0.1:$port/" -- base >"$dir/base.txt"
( sleep 1
  start=$(date +%s.%N)
  curl -fs -o /dev/null -X DELETE -H "X-Api-Key: $key" "http://127.0.0.1:$port/api/experiments/big?namespace=sixpack"
  python3 -c "import sys; print(f'delete took {float(sys.argv[2]) - float(sys.argv[1]):.2f} s')" "$start" "$(date +%s.%N)" >"$dir/delete.txt"
) &
deleter=$!
wrk -t2 -c16 -d"${seconds}s" --latency -s "$dir/phase.lua" "http://127.0.0.1:$port/" -- during >"$dir/during.txt"
# The delete only: a bare `wait` would wait for the server too.
wait "$deleter"
cat "$dir/delete.txt"
echo "GET /track p99 without a delete: $(p99 "$dir/base.txt"), during the delete: $(p99 "$dir/during.txt")"
status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Api-Key: $key" "http://127.0.0.1:$port/api/experiments/big?namespace=sixpack")
[ "$status" = 404 ] || { echo "experiment big still there ($status)" >&2; exit 1; }
