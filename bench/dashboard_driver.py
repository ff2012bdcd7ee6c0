"""The dashboard's requests, for bench/dashboard.sh: fill a namespace, then
load the dashboard as a browser does (its list requests, then every card's
report over 6 keep-alive connections, a browser's limit per host).
Standard library only.

  python3 bench/dashboard_driver.py fill  PORT KEY NAMESPACE EXPERIMENTS
  python3 bench/dashboard_driver.py load  PORT KEY NAMESPACE ROUNDS   # JSON: seconds per load
  python3 bench/dashboard_driver.py loop  PORT KEY NAMESPACE STOP_FILE  # loads until STOP_FILE exists; prints loads
"""
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# A browser opens at most 6 connections to one host over HTTP/1.1.
CONNECTIONS = 6
VARIANTS = ["a", "b", "c"]
GOALS = ["signup", "buy"]


class Client:
    """One keep-alive connection that sends the API key."""

    def __init__(self, port, key):
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, ok=(200,)):
        headers = {"X-Api-Key": self.key, "User-Agent": USER_AGENT}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status not in ok:
            sys.exit(f"{method} {path}: {response.status} {data[:200]!r}")
        return response.status, data


def names(experiments):
    return [f"card {i:03}" for i in range(experiments)]


def fill(port, key, namespace, experiments):
    """Registers each experiment (3 variants, 2 goals) and counts a few
    hundred visitors per variant, some converting on each goal."""
    client = Client(port, key)
    ns = urllib.parse.quote(namespace)
    batch = []

    def flush():
        if batch:
            client.request("POST", "/track", batch)
            batch.clear()

    for e, name in enumerate(names(experiments)):
        definition = {"variants": VARIANTS, "goals": GOALS, "description": "bench"}
        path = f"/api/experiments/{urllib.parse.quote(name)}?namespace={ns}"
        client.request("PUT", path, definition, ok=(200, 201))
        for v, variant in enumerate(VARIANTS):
            for visitor in range(100 + 10 * v + e % 7):
                uuid = f"{e}-{variant}-{visitor}"
                events = ["participate"]
                if visitor % 10 < 1 + v:
                    events.append("signup")
                if visitor % 25 == 0:
                    events.append("buy")
                for event in events:
                    batch.append({"namespace": namespace, "experiment": name,
                                  "variant": variant, "event": event, "uuid": uuid})
                if len(batch) >= 900:
                    flush()
    flush()


def load_once(clients, namespace):
    """One dashboard load; returns its wall time in seconds."""
    ns = urllib.parse.quote(namespace)
    started = time.perf_counter()
    first = clients[0]
    first.request("GET", "/api/lifecycle")
    _, counted = first.request("GET", f"/experiments?namespace={ns}", ok=(200, 404))
    _, records = clients[1].request("GET", f"/api/experiments?namespace={ns}&status=all")
    clients[2].request("GET", f"/api/ignored?namespace={ns}")
    shown = sorted({r["name"] for r in json.loads(records)} |
                   {e["experiment"] for e in json.loads(counted)[1:]})
    paths = queue.SimpleQueue()
    for name in shown:
        paths.put(f"/api/experiments/{urllib.parse.quote(name)}/report?namespace={ns}")

    def work(client):
        while True:
            try:
                path = paths.get_nowait()
            except queue.Empty:
                return
            client.request("GET", path, ok=(200, 404))

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def main():
    mode, port, key, namespace, arg = sys.argv[1:6]
    port = int(port)
    if mode == "fill":
        fill(port, key, namespace, int(arg))
        return
    clients = [Client(port, key) for _ in range(CONNECTIONS)]
    if mode == "load":
        print(json.dumps([load_once(clients, namespace) for _ in range(int(arg))]))
    elif mode == "loop":
        loads = 0
        while not os.path.exists(arg):
            load_once(clients, namespace)
            loads += 1
        print(loads)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
