#!/usr/bin/env bash
# The Sixpack API's throughput against GET /track on one `lamed serve`, in
# the same run: ROUNDS alternating rounds of SECONDS each of (1) GET /track
# with a unique uuid per request, (2) GET /participate with a new client id
# per request, (3) GET /convert of the clients that round's participate
# phase enrolled, in the same order. wrk, 64 connections, 2 threads, a
# browser's User-Agent. Prints the medians and the ratios to /track, the
# server's CPU per request (user+system from /proc over the requests wrk
# counted: steadier than req/s on a shared machine), and checks that no
# request was refused.
#
#   bash bench/sixpack-vs-track.sh [ROUNDS] [SECONDS]
#   LAMED_BIN=/tmp/other/lamed bash bench/sixpack-vs-track.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
[ -n "${LAMED_BIN:-}" ] || cargo build --release --quiet --bin lamed
source bench/wrk-lib.sh
start_lamed "${LAMED_BIN:-target/release/lamed}" "$bench_dir/data"
dir=$bench_dir

# One script for the three phases (args: the phase and the round); the
# client ids of a round's participate and convert phases are the same
# sequence (thread, counter), so every conversion is of an enrolled client.
{ wrk_script_head; cat <<'LUA'
function request()
  counter = counter + 1
  local phase, who = args[1], args[2] .. "-" .. id .. "-" .. counter
  if phase == "track" then
    return wrk.format("GET", "/track?namespace=bench&experiment=e&variant=v" .. (counter % 2)
      .. "&event=participate&uuid=" .. who)
  elseif phase == "participate" then
    return wrk.format("GET", "/participate?experiment=e&alternatives=a&alternatives=b&client_id=" .. who)
  else
    return wrk.format("GET", "/convert?experiment=e&kpi=buy&client_id=" .. who)
  end
end
LUA
} >"$dir/phase.lua"
declare -A runs cpus
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for round in $(seq "$rounds"); do
    for phase in track participate convert; do
        duration=$seconds
        before=$(cpu)
        wrk -t2 -c64 -d"${duration}s" -s "$dir/phase.lua" "http://127.0.0.1:$port/" -- "$phase" "$round" >"$dir/$phase.txt"
        # A convert phase may outrun its participate phase: clients it never
        # enrolled get Sixpack's 400; every answer must otherwise be 200.
        cpus[$phase]="${cpus[$phase]:-} $(python3 -c "print(($(cpu) - $before) * 1e6 / $ticks / $(wrk_answered "$dir/$phase.txt"))")"
        if [ "$phase" != convert ] && [ -n "$(wrk_non2xx "$dir/$phase.txt")" ]; then
            cat "$dir/$phase.txt"; echo "refused requests in $phase" >&2; exit 1
        fi
        if [ "$phase" = participate ]; then enrolled=$(wrk_answered "$dir/$phase.txt"); fi
        if [ "$phase" = convert ]; then
            refused=$(wrk_non2xx "$dir/convert.txt"); refused=${refused:-0}
            converted=$(( $(wrk_answered "$dir/convert.txt") - refused ))
            # Only requests beyond what the participate phase enrolled may be
            # refused. wrk counts answers it read: up to one request per
            # connection was enrolled but cut off unanswered at the end.
            [ "$converted" -le $((enrolled + 64)) ] || { echo "more conversions ($converted) than participants ($enrolled)" >&2; exit 1; }
            # Throughput of the conversions answered 200 only.
            runs[$phase]="${runs[$phase]:-} $(python3 -c "print($converted / $duration)")"
        else
            runs[$phase]="${runs[$phase]:-} $(wrk_rate "$dir/$phase.txt")"
        fi
    done
done
python3 - "${runs[track]}" "${runs[participate]}" "${runs[convert]}" \
    "${cpus[track]}" "${cpus[participate]}" "${cpus[convert]}" <<'PY'
import statistics, sys
rates = [[float(x) for x in arg.split()] for arg in sys.argv[1:4]]
cpus = [statistics.median(float(x) for x in arg.split()) for arg in sys.argv[4:7]]
t = statistics.median(rates[0])
for name, runs, cpu in zip(("GET /track", "GET /participate", "GET /convert"), rates, cpus):
    m = statistics.median(runs)
    print(f"{name:17} median {m:8.0f} req/s  ratio to /track {m / t:.2f}  "
          f"CPU {cpu:5.1f} us/request (ratio {cpus[0] / cpu:.2f})  (runs {', '.join(f'{r:.0f}' for r in runs)})")
PY
