"""Drive the original Lamed (PyPI lamed==0.4.3) against a Redis, for the
side-by-side comparison in compare.sh. Never committed with a venv: see
BENCHMARKS.md for the setup.

  python lamed_driver.py track  --events N --processes P   # real lamed.track()
  python lamed_driver.py layout --events N                 # Lamed's dedupe keys only

Run from a directory holding config.json ({"redis": {"host", "port"}}) and
`vendor` -> site-packages/lamed/vendor, as Lamed's Lambda zip is laid out.
Prints one JSON object.
"""
import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
import uuid as uuidlib

sys.path.insert(0, "./vendor")


def work(args):
    index, count, namespace = args
    # Lamed logs three lines per event; keep them out of the measurement's
    # output but not out of its cost (the handler still formats them).
    logging.disable(logging.CRITICAL)
    from lamed import lamed

    uuids = [str(uuidlib.uuid4()) for _ in range(count)]
    events = [
        {
            "namespace": namespace,
            "experiment": "load experiment %d" % (i % 4),
            "variant": "variant %d" % (i % 3),
            "event": "participate" if i % 5 < 3 else "goal %d" % (i % 2),
            "uuid": u,
        }
        for i, u in enumerate(uuids)
    ]
    started = time.perf_counter()
    for event in events:
        lamed.track(event, None)
    return count, time.perf_counter() - started


def track(args):
    per = args.events // args.processes
    namespace = "lamed-bench-%d" % os.getpid()
    started = time.perf_counter()
    with multiprocessing.Pool(args.processes) as pool:
        results = pool.map(work, [(i, per, namespace) for i in range(args.processes)])
    wall = time.perf_counter() - started
    total = sum(c for c, _ in results)
    # Throughput over the slowest worker's loop (uuid generation and
    # imports excluded), as BASELINES.md measures it.
    slowest = max(t for _, t in results)
    print(json.dumps({
        "mode": "track", "events": total, "processes": args.processes,
        "seconds": slowest, "events_per_second": total / slowest,
        "wall_seconds": wall,
    }))


def layout(args):
    import redis

    with open("config.json") as f:
        config = json.load(f)["redis"]
    r = redis.Redis(**config)
    pipe = r.pipeline(transaction=False)
    key = "bench:counters:e:participate:v"
    for i in range(args.events):
        flag = hashlib.sha1(("%s %s" % (key, uuidlib.uuid4())).encode()).hexdigest()
        pipe.setex(flag, 86400, "1")
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    print(json.dumps({"mode": "layout", "events": args.events}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["track", "layout"])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    {"track": track, "layout": layout}[args.mode](args)


if __name__ == "__main__":
    main()
