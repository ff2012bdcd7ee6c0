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
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
source bench/wrk-lib.sh
builds=("${LAMED_BIN:-target/release/lamed}")
names=(after)
if [ -n "${BASELINE_BIN:-}" ]; then builds=("$BASELINE_BIN" "${builds[0]}"); names=(before after); fi
ports=()
for i in "${!builds[@]}"; do
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
    start_lamed "${builds[$i]}" "$bench_dir/data$i" --max-batch-events "$batch" ${SERVE_ARGS:-}
    ports+=("$port")
done

# Each request: BATCH events with uuids made of the round, the thread, the
# request and the position, so that no two events are the same.
{ wrk_script_head; cat <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  counter = counter + 1
  local round, size = args[1], tonumber(args[2])
  local prefix = '{"namespace":"bench","experiment":"e","event":"buy","variant":"v'
  local parts = {}
  for i = 1, size do
    parts[i] = prefix .. (i % 2) .. '","uuid":"' .. round .. "-" .. id .. "-" .. counter .. "-" .. i .. '"}'
  end
  return wrk.format(nil, "/track", nil, "[" .. table.concat(parts, ",") .. "]")
end
LUA
} >"$bench_dir/batch.lua"

declare -A results answered
for round in $(seq "$rounds"); do
    for i in "${!builds[@]}"; do
        out="$bench_dir/run$i.txt"
        wrk -t1 -c"$connections" -d"${seconds}s" --timeout 30s -s "$bench_dir/batch.lua" \
            "http://127.0.0.1:${ports[$i]}/track" -- "$round" "$batch" >"$out"
        [ -z "$(wrk_non2xx "$out")" ] || { cat "$out"; echo "non-200 answers" >&2; exit 1; }
        results[$i]="${results[$i]:-} $(wrk_rate "$out")"
        answered[$i]=$(( ${answered[$i]:-0} + $(wrk_answered "$out") ))
    done
done
for i in "${!builds[@]}"; do
    counted=$(goal_completions "${ports[$i]}" "$(cat "$bench_dir/data$i/api_key")" bench)
    python3 - "${names[$i]}" "${builds[$i]}" "${results[$i]}" "${answered[$i]}" "$counted" \
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
