#!/usr/bin/env bash
# Builds the Debian package lamed_<version>_amd64.deb with dpkg-deb:
#   /usr/bin/lamed                      the portable binary (glibc 2.28+), stripped
#   /lib/systemd/system/lamed.service   packaging/lamed.service, ExecStart=/usr/bin/lamed
#   /usr/share/man/man1/lamed*.1.gz     the man pages (`lamed man`)
#   /etc/lamed/config.json              packaging/config.json, a conffile
#   DEBIAN/postinst, prerm, postrm      packaging/deb/: a system user `lamed`, the
#                                       data directory, a generated API key; the
#                                       service is neither enabled nor started
#
#   scripts/package-deb.sh               # builds `PROFILE=dist scripts/portable-build.sh`
#                                        # (a release build: slow), then packages it
#   scripts/package-deb.sh path/to/lamed # packages that binary (x86_64 Linux)
#
# Environment: CARGO_TARGET_DIR (default: target): the build, and the package
# in $CARGO_TARGET_DIR/deb/. Prints the package's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target_dir/deb"
step() { echo "package-deb: $*" >&2; }
fail() { echo "package-deb: FAIL: $*" >&2; exit 1; }

if [ $# -ge 1 ]; then
    bin="$1"
else
    PROFILE=dist scripts/portable-build.sh >&2
    bin="$target_dir/portable/lamed"
fi
[ -x "$bin" ] || fail "$bin is not an executable"
readelf -h "$bin" | grep -q 'Machine:.*X86-64' || fail "$bin is not an x86_64 binary"

# The version is the binary's own (`lamed 0.1.0`).
version="$("$bin" --version | sed -n 's/^lamed \([0-9][0-9A-Za-z.+~-]*\)$/\1/p')"
[ -n "$version" ] || fail "cannot read the version from $bin --version"

# Depends: the shared libraries it links, each mapped to its package; an
# unknown one stops the build rather than making a package that does not
# start. glibc: the highest symbol version it imports.
libc_version="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V | tail -n 1 | sed 's/GLIBC_//')"
depends="libc6 (>= $libc_version)"
for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
    libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux-x86-64.so.2) ;;
    libgcc_s.so.1) depends="$depends, libgcc-s1 | libgcc1" ;;
    *) fail "$bin needs $lib: add its Debian package to scripts/package-deb.sh" ;;
    esac
done
depends="$depends, adduser"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"

install -D -m 0755 "$bin" "$root/usr/bin/lamed"
# The dist profile strips already; this also strips a binary of another.
strip --strip-all "$root/usr/bin/lamed"

unit="$root/lib/systemd/system/lamed.service"
install -d -m 0755 "$(dirname "$unit")"
sed 's|^ExecStart=/usr/local/bin/lamed |ExecStart=/usr/bin/lamed |' packaging/lamed.service >"$unit"
chmod 0644 "$unit"
grep -q '^ExecStart=/usr/bin/lamed serve' "$unit" || fail "packaging/lamed.service has no ExecStart=/usr/local/bin/lamed serve"

man="$root/usr/share/man/man1"
install -d -m 0755 "$man"
"$bin" man "$man" >/dev/null
gzip -9n "$man"/*.1
chmod 0644 "$man"/*.1.gz

install -D -m 0644 packaging/config.json "$root/etc/lamed/config.json"

install -d -m 0755 "$root/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
done
echo /etc/lamed/config.json >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<EOF
Package: lamed
Version: $version
Architecture: amd64
Maintainer: ${DEB_MAINTAINER:-Lamed maintainers <lamed@localhost>}
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Description: self-hosted A/B-testing backend for the AlephBet client
 Lamed counts AlephBet's participate and goal events exactly once and
 answers the original Lamed's HTTP paths and JSON, with a dashboard, a
 terminal report and an experiment registry. One binary on an embedded
 durable store (SQLite), or on Redis or DynamoDB.
 .
 The lamed service is installed but neither enabled nor started:
 configure /etc/lamed/config.json, then: systemctl enable --now lamed
EOF

mkdir -p "$out"
deb="$out/lamed_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
step "ok: $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"
