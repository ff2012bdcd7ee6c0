#!/usr/bin/env bash
# Builds a portable Linux x86_64 `lamed` (release) that runs on distributions
# as old as glibc 2.28 (Debian 10, RHEL 8, Ubuntu 18.10), then checks it:
#   1. the highest GLIBC_x.y symbol version it needs (objdump -T), failing
#      when it is above the baseline;
#   2. it runs: --version, then a real `lamed serve` on a free loopback port
#      that counts one tracked event and answers it back, stopped by its PID.
#
# How: `cargo zigbuild` (crate cargo-zigbuild, installed with `cargo install`)
# links against glibc 2.28's symbols with zig as the C compiler and linker
# (zig from PyPI's `ziglang`, in a venv under the target directory). Both are
# installed on first use.
#
#   scripts/portable-build.sh            # -> target/portable/lamed
#   FEATURES=aws scripts/portable-build.sh   # with the AWS commands, e.g. as
#                                            # a Lambda bootstrap
# Environment: CARGO_TARGET_DIR (default: target), GLIBC_BASELINE (default
# 2.28), FEATURES (cargo features, comma-separated; default: the default ones),
# PROFILE (cargo profile, default release; `dist` is release stripped, what
# scripts/package-deb.sh packages).
# The release build takes about 13 minutes on 2 cores; it runs under nice.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline="${GLIBC_BASELINE:-2.28}"
profile="${PROFILE:-release}"
triple=x86_64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target_dir/zig-venv"
out="$target_dir/portable"

step() { echo "portable-build: $*" >&2; }

# Tools: cargo-zigbuild from crates.io, zig from PyPI.
if ! command -v cargo-zigbuild >/dev/null; then
    step "installing cargo-zigbuild (cargo install)"
    nice -n 19 cargo install --locked cargo-zigbuild
fi
if ! "$venv/bin/python3" -c 'import ziglang' 2>/dev/null; then
    step "installing zig (PyPI ziglang) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet ziglang
fi
# cargo-zigbuild runs `python3 -m ziglang` when no `zig` is on PATH: the venv's.
export PATH="$venv/bin:$PATH"
rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple"

features=()
[ -n "${FEATURES:-}" ] && features=(--features "$FEATURES")
step "building lamed for $triple with glibc $baseline symbols ($profile; slow)"
nice -n 19 cargo zigbuild --profile "$profile" --bin lamed --target "$triple.$baseline" "${features[@]}"
mkdir -p "$out"
cp "$target_dir/$triple/$profile/lamed" "$out/lamed"
bin="$out/lamed"

# 1. The glibc it needs: the highest versioned symbol it imports.
step "checking glibc symbol versions: objdump -T $bin"
needed="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V | tail -n 1)"
echo "highest glibc symbol version needed: $needed (baseline GLIBC_$baseline)"
if [ "$(printf '%s\n%s\n' "GLIBC_$baseline" "$needed" | sort -V | tail -n 1)" != "GLIBC_$baseline" ]; then
    echo "portable-build: FAIL: $bin needs $needed, above the baseline GLIBC_$baseline" >&2
    exit 1
fi

# 2. It runs: --version, then a real server counting one visitor's events.
"$bin" --version
work="$(mktemp -d)"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
key=portable-check-key-0123456789
(cd "$work" && exec "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --api-key "$key") \
    >"$work/stdout" 2>"$work/stderr" &
pid=$!
base=""
for _ in $(seq 1 100); do
    base="$(sed -n 's/^lamed is listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$work/stdout")"
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { echo "portable-build: FAIL: no banner" >&2; cat "$work/stderr" >&2; exit 1; }
# A browser's user agent: the bot filter ignores curl's.
ua='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
for event in participate checkout; do
    curl -fsS -A "$ua" "$base/track?namespace=portable&experiment=check&variant=a&event=$event&uuid=u1" >/dev/null
done
counts="$(curl -fsS -H "X-Api-Key: $key" "$base/experiments?namespace=portable")"
kill -TERM "$pid"
wait "$pid"
pid=""
case "$counts" in
*'"label":"a","successes":1,"trials":1'* | *'"label": "a", "successes": 1, "trials": 1'*)
    echo "served one tracked visitor (participate, checkout) and read it back: $counts" ;;
*)
    echo "portable-build: FAIL: unexpected counts: $counts" >&2
    exit 1 ;;
esac
step "ok: $bin ($(du -h "$bin" | cut -f1)), needs $needed"
