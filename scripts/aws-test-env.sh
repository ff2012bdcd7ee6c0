#!/usr/bin/env bash
# The AWS emulator the deploy tests run against: moto_server in a venv at
# target/venv (created once, reused afterwards). Prints the moto_server path.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LAMED_AWS_VENV:-$PWD/target/venv}"
if [ ! -x "$venv/bin/moto_server" ]; then
    echo "aws-test-env: installing moto[server] into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' >&2
fi
echo "$venv/bin/moto_server"
