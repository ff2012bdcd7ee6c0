#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine: installs what the tests
# need when it is missing (redis-server, a Python venv with moto, LazyFS, Chromium,
# node packages), then runs
# the format and lint gates, the Rust tests and the browser end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: $* missing and not root; install it first" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
# The HTTPS e2e test makes its certificates with openssl.
command -v openssl >/dev/null || apt_install openssl
echo "== moto_server for the AWS tests (a venv in target/venv)"
bash scripts/aws-test-env.sh >/dev/null
# The power-cut test (tests/operations/power_cut.rs) mounts the data
# directory through LazyFS, built from the source kept beside the repository
# (../shared/tools/lazyfs); without it, that test says it is skipped.
# (or this machine's copy, for a clone elsewhere).
lazyfs_build=${LAMED_LAZYFS_BUILD:-../shared/tools/lazyfs/build.sh}
[ -f "$lazyfs_build" ] || lazyfs_build=/work/shared/tools/lazyfs/build.sh
if [ -f "$lazyfs_build" ]; then
    echo "== LazyFS for the power-cut test (target/lazyfs)"
    LAMED_LAZYFS=$(bash "$lazyfs_build" target/lazyfs)
    export LAMED_LAZYFS
else
    echo "== no $lazyfs_build: the power-cut test will be skipped"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
# One clippy run over the whole workspace with every feature (the AWS
# commands, the Redis store, the conformance suite), then a cargo check of
# the README's default build and of the build without Redis: each crate is
# linted once, and the other feature sets only have to keep compiling.
echo "== cargo clippy (workspace, all features)"
cargo clippy --workspace --all-features --all-targets -- -D warnings
echo "== cargo check with the default features (what the README's run command builds)"
cargo check --workspace
echo "== cargo check without default features (redis): it must keep building"
cargo check --workspace --no-default-features
all=(--workspace --all-features)
echo "== cargo test"
cargo build "${all[@]}" --bins
cargo test "${all[@]}"
if [ -f e2e/run.sh ]; then
    echo "== end-to-end: AlephBet in Chromium"
    LAMED_BIN="$PWD/target/debug/lamed" bash e2e/run.sh
fi
