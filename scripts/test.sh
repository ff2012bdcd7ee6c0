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
# The tests' tools are made beside the lint and the build (they need no
# Rust): moto_server's venv; LazyFS for the power-cut test
# (tests/operations/power_cut.rs), built from the source kept beside the
# repository (../shared/tools/lazyfs, or this machine's copy for a clone
# elsewhere; without it, that test says it is skipped); then Chromium and
# the browser tests' node packages. LazyFS's build and Chromium may both
# need apt, which takes one caller at a time: one job makes them in turn.
# Each step's line says when it began, so a log shows where the time went.
step() { echo "== [${SECONDS} s] $*"; }
mkdir -p target/setup
step "beside the build: moto_server's venv (target/venv), LazyFS (target/lazyfs), Chromium and e2e's packages"
bash scripts/aws-test-env.sh >target/setup/venv.log 2>&1 &
venv_pid=$!
lazyfs_build=${LAMED_LAZYFS_BUILD:-../shared/tools/lazyfs/build.sh}
[ -f "$lazyfs_build" ] || lazyfs_build=/work/shared/tools/lazyfs/build.sh
[ -f "$lazyfs_build" ] || echo "== no $lazyfs_build: the power-cut test will be skipped"
# Writes the name of the step that failed to target/setup/failed.
make_tools() {
    if [ -f "$lazyfs_build" ]; then
        bash "$lazyfs_build" target/lazyfs >target/setup/lazyfs.path 2>target/setup/lazyfs.log ||
            { echo "LazyFS's build:target/setup/lazyfs.log" >target/setup/failed; return 1; }
    fi
    bash e2e/run.sh --prepare >target/setup/e2e.log 2>&1 ||
        { echo "the browser tests' setup (e2e/run.sh --prepare):target/setup/e2e.log" >target/setup/failed; return 1; }
}
rm -f target/setup/failed
make_tools &
tools_pid=$!
# A fresh clone (CI) compiles everything once: incremental compilation's
# caches would only cost time to write.
[ "${CI:-}" = true ] && export CARGO_INCREMENTAL=0
# A setup step's log, when it failed.
setup_failed() {
    echo "test.sh: $1 failed:" >&2
    cat "$2" >&2
    exit 1
}

step "cargo fmt --check"
cargo fmt --all -- --check
# Clippy lints while the tests compile: clippy-driver, as the workspace's
# compiler, is rustc with clippy's lints (CLIPPY_ARGS is how cargo-clippy
# hands it `-D warnings`). A separate `cargo clippy` compiled every crate a
# second time, only to check it: 3.5 minutes of a fresh clone's build.
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
all=(--workspace --all-features)
# The test build, linted, with every feature (the AWS commands, the Redis
# store, the conformance suite), also leaves target/debug/lamed, which e2e/
# runs; its messages name the test binaries scripts/run_tests.py runs.
step "cargo test: build, linted by clippy (workspace, all features)"
binaries=target/test-binaries.json
cargo test "${all[@]}" --no-run --message-format=json-render-diagnostics >"$binaries"
# The other feature sets only have to keep compiling (and stay lint-free):
# the README's default build and the build without Redis.
step "cargo clippy with the default features (what the README's run command builds)"
cargo check --workspace
step "cargo clippy without default features (redis): it must keep building"
cargo check --workspace --no-default-features
wait "$venv_pid" || setup_failed "the venv (scripts/aws-test-env.sh)" target/setup/venv.log
if ! wait "$tools_pid"; then
    failure=$(cat target/setup/failed)
    setup_failed "${failure%%:*}" "${failure#*:}"
fi
if [ -f "$lazyfs_build" ]; then
    LAMED_LAZYFS=$(cat target/setup/lazyfs.path)
    export LAMED_LAZYFS
fi

# The Rust test binaries run two at a time, then the browser suite, then
# alone those that measure time (scripts/run_tests.py says which and why);
# the doc tests last. (The browser suite beside the test binaries saved
# ~100 s, but its load made Redis miss the tests' deadlines.) Every part
# runs even when one fails; the exit status says if any did.
step "cargo test: run"
failed=0
python3 scripts/run_tests.py shared <"$binaries" || failed=1
step "end-to-end: AlephBet in Chromium"
LAMED_BIN="$PWD/target/debug/lamed" bash e2e/run.sh || failed=1
python3 scripts/run_tests.py alone <"$binaries" || failed=1
step "doc tests"
cargo test "${all[@]}" --doc || failed=1
step "done"
exit "$failed"
