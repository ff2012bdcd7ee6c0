#!/usr/bin/env bash
# The tracking/empty-handler ratio measured with wrk instead of lamed-load,
# to show the ratio does not depend on our own tool: one `lamed serve
# --bench-routes`, ROUNDS alternating phases of SECONDS each (GET
# /_bench/empty, then GET /track with a unique uuid per request), 64
# connections on 2 threads, every request with a browser's User-Agent (the
# bot filter ignores wrk's own). Prints the medians, the ratio, and checks
# that every tracked request answered 200 was counted, and at most the
# requests still in flight when wrk stopped (64 per round) more.
#
#   bash bench/wrk-track-vs-empty.sh [ROUNDS] [SECONDS]
#   LAMED_BIN=/tmp/before/lamed bash bench/wrk-track-vs-empty.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
source bench/wrk-lib.sh
start_lamed "${LAMED_BIN:-target/release/lamed}" "$bench_dir/data" --bench-routes
key=$(cat "$bench_dir/data/api_key")
dir=$bench_dir

wrk_script_head | head -1 >"$dir/agent.lua"
# Unique uuids: the round, the thread and a counter; every event a goal
# completion, so Lamed's /experiments shape shows each count.
{ wrk_script_head; cat <<'LUA'
function request()
  counter = counter + 1
  return wrk.format("GET", "/track?namespace=wrk&experiment=e&variant=v" .. (counter % 2)
    .. "&event=buy&uuid=" .. args[1] .. "-" .. id .. "-" .. counter)
end
LUA
} >"$dir/track.lua"

empty=(); track=(); tracked=0
for round in $(seq "$rounds"); do
    wrk -t2 -c64 -d"${seconds}s" -s "$dir/agent.lua" "http://127.0.0.1:$port/_bench/empty" >"$dir/empty.txt"
    wrk -t2 -c64 -d"${seconds}s" -s "$dir/track.lua" "http://127.0.0.1:$port/track" -- "$round" >"$dir/track.txt"
    [ -z "$(wrk_non2xx "$dir/track.txt")" ] || { cat "$dir/track.txt"; echo "non-200 answers" >&2; exit 1; }
    empty+=("$(wrk_rate "$dir/empty.txt")"); track+=("$(wrk_rate "$dir/track.txt")")
    tracked=$((tracked + $(wrk_answered "$dir/track.txt")))
done
counted=$(goal_completions "$port" "$key" wrk)
python3 - "$tracked" "$counted" "${empty[*]}" "${track[*]}" "$rounds" <<'PY'
import statistics, sys
tracked, counted, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[5])
empty = [float(x) for x in sys.argv[3].split()]
track = [float(x) for x in sys.argv[4].split()]
e, t = statistics.median(empty), statistics.median(track)
print(f"wrk, 64 connections: empty handler median {e:.0f} req/s (runs {', '.join(f'{x:.0f}' for x in empty)})")
print(f"wrk, 64 connections: GET /track     median {t:.0f} req/s (runs {', '.join(f'{x:.0f}' for x in track)})")
print(f"ratio track/empty: {t / e:.2f}; {tracked} tracking requests answered 200, {counted} counted "
      f"(wrk drops the answers in flight when it stops: at most {64 * rounds})")
sys.exit(0 if tracked <= counted <= tracked + 64 * rounds else 1)
PY
