#!/usr/bin/env bash
# The server's CPU per request: `lamed serve --bench-routes`' user+system
# time (from /proc) over the requests wrk completed, for the empty handler
# and for GET /track (a unique uuid per request), ROUNDS alternating rounds
# of SECONDS each, 64 connections. Less sensitive to other work on the
# machine than a throughput figure.
#
#   bash bench/cpu-per-request.sh [ROUNDS] [SECONDS]
#   LAMED_BIN=/tmp/before/lamed bash bench/cpu-per-request.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
seconds=${2:-5}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
source bench/wrk-lib.sh
start_lamed "${LAMED_BIN:-target/release/lamed}" "$bench_dir/data" --bench-routes
wrk_script_head | head -1 >"$bench_dir/empty.lua"
{ wrk_script_head; cat <<'LUA'
function request()
  counter = counter + 1
  return wrk.format("GET", "/track?namespace=cpu&experiment=e&variant=v" .. (counter % 2)
    .. "&event=buy&uuid=" .. args[1] .. "-" .. id .. "-" .. counter)
end
LUA
} >"$bench_dir/track.lua"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for round in $(seq "$rounds"); do
    for what in empty track; do
        path=/_bench/empty; [ "$what" = track ] && path=/track
        before=$(cpu)
        wrk -t2 -c64 -d"${seconds}s" -s "$bench_dir/$what.lua" "http://127.0.0.1:$port$path" -- "$round" >"$bench_dir/wrk.txt"
        after=$(cpu)
        python3 -c 'import sys; w, t, n, hz, r, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]; print(f"round {k} {w:5}: {t / hz / n * 1e6:6.1f} µs of server CPU per request ({r} req/s)")' \
            "$what" $((after - before)) "$(wrk_answered "$bench_dir/wrk.txt")" "$ticks" "$(wrk_rate "$bench_dir/wrk.txt")" "$round"
    done
done
