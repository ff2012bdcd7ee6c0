#!/usr/bin/env bash
# The test venv at target/venv (created once, reused afterwards): moto, the
# AWS emulator the AWS tests run against (started by scripts/moto_server.py,
# at the version it names), and sixpack-client, the
# Python Sixpack client the Sixpack API tests drive, and scipy, which computes
# the revenue test's reference figures (scripts/revenue_reference.py), and
# standardwebhooks, the reference verifier of the webhook tests' receiver
# (scripts/webhook_receiver.py), and statsmodels
# (scripts/multitest_reference.py), and schemathesis and
# openapi-spec-validator, the third-party checks of the OpenAPI document
# (tests/api/openapi.rs). Prints
# the moto_server path; the venv's python is beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LAMED_AWS_VENV:-$PWD/target/venv}"
pip_install() {
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
}
# The moto scripts/moto_server.py (how the tests start it) is written for.
moto=$(sed -n 's/^MOTO_VERSION = "\(.*\)"$/\1/p' scripts/moto_server.py)
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$moto')" 2>/dev/null; then
    echo "aws-test-env: installing moto[server]==$moto into $venv" >&2
    pip_install "moto[server]==$moto"
fi
if ! "$venv/bin/python" -c 'import sixpack.sixpack' 2>/dev/null; then
    echo "aws-test-env: installing sixpack-client into $venv" >&2
    pip_install 'sixpack-client==1.2.0'
fi
if ! "$venv/bin/python" -c 'import scipy' 2>/dev/null; then
    echo "aws-test-env: installing scipy into $venv" >&2
    pip_install 'scipy==1.17.1'
fi
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    echo "aws-test-env: installing standardwebhooks into $venv" >&2
    pip_install 'standardwebhooks==1.1.0'
fi
# statsmodels' multipletests: scripts/multitest_reference.py, the
# reference of the segments' multiple-testing correction.
if ! "$venv/bin/python" -c 'import statsmodels' 2>/dev/null; then
    echo "aws-test-env: installing statsmodels into $venv" >&2
    pip_install 'statsmodels==0.14.5'
fi
# The OpenAPI contract's checks (tests/api/openapi.rs): the fuzzer that
# sends a real server what the document allows and checks every answer
# against it, and the validator of the document itself.
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '4.32.5')" 2>/dev/null; then
    echo "aws-test-env: installing schemathesis into $venv" >&2
    pip_install 'schemathesis==4.32.5'
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-spec-validator') != '0.9.0')" 2>/dev/null; then
    echo "aws-test-env: installing openapi-spec-validator into $venv" >&2
    pip_install 'openapi-spec-validator==0.9.0'
fi
echo "$venv/bin/moto_server"
