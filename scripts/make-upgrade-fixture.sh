#!/usr/bin/env bash
# Makes tests/data/upgrade/: a data directory written by a released lamed
# (its lamed.db), the events it was sent and the answers it gave, for
# tests/operations/upgrade.rs, which serves that directory with the binary under test.
# Run it once per release whose store layout the next binaries must read:
#   LAMED_BIN=path/to/released/lamed scripts/make-upgrade-fixture.sh
# It writes into tests/data/upgrade/ (replacing what is there).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${LAMED_BIN:-target/debug/lamed}"
out=tests/data/upgrade
key=upgrade-fixture-key-0123456789
work="$(mktemp -d)"
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo '{}' >"$work/config.json"
# The window never ends (0), so that the test, run months later, still
# finds every event remembered; bots are not filtered, so curl counts.
"$bin" serve --config "$work/config.json" --data-dir "$work/data" --listen 127.0.0.1:0 \
    --api-key "$key" --uuid-expiry-seconds 0 --bot-filter=false >"$work/banner" 2>"$work/log" &
pid=$!
for _ in $(seq 200); do
    grep -q '^lamed is listening on' "$work/banner" && break
    sleep 0.05
done
base="$(sed -n 's/^lamed is listening on \(http:[^ ]*\).*/\1/p' "$work/banner")"
[ -n "$base" ] || { cat "$work/log" >&2; exit 1; }

api() { curl -fsS -H "X-Api-Key: $key" "$@"; }
: >"$work/events.txt"
send() { # path: sent, and remembered for the test to send again
    curl -fsS -o /dev/null "$base$1"
    echo "$1" >>"$work/events.txt"
}

# Registered before its first event, with a description and weights.
api -X PUT "$base/api/experiments/pricing?namespace=shop" -o /dev/null \
    -d '{"description": "Cheaper plan sells more", "variants": ["low", {"name": "high", "weight": 2}],
         "control": "low", "goals": ["checkout", {"name": "add to cart", "unique": false}]}'
for i in $(seq 1 30); do
    variant=$([ $((i % 3)) -eq 0 ] && echo high || echo low)
    send "/track?namespace=shop&experiment=pricing&variant=$variant&event=participate&uuid=p$i"
    if [ $((i % 4)) -eq 0 ]; then
        send "/track?namespace=shop&experiment=pricing&variant=$variant&event=checkout&uuid=c$i"
    fi
    if [ $((i % 5)) -eq 0 ]; then
        send "/track?namespace=shop&experiment=pricing&variant=$variant&event=add+to+cart&uuid=a$i"
    fi
done
# Registered by its first event (open registration), in the default namespace.
for i in $(seq 1 25); do
    variant=$([ $((i % 2)) -eq 0 ] && echo red || echo blue)
    send "/track?experiment=button+color&variant=$variant&event=participate&uuid=b$i"
    if [ $((i % 3)) -eq 0 ]; then
        send "/track?experiment=button+color&variant=$variant&event=signup&uuid=s$i"
    fi
done
# A duplicate: counted once.
send "/track?experiment=button+color&variant=blue&event=participate&uuid=b1"
# A paused experiment.
send "/track?namespace=shop&experiment=banner&variant=on&event=participate&uuid=x1"
api -X PATCH "$base/api/experiments/banner?namespace=shop" -o /dev/null -d '{"status": "paused"}'
# Sixpack clients: memberships, and a conversion per KPI.
for c in 1 2 3 4 5 6; do
    send "/participate?experiment=sp-color&client_id=client$c&alternatives=red&alternatives=green"
done
for c in 2 4; do
    send "/convert?experiment=sp-color&client_id=client$c&kpi=buy"
done

mkdir -p "$work/answers"
for ns in alephbet shop sixpack; do
    api "$base/experiments?namespace=$ns" >"$work/answers/experiments-$ns.json"
    api "$base/api/experiments?namespace=$ns&status=all" >"$work/answers/registry-$ns.json"
done
kill -TERM "$pid"
wait "$pid"
pid=

rm -rf "$out"
mkdir -p "$out/data"
cp "$work/data/lamed.db" "$out/data/"
[ ! -s "$work/data/lamed.db-wal" ] || { echo "the WAL was not checkpointed at shutdown" >&2; exit 1; }
cp "$work/events.txt" "$out/"
cp "$work/answers/"*.json "$out/"
"$bin" --version >"$out/VERSION"
git rev-parse HEAD >>"$out/VERSION" 2>/dev/null || true
du -sh "$out"
