#!/usr/bin/env bash
# End-to-end tests: the real AlephBet client in Debian's Chromium against a real
# `lamed serve`. Installs what it needs when missing (Chromium, node packages),
# then runs the tests with Node's built-in test runner.
#   LAMED_BIN   the lamed binary (default: ../target/debug/lamed)
#   --prepare   only install what is missing (scripts/test.sh does it while
#               the Rust build runs), then exit
set -euo pipefail
cd "$(dirname "$0")"
prepare_only=false
[ "${1:-}" = --prepare ] && prepare_only=true

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "e2e/run.sh: /usr/bin/chromium missing and not root; install Debian's chromium first" >&2
        exit 1
    fi
    echo "e2e/run.sh: installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# npm ci when node_modules is missing or was installed from another lockfile.
stamp=node_modules/.e2e-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "e2e/run.sh: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
fi

$prepare_only && exit 0

export LAMED_BIN="${LAMED_BIN:-$PWD/../target/debug/lamed}"
if [ ! -x "$LAMED_BIN" ]; then
    echo "e2e/run.sh: no lamed binary at $LAMED_BIN (build it, or set LAMED_BIN)" >&2
    exit 1
fi
# Two files at a time: each has its own lamed, site and Chromium, and most
# of a test's time is waiting on pages (143 s against 175 s one at a time).
exec node --test --test-concurrency=2 --test-reporter=tap tests/*.test.mjs
