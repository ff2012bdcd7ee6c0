#!/usr/bin/env bash
# Durable batch ingest: POST /track with BATCH events per request (every
# event unique, a goal completion), measured with wrk on one `lamed serve`
# per build, ROUNDS alternating phases of SECONDS each when two builds are
# given (the baseline first). Prints events/s per round and the medians,
# and checks that every event of a batch answered 200 was counted (plus at
# most the batches in flight when wrk stopped).
#
#   bash bench/batch-ingest.sh [ROUNDS] [SECONDS] [CONNECTIONS] [BATCH]
#   BASELINE_BIN=/tmp/before/lamed bash bench/batch-ingest.sh   # before vs after
#   SERVE_ARGS="--fsync" bash bench/batch-ingest.sh              # extra serve flags
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
connections=${3:-8}
batch=${4:-1000}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
builds=("${LAMED_BIN:-target/release/lamed}")
names=(after)
if [ -n "${BASELINE_BIN:-}" ]; then builds=("$BASELINE_BIN" "${builds[0]}"); names=(before after); fi
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$dir"' EXIT
ports=()
for i in "${!builds[@]}"; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
    "${builds[$i]}" serve --listen "127.0.0.1:$port" --data-dir "$dir/data$i" \
        --max-batch-events "$batch" ${SERVE_ARGS:-} >/dev/null 2>"$dir/log$i.txt" &
    pids+=($!); ports+=("$port")
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

# Each request: BATCH events with uuids made of the round, the thread, the
# request and the position, so that no two events are the same.
cat >"$dir/batch.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  round, size, counter = args[1], tonumber(args[2]), 0
end
function request()
  counter = counter + 1
  local prefix = '{"namespace":"bench","experiment":"e","event":"buy","variant":"v'
  local parts = {}
  for i = 1, size do
    parts[i] = prefix .. (i % 2) .. '","uuid":"' .. round .. "-" .. id .. "-" .. counter .. "-" .. i .. '"}'
  end
  return wrk.format(nil, "/track", nil, "[" .. table.concat(parts, ",") .. "]")
end
LUA

rate() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $5}' "$1"; }
answered() { awk '/requests in/ {print $1}' "$1"; }
declare -A results answered_total
for round in $(seq "$rounds"); do
    for i in "${!builds[@]}"; do
        out="$dir/run$i.txt"
        wrk -t1 -c"$connections" -d"${seconds}s" --timeout 30s -s "$dir/batch.lua" \
            "http://127.0.0.1:${ports[$i]}/track" -- "$round" "$batch" >"$out"
        [ -z "$(non2xx "$out")" ] || { cat "$out"; echo "non-200 answers" >&2; exit 1; }
        results[$i]="${results[$i]:-} $(rate "$out")"
        answered_total[$i]=$(( ${answered_total[$i]:-0} + $(answered "$out") ))
    done
done
for i in "${!builds[@]}"; do
    key=$(cat "$dir/data$i/api_key")
    counted=$(curl -fs -H "X-Api-Key: $key" "http://127.0.0.1:${ports[$i]}/experiments?namespace=bench" |
        python3 -c 'import json,sys; print(sum(r["successes"] for e in json.load(sys.stdin)[1:] for g in e["goals"] for r in g["results"]))')
    python3 - "${names[$i]}" "${builds[$i]}" "${results[$i]}" "${answered_total[$i]}" "$counted" \
        "$batch" "$connections" "$rounds" <<'PY'
import statistics, sys
name, build, runs = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()]
answered, counted, batch, conns, rounds = (int(x) for x in sys.argv[4:9])
events = [r * batch for r in runs]
print(f"{name:6} {build}: median {statistics.median(events):,.0f} events/s "
      f"({batch}-event batches, {conns} connections; rounds {', '.join(f'{e:,.0f}' for e in events)})")
print(f"       {answered * batch:,} events answered 200, {counted:,} counted "
      f"(at most {conns * rounds * batch:,} more in flight when wrk stopped)")
sys.exit(0 if answered * batch <= counted <= (answered + conns * rounds) * batch else 1)
PY
done
