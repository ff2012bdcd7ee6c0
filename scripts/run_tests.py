#!/usr/bin/env python3
"""Runs the test binaries that `cargo test --no-run --message-format=json`
built (its output on stdin): `shared` runs two at a time all but the tests
that measure time, `alone` runs those one by one (scripts/test.sh runs the
browser suite between the two).

Most of the suite's time is spent waiting on moto, Redis and the processes
the tests start, so two binaries at once take little more than one. Each
runs as `cargo test` runs it (in its package's directory) and its output
is printed whole when it ends, with its time. Running the binaries
directly, rather than one `cargo test` per lane, keeps the one feature set
the build resolved: `cargo test -p` over fewer packages may resolve other
features and build again.

Exits non-zero if any binary failed, after running them all.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time

# Started first, the longest (package, target): the other lane takes the
# rest meanwhile.
LONGEST_FIRST = [
    ("lamed-store", "lamed_store"),
    ("lamed", "sixpack"),
    ("lamed", "redis"),
    ("lamed", "deploy"),
    ("lamed", "dynamodb"),
    ("lamed-service", "faults"),
    ("lamed", "load"),
    ("lamed", "faults"),
]
# Tests that measure time (power cuts, connection limits): run alone.
ALONE = [("lamed", "operations"), ("lamed", "connections")]
LANES = 2


def package_name(package_id):
    """The name in a package id: `path+file:///dir/store#lamed-store@0.1.0`,
    or `path+file:///dir/lamed-load#0.1.0` when it is the directory's."""
    location, _, fragment = package_id.rpartition("#")
    if "@" in fragment:
        return fragment.split("@")[0]
    return location.rstrip("/").rsplit("/", 1)[-1]


def test_binaries(lines):
    """(package, target, kind, directory, executable) of each test binary."""
    for line in lines:
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message["profile"]["test"]:
            continue
        target = message["target"]
        yield (
            package_name(message["package_id"]),
            target["name"],
            target["kind"][0],
            os.path.dirname(message["manifest_path"]),
            message["executable"],
        )


def run(binary, printing):
    """Runs one binary; True when it passed."""
    package, name, kind, directory, executable = binary
    started = time.monotonic()
    done = subprocess.run(
        [executable], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    seconds = time.monotonic() - started
    status = "ok" if done.returncode == 0 else f"FAILED ({done.returncode})"
    with printing:
        print(f"== {package} {kind} {name}: {status} in {seconds:.1f} s", flush=True)
        sys.stdout.buffer.write(done.stdout)
        sys.stdout.flush()
    return done.returncode == 0


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("shared", "alone"):
        sys.exit("usage: run_tests.py shared|alone < cargo's JSON messages")
    phase = sys.argv[1]
    binaries = list(test_binaries(sys.stdin))
    if not binaries:
        sys.exit("run_tests.py: no test binaries on stdin")
    key = lambda b: (b[0], b[1])
    order = {k: i for i, k in enumerate(LONGEST_FIRST)}
    alone = [b for b in binaries if key(b) in ALONE]
    shared = sorted(
        (b for b in binaries if key(b) not in ALONE),
        key=lambda b: order.get(key(b), len(order)),
    )
    failed = []
    printing = threading.Lock()
    if phase == "shared":
        run_in_lanes(shared, printing, failed)
    else:
        for binary in alone:
            if not run(binary, printing):
                failed.append(binary)
    if failed:
        names = ", ".join(f"{b[0]} {b[2]} {b[1]}" for b in failed)
        sys.exit(f"run_tests.py: failed: {names}")


def run_in_lanes(binaries, printing, failed):
    """Runs `binaries` in order, LANES at a time; appends the failed."""
    pending = queue.Queue()
    for binary in binaries:
        pending.put(binary)

    def lane():
        while True:
            try:
                binary = pending.get_nowait()
            except queue.Empty:
                return
            if not run(binary, printing):
                failed.append(binary)

    started = time.monotonic()
    lanes = [threading.Thread(target=lane) for _ in range(LANES)]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    print(f"== {len(binaries)} binaries, {LANES} at a time: {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
