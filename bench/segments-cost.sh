#!/usr/bin/env bash
# What segments cost (issue 26): the server's CPU per counted GET /track
# (user+system time from /proc over the requests wrk completed) with
# segments on (the default: device, browser) and off (--segments '[]'), two
# servers of the same build side by side, ROUNDS alternating rounds of
# SECONDS each, 64 connections, a unique uuid per request and one of a few
# browser User-Agents (a site's visitors repeat theirs: the parsed-agent
# cache's case). Then the storage: the embedded store's `segments` rows of
# that experiment and their bytes (SQLite's dbstat).
#
#   bash bench/segments-cost.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
bin="${LAMED_BIN:-target/release/lamed}"
source bench/wrk-lib.sh
start_lamed "$bin" "$bench_dir/on" ; on_port=$port on_pid=$pid
start_lamed "$bin" "$bench_dir/off" --segments '[]'; off_port=$port off_pid=$pid
# wrk_script_head's setup and init; each request names its own agent.
{ wrk_script_head; cat <<'LUA'
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:132.0) Gecko/20100101 Firefox/132.0",
  "Mozilla/5.0 (Linux; Android 8.1.0; SM-T837A) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
}
function request()
  counter = counter + 1
  return wrk.format("GET", "/track?namespace=cpu&experiment=e&variant=v" .. (counter % 2)
    .. "&event=buy&uuid=" .. args[1] .. "-" .. id .. "-" .. counter,
    { ["User-Agent"] = agents[counter % #agents + 1] })
end
LUA
} >"$bench_dir/track.lua"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
    for what in off on; do
        if [ "$what" = on ]; then p=$on_port; q=$on_pid; else p=$off_port; q=$off_pid; fi
        before=$(cpu "$q")
        wrk -t2 -c64 -d"${seconds}s" -s "$bench_dir/track.lua" "http://127.0.0.1:$p/track" -- "$round" >"$bench_dir/wrk.txt"
        after=$(cpu "$q")
        python3 -c 'import sys; w, t, n, hz, r, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]; print(f"round {k} segments {w:3}: {t / hz / n * 1e6:6.1f} µs of server CPU per request ({r} req/s)")' \
            "$what" $((after - before)) "$(wrk_answered "$bench_dir/wrk.txt")" "$ticks" "$(wrk_rate "$bench_dir/wrk.txt")" "$round"
    done
done

# Storage: the embedded store's segment rows of the experiment tracked
# above, and what a row takes in the file (SQLite's dbstat).
kill "$on_pid"; wait "$on_pid" 2>/dev/null || true
sqlite3 "$bench_dir/on/lamed.db" "SELECT 'segment rows of the experiment: ' || count(*) FROM segments;
  SELECT 'segments table: ' || sum(pgsize) || ' bytes in pages, ' || sum(payload) || ' bytes of payload' FROM dbstat WHERE name = 'segments';"
