"""Drives lamed's Sixpack API with the real Python client (PyPI
sixpack-client) and prints, as JSON, the counts the server must now hold.

Usage: python scenario.py URL CLIENTS ASSIGNMENT_CLIENTS

Every alternative is checked against Sixpack's own formula, computed here
with hashlib (models.py `_get_hash`), independently of lamed's Rust code;
the traffic fraction against lamed's documented formula. Any wrong answer
is listed on stderr and the exit code is 1.
"""

import hashlib
import json
import sys
import uuid
from collections import Counter

from sixpack.sixpack import Session

URL = sys.argv[1]
CLIENTS = int(sys.argv[2])
ASSIGNMENT_CLIENTS = int(sys.argv[3])
# The client's default timeout is 0.5 s; a debug build on a busy machine
# may need more, and a timeout would silently answer the control.
OPTIONS = {"host": URL, "timeout": 30}
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

counts = Counter()  # (experiment, event, alternative) -> count
problems = []


def sixpack_choice(experiment, client_id, alternatives):
    """Sixpack's assignment: int(sha1("exp.client")[:7], 16) % len."""
    digest = hashlib.sha1(f"{experiment}.{client_id}".encode()).hexdigest()
    return alternatives[int(digest[:7], 16) % len(alternatives)]


def in_traffic(experiment, client_id, fraction):
    """lamed's deterministic traffic fraction (README, "Sixpack API")."""
    digest = hashlib.sha1(f"traffic.{experiment}.{client_id}".encode()).hexdigest()
    return int(digest[:7], 16) / 2**28 < fraction


def expect(condition, what):
    if not condition:
        problems.append(what)


def participate(session, experiment, alternatives, expected, **options):
    answer = session.participate(experiment, alternatives, **options)
    expect(
        answer.get("status") == "ok" and answer["alternative"]["name"] == expected,
        f"participate {experiment} {session.client_id} {options}: {answer}, expected {expected}",
    )
    return answer


def convert(session, experiment, kpi=None, ok=True):
    answer = session.convert(experiment, kpi)
    if ok:
        expect(answer.get("status") == "ok", f"convert {experiment} {kpi} {session.client_id}: {answer}")
    else:
        expect(answer.get("status") == "failed", f"convert {experiment} {kpi} {session.client_id} should fail: {answer}")
    return answer


# Sixpack's own assignment for many clients.
letters = ["a", "b", "c", "d", "e"]
for _ in range(ASSIGNMENT_CLIENTS):
    client = Session(str(uuid.uuid4()), OPTIONS)
    chosen = sixpack_choice("assignment", client.client_id, letters)
    participate(client, "assignment", letters, chosen)
    counts[("assignment", "participate", chosen)] += 1

colors = ["red", "blue", "green"]
prices = ["low", "high"]
layouts = ["grid", "list"]
headlines = ["plain", "bold"]
for i in range(CLIENTS):
    client_id = str(uuid.uuid4())
    # Some clients forward their visitor's browser, as CLIENTSPEC asks.
    params = {"user_agent": CHROME, "ip_address": "198.51.100.7"} if i % 2 else None
    client = Session(client_id, OPTIONS, params)

    # Participation, repeated: counted once, same alternative.
    color = sixpack_choice("button-color", client_id, colors)
    participate(client, "button-color", colors, color)
    counts[("button-color", "participate", color)] += 1
    if i % 3 == 0:
        participate(client, "button-color", colors, color)
    # KPIs, repeated conversions count once per client and KPI.
    if i % 3 == 0:
        convert(client, "button-color", "checkout")
        convert(client, "button-color", "checkout")
        counts[("button-color", "checkout", color)] += 1
    if i % 5 == 0:
        convert(client, "button-color")
        counts[("button-color", "(no kpi)", color)] += 1
    if i % 7 == 0:
        convert(client, "button-color", "signup")
        counts[("button-color", "signup", color)] += 1

    # traffic_fraction: excluded clients get the control, are not counted
    # and cannot convert.
    if in_traffic("pricing", client_id, 0.3):
        price = sixpack_choice("pricing", client_id, prices)
        participate(client, "pricing", prices, price, traffic_fraction=0.3)
        counts[("pricing", "participate", price)] += 1
        convert(client, "pricing", "buy")
        counts[("pricing", "buy", price)] += 1
    else:
        participate(client, "pricing", prices, "low", traffic_fraction=0.3)
        convert(client, "pricing", "buy", ok=False)

    # force: answered, not recorded (the Python client has no record_force).
    layout = sixpack_choice("layout", client_id, layouts)
    if i % 10 == 0:
        participate(client, "layout", layouts, "list", force="list")
        convert(client, "layout", ok=False)
    else:
        participate(client, "layout", layouts, layout)
        counts[("layout", "participate", layout)] += 1

    # prefetch: answered, not recorded until a real participation.
    headline = sixpack_choice("headline", client_id, headlines)
    participate(client, "headline", headlines, headline, prefetch=True)
    if i % 4 == 0:
        convert(client, "headline", "read", ok=False)
    else:
        participate(client, "headline", headlines, headline)
        counts[("headline", "participate", headline)] += 1
        convert(client, "headline", "read")
        counts[("headline", "read", headline)] += 1

# Bots: the control, nothing recorded; their conversions are "excluded".
for _ in range(CLIENTS // 20):
    bot = Session(str(uuid.uuid4()), OPTIONS, {"user_agent": GOOGLEBOT})
    participate(bot, "button-color", colors, "red")
    answer = bot.convert("button-color", "checkout")
    expect(answer == {"status": "ok", "excluded": "true"}, f"bot convert: {answer}")

# Errors the client sees as failures (and so answers the control).
stranger = Session(str(uuid.uuid4()), OPTIONS)
convert(stranger, "button-color", "checkout", ok=False)
convert(stranger, "no-such-experiment", ok=False)
changed = stranger.participate("button-color", ["red", "blue", "purple"])
expect(changed.get("status") == "failed" and changed["alternative"]["name"] == "red", f"changed: {changed}")

if problems:
    print(f"{len(problems)} wrong answers, the first ones:", file=sys.stderr)
    for problem in problems[:20]:
        print(problem, file=sys.stderr)
    sys.exit(1)
json.dump([[e, ev, v, n] for (e, ev, v), n in sorted(counts.items())], sys.stdout)
