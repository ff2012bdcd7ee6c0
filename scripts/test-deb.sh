#!/usr/bin/env bash
# Installs the Debian package on this machine, checks it, and removes it:
#   1. `dpkg -i`: /usr/bin/lamed --version is the package's version, and the
#      binary is stripped;
#   2. `systemd-analyze verify` of the installed unit says nothing (its
#      ExecStart, its user and its man page exist);
#   3. the system user `lamed`, its data directory /var/lib/lamed (0700),
#      /etc/lamed/api_key (0600, root's), /etc/lamed/config.json a conffile,
#      the man pages; the service neither enabled nor started;
#   4. the installed binary serves, as `lamed`, with the installed
#      config.json, on the data directory: one tracked visitor read back
#      (then stopped by its PID);
#   5. `dpkg -r` removes the binary and the unit and keeps the data (the
#      visitor's counts) and config.json; `dpkg -P` removes the
#      configuration and still keeps the data.
# At the end (or on failure) it purges the package and removes the user and
# the data directory it made. Needs root (dpkg), and no lamed package or
# `lamed` user already here.
#
#   scripts/test-deb.sh                                   # builds it first
#                                                         # (scripts/package-deb.sh: slow)
#   scripts/test-deb.sh target/deb/lamed_0.1.0_amd64.deb  # tests that package
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "test-deb: $*"; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "dpkg -i needs root"
if dpkg-query -W -f '${Status}' lamed 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "a lamed package is already on this machine; it is left alone"
fi
getent passwd lamed >/dev/null && fail "a user lamed already exists; it is left alone"
[ -e /var/lib/lamed ] && fail "/var/lib/lamed already exists; it is left alone"

if [ $# -ge 1 ]; then
    deb="$1"
else
    deb="$(scripts/package-deb.sh)"
fi
[ -f "$deb" ] || fail "no package $deb"
version="$(dpkg-deb --field "$deb" Version)"
step "testing $deb (version $version, $(du -h "$deb" | cut -f1))"

pid=""
work="$(mktemp -d)"
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    dpkg --purge lamed >/dev/null 2>&1 || true
    if getent passwd lamed >/dev/null; then deluser --quiet --system lamed >/dev/null 2>&1 || true; fi
    getent group lamed >/dev/null && { delgroup --quiet --system lamed >/dev/null 2>&1 || true; }
    rm -rf /var/lib/lamed "$work"
}
trap cleanup EXIT

# 1. Installed; the version; stripped.
dpkg -i "$deb"
[ "$(/usr/bin/lamed --version)" = "lamed $version" ] || fail "/usr/bin/lamed --version: $(/usr/bin/lamed --version)"
step "/usr/bin/lamed --version: $(/usr/bin/lamed --version)"
if readelf -S /usr/bin/lamed | grep -q '\.symtab\|\.debug_'; then fail "/usr/bin/lamed is not stripped"; fi
step "/usr/bin/lamed is stripped ($(du -h /usr/bin/lamed | cut -f1))"

# 2. The unit verifies with nothing to say (an unknown setting is only a
# warning there); its man page is looked up too.
unit=/lib/systemd/system/lamed.service
said="$(systemd-analyze verify "$unit" 2>&1)" || fail "systemd-analyze verify $unit: $said"
[ -z "$said" ] || fail "systemd-analyze verify $unit warned: $said"
step "systemd-analyze verify $unit: ok"

# 3. What the maintainer scripts made, and what they did not.
uid="$(id -u lamed)"
[ "$uid" -lt 1000 ] || fail "lamed is not a system user (uid $uid)"
[ "$(stat -c '%U %a' /var/lib/lamed)" = "lamed 700" ] || fail "/var/lib/lamed: $(stat -c '%U %a' /var/lib/lamed)"
[ "$(stat -c '%U %a' /etc/lamed/api_key)" = "root 600" ] || fail "/etc/lamed/api_key: $(stat -c '%U %a' /etc/lamed/api_key)"
[ "$(wc -c </etc/lamed/api_key)" -ge 16 ] || fail "/etc/lamed/api_key is too short"
dpkg-query -W -f '${Conffiles}\n' lamed | grep -q '^ /etc/lamed/config.json ' || fail "/etc/lamed/config.json is no conffile"
[ -f /usr/share/man/man1/lamed-serve.1.gz ] || fail "no man page lamed-serve.1.gz"
if find /etc/systemd/system -name lamed.service | grep -q .; then fail "the service was enabled: $(find /etc/systemd/system -name lamed.service)"; fi
step "user lamed (uid $uid), /var/lib/lamed (0700), /etc/lamed/api_key (0600), conffile /etc/lamed/config.json, $(ls /usr/share/man/man1/lamed*.1.gz | wc -l) man pages; not enabled"

# 4. It serves as the service would: as lamed, from /etc/lamed (its
# config.json), on /var/lib/lamed, on a free loopback port.
key=test-deb-key-0123456789
(cd /etc/lamed && exec setpriv --reuid=lamed --regid=lamed --clear-groups -- \
    /usr/bin/lamed serve --listen 127.0.0.1:0 --data-dir /var/lib/lamed --api-key "$key") \
    >"$work/stdout" 2>"$work/stderr" &
pid=$!
base=""
for _ in $(seq 1 100); do
    base="$(sed -n 's/^lamed is listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$work/stdout")"
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || fail "lamed serve exited: $(cat "$work/stderr")"
    sleep 0.1
done
[ -n "$base" ] || fail "no banner: $(cat "$work/stderr")"
if grep -q 'unknown keys' "$work/stderr"; then fail "config.json has unknown keys: $(cat "$work/stderr")"; fi
ua='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'
for event in participate checkout; do
    curl -fsS -A "$ua" "$base/track?namespace=deb&experiment=check&variant=a&event=$event&uuid=u1" >/dev/null
done
counts="$(curl -fsS -H "X-Api-Key: $key" "$base/experiments?namespace=deb")"
kill -TERM "$pid"
wait "$pid" || fail "lamed serve did not stop cleanly: $(cat "$work/stderr")"
pid=""
case "$counts" in
*'"label":"a","successes":1,"trials":1'*) step "served one visitor as user lamed with /etc/lamed/config.json: $counts" ;;
*) fail "unexpected counts: $counts" ;;
esac

# 5. Removed: the data and the configuration stay; purged: the data stays.
dpkg -r lamed
[ ! -e /usr/bin/lamed ] || fail "/usr/bin/lamed is still there after dpkg -r"
[ ! -e "$unit" ] || fail "$unit is still there after dpkg -r"
[ -f /etc/lamed/config.json ] || fail "dpkg -r removed the conffile"
[ -n "$(ls -A /var/lib/lamed)" ] || fail "dpkg -r emptied /var/lib/lamed"
step "dpkg -r: binary and unit removed; /var/lib/lamed kept ($(ls /var/lib/lamed | tr '\n' ' ')), config kept"
dpkg --purge lamed
[ ! -e /etc/lamed ] || fail "dpkg --purge left /etc/lamed: $(ls -A /etc/lamed)"
[ -n "$(ls -A /var/lib/lamed)" ] || fail "dpkg --purge emptied /var/lib/lamed"
step "dpkg --purge: /etc/lamed removed; /var/lib/lamed kept"
step "ok"
