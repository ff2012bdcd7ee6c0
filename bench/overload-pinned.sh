#!/usr/bin/env bash
# Overload measured per core (issue 24): `lamed serve` pinned to one core,
# `lamed-load` to the other (taskset). Each round: a fresh server, its
# pinned capacity (closed loop, 64 connections), then MULTIPLE x that rate
# offered for SECONDS in an open loop (`--rate`) over CONNECTIONS
# connections, each request given up TIMEOUT_MS after it was due; then every
# request not answered 200 is re-sent until all are, and the counts are
# checked (0 lost before the re-sends, exact after). Reports goodput as a
# share of capacity, the server's own p99 for requests answered 200 (its
# `lamed_request_duration_seconds` histogram, the overload's requests only),
# client-side latency with timeouts, and RSS against idle; medians over the
# rounds at the end.
#
#   bash bench/overload-pinned.sh [SECONDS] [CONNECTIONS] [ROUNDS] [MULTIPLE]
#   SERVE_ARGS="--max-in-flight-requests 64" bash bench/overload-pinned.sh
#   SERVER_CPU=0 LOAD_CPU=1 TIMEOUT_MS=2000 (the defaults)
#   CAPACITY_CONNECTIONS=64 (the default): the capacity's connections; set
#   it to CONNECTIONS to compare with the capacity at the same count
#   LAMED_BIN=/path/to/lamed (another build, for a same-run baseline)
#   BIN_DIR=/tmp/reltarget/release (built lamed and lamed-load; the default
#   builds them into target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
connections=${2:-256}
rounds=${3:-3}
multiple=${4:-2}
timeout_ms=${TIMEOUT_MS:-2000}
server_cpu=${SERVER_CPU:-0}
load_cpu=${LOAD_CPU:-1}
capacity_connections=${CAPACITY_CONNECTIONS:-64}
if [ -z "${BIN_DIR:-}" ]; then
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --workspace --bins
    BIN_DIR=target/release
fi
lamed_bin=${LAMED_BIN:-$BIN_DIR/lamed}
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
ulimit -n 65536 2>/dev/null || true
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
load() { taskset -c "$load_cpu" "$BIN_DIR/lamed-load" --addr "127.0.0.1:$port" --json "$@" || true; }
metrics() { curl -fs -H "X-Api-Key: $key" "http://127.0.0.1:$port/metrics"; }

for round in $(seq "$rounds"); do
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
    RUST_LOG=error taskset -c "$server_cpu" "$lamed_bin" serve --listen "127.0.0.1:$port" \
        --data-dir "$dir/data-$round" ${SERVE_ARGS:-} >/dev/null 2>"$dir/log-$round.txt" &
    pid=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    key=$(cat "$dir/data-$round/api_key")
    idle=$(kib VmRSS)
    load --events 300000 --connections "$capacity_connections" --namespace capacity --api-key "$key" >"$dir/capacity-$round.json"
    capacity=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests_per_second"])' "$dir/capacity-$round.json")
    rate=$(python3 -c "print(round($multiple * $capacity))")
    events=$(python3 -c "print(int($rate * $seconds))")
    metrics >"$dir/metrics-before-$round.txt"
    before=$(kib VmHWM)
    # The overload, then the re-sends (inside lamed-load, --resend). The
    # server's memory peak is read after the overload phase: the re-sends
    # run at capacity, closed loop, over 32 connections.
    load --rate "$rate" --events "$events" --connections "$connections" --timeout-ms "$timeout_ms" \
        --namespace overload --seed "$round" --api-key "$key" --resend \
        >"$dir/overload-$round.json" 2>"$dir/overload-$round.err" &
    loader=$!
    # The generator's CPU while it paces (is it what limits the offer?),
    # and the server's metrics and peak RSS at the end of the paced phase,
    # before the re-sends.
    until grep -q "sending the load" "$dir/overload-$round.err" || ! kill -0 "$loader" 2>/dev/null; do
        sleep 0.05
    done
    lpid=$(pgrep -P "$loader" | head -1)
    cpu0=$(awk '{print $14 + $15}' "/proc/$lpid/stat"); t0=$(date +%s.%N)
    until grep -q "the load is sent" "$dir/overload-$round.err" || ! kill -0 "$loader" 2>/dev/null; do
        sleep 0.2
    done
    cpu1=$(awk '{print $14 + $15}' "/proc/$lpid/stat"); t1=$(date +%s.%N)
    python3 -c "print(($cpu1 - $cpu0) / $(getconf CLK_TCK) / ($t1 - $t0))" >"$dir/loadcpu-$round.txt"
    metrics >"$dir/metrics-after-$round.txt"
    peak=$(kib VmHWM)
    wait "$loader" || true
    after=$(kib VmRSS)
    echo "$idle $before $peak $after" >"$dir/rss-$round.txt"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
done

python3 - "$dir" "$rounds" "$seconds" "$multiple" "$connections" "$timeout_ms" <<'PY'
import json, re, statistics, sys
d, rounds, seconds, multiple, connections, timeout_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

def buckets(path, status="200"):
    """Cumulative counts per upper bound of the request-duration histogram."""
    out = {}
    for line in open(path):
        m = re.match(r'lamed_request_duration_seconds_bucket\{(.*)\} (\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("status") == status:
            out[float(labels["le"])] = float(m.group(2))
    return out

def server_p(before, after, q):
    """The bucket bound under which a share q of the overload's 200s fell."""
    b, a = buckets(before), buckets(after)
    bounds = sorted(a)
    total = a[bounds[-1]] - b.get(bounds[-1], 0)
    for bound in bounds:
        if a[bound] - b.get(bound, 0) >= q * total:
            return bound, total
    return float("inf"), total

rows = []
for r in range(1, rounds + 1):
    cap = json.load(open(f"{d}/capacity-{r}.json"))
    over = json.load(open(f"{d}/overload-{r}.json"))
    idle, before, peak, after = map(int, open(f"{d}/rss-{r}.txt").read().split())
    load_cpu = float(open(f"{d}/loadcpu-{r}.txt").read())
    p99_server, server_200s = server_p(f"{d}/metrics-before-{r}.txt", f"{d}/metrics-after-{r}.txt", 0.99)
    p50_server, _ = server_p(f"{d}/metrics-before-{r}.txt", f"{d}/metrics-after-{r}.txt", 0.5)
    offered = over["requests"] / seconds
    goodput = over["ok"] / seconds
    row = dict(
        capacity=cap["requests_per_second"], capacity_exact=cap["counts_exact"],
        offered=offered, sent_and_answered=over["requests_per_second"],
        goodput=goodput, share=goodput / cap["requests_per_second"],
        ok=over["ok"], answered_503=over["answered_503"], timed_out=over["timed_out"],
        no_answer=over["no_answer"], requests=over["requests"],
        p99_server_ms=p99_server * 1e3, p50_server_ms=p50_server * 1e3, server_200s=server_200s,
        p50_client_all_ms=over["p50_all_ms"], p99_client_all_ms=over["p99_all_ms"],
        p99_client_200_ms=over["p99_accepted_ms"], p50_client_200_ms=over["p50_accepted_ms"],
        idle_mib=idle / 1024, peak_mib=peak / 1024, after_mib=after / 1024,
        rss_bound_mib=2 * idle / 1024 + 64,
        lost=over["acknowledged_lost"], doubled=over["counted_above_truth"],
        exact=over["counts_exact"], resend_rounds=over["resend_rounds"],
        ok_after=over["ok_after_resends"], load_cpu=load_cpu,
    )
    rows.append(row)
    print(f"round {r}: capacity {row['capacity']:.0f} req/s over {cap['connections']} connections (counts exact: {row['capacity_exact']}); "
          f"offered {row['offered']:.0f} req/s = {row['offered'] / row['capacity']:.2f}x for {seconds} s over {connections} connections (generator at {row['load_cpu']:.0%} of its core); "
          f"answered 200 {row['ok']}, 503 {row['answered_503']}, timed out ({timeout_ms} ms) {row['timed_out']}, no answer {row['no_answer']} of {row['requests']}; "
          f"goodput {row['goodput']:.0f}/s = {row['share']:.2f} of capacity; "
          f"server p50/p99 of its 200s <= {row['p50_server_ms']:g}/{row['p99_server_ms']:g} ms ({row['server_200s']:.0f} answers); "
          f"client p50/p99 of all (timeouts as {timeout_ms} ms) {row['p50_client_all_ms']:.1f}/{row['p99_client_all_ms']:.1f} ms, of 200s {row['p50_client_200_ms']:.1f}/{row['p99_client_200_ms']:.1f} ms; "
          f"RSS idle {row['idle_mib']:.1f} MiB, peak {row['peak_mib']:.1f} MiB (bound 2x idle + 64 = {row['rss_bound_mib']:.1f}), after {row['after_mib']:.1f} MiB; "
          f"lost {row['lost']}, counted above truth {row['doubled']}, exact after {row['resend_rounds']} re-send round(s): {row['exact']} ({row['ok_after']} of {row['requests']} answered 200)")
med = lambda k: statistics.median(row[k] for row in rows)
print(f"median of {rounds}: capacity {med('capacity'):.0f} req/s, offered {med('offered'):.0f} req/s, "
      f"goodput share {med('share'):.2f}, server p99 of 200s <= {med('p99_server_ms'):g} ms, "
      f"client p99 of all {med('p99_client_all_ms'):.0f} ms, RSS peak {med('peak_mib'):.1f} MiB (idle {med('idle_mib'):.1f}); "
      f"lost {sum(r['lost'] for r in rows)}, above truth {sum(r['doubled'] for r in rows)}, all exact: {all(r['exact'] for r in rows)}")
PY
