# shellcheck shell=bash
# Shared by the wrk benchmarks (sourced): a scratch directory, `lamed serve`
# on a free loopback port stopped by PID on exit, the start of a wrk script,
# and readers of wrk's summary.

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
bench_dir=$(mktemp -d)
bench_pids=()
trap 'for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$bench_dir"' EXIT

# A free port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_lamed BIN DATA_DIR [SERVE FLAGS...]: starts `BIN serve` on a free
# port and waits for /health; sets `port` and `pid`.
start_lamed() {
    local bin=$1 data=$2
    shift 2
    port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" >/dev/null 2>>"$bench_dir/log.txt" &
    pid=$!
    bench_pids+=("$pid")
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
    echo "lamed did not start:" >&2; cat "$bench_dir/log.txt" >&2; exit 1
}

# The opening of a wrk script whose requests are all different: a browser's
# User-Agent (the bot filter ignores wrk's own), each thread's `id`, and
# `args` in init (wrk's arguments after --), with a per-thread `counter`.
wrk_script_head() {
    cat <<'LUA'
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(a)
  args, counter = a, 0
end
LUA
}

# Readers of a wrk summary file.
wrk_rate() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_answered() { awk '/requests in/ {print $1}' "$1"; }
wrk_non2xx() { awk '/Non-2xx/ {print $5}' "$1"; }

# goal_completions PORT KEY NAMESPACE: the goal completions counted in a
# namespace, summed over Lamed's /experiments shape.
goal_completions() {
    curl -fs -H "X-Api-Key: $2" "http://127.0.0.1:$1/experiments?namespace=$3" |
        python3 -c 'import json,sys; print(sum(r["successes"] for e in json.load(sys.stdin)[1:] for g in e["goals"] for r in g["results"]))'
}
