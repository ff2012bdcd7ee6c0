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
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
lamed=${LAMED_BIN:-target/release/lamed}
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$lamed" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" --bench-routes >/dev/null 2>"$dir/log.txt" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
key=$(cat "$dir/data/api_key")

cat >"$dir/agent.lua" <<'LUA'
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
LUA
# Unique uuids: the round, the thread and a counter; every event a goal
# completion, so Lamed's /experiments shape shows each count.
cat >"$dir/track.lua" <<'LUA'
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  round, counter = args[1], 0
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/track?namespace=wrk&experiment=e&variant=v" .. (counter % 2)
    .. "&event=buy&uuid=" .. round .. "-" .. id .. "-" .. counter)
end
LUA

rate() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $5}' "$1"; }
answered() { awk '/requests in/ {print $1}' "$1"; }
empty=(); track=(); tracked=0
for round in $(seq "$rounds"); do
    wrk -t2 -c64 -d"${seconds}s" -s "$dir/agent.lua" "http://127.0.0.1:$port/_bench/empty" >"$dir/empty.txt"
    wrk -t2 -c64 -d"${seconds}s" -s "$dir/track.lua" "http://127.0.0.1:$port/track" -- "$round" >"$dir/track.txt"
    [ -z "$(non2xx "$dir/track.txt")" ] || { cat "$dir/track.txt"; echo "non-200 answers" >&2; exit 1; }
    empty+=("$(rate "$dir/empty.txt")"); track+=("$(rate "$dir/track.txt")")
    tracked=$((tracked + $(answered "$dir/track.txt")))
done
counted=$(curl -fs -H "X-Api-Key: $key" "http://127.0.0.1:$port/experiments?namespace=wrk" |
    python3 -c 'import json,sys; print(sum(r["successes"] for e in json.load(sys.stdin)[1:] for g in e["goals"] for r in g["results"]))')
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
