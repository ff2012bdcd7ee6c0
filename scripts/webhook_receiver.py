"""A webhook endpoint for lamed's alert tests: verifies every delivery with
the reference Standard Webhooks library (PyPI `standardwebhooks`, not
lamed's code) and answers a planned status per request.

    python webhook_receiver.py SECRET [STATUS,STATUS,...]

SECRET is the endpoint's `whsec_...` secret, or `-` for an unsigned
endpoint (Slack format). The statuses are answered in order, then 200 for
every later request; `410` answers Gone; `429:2` answers 429 with
`Retry-After: 2`. Prints `listening PORT`, then one JSON line per request:
its headers' id and timestamp, whether the signature verified, the status
answered and the body.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

SECRET = sys.argv[1]
PLAN = [s for s in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if s]
WEBHOOK = None if SECRET == "-" else Webhook(SECRET)
# Requests are handled on threads of their own: one line at a time, whole.
PRINTING = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        verified = None
        error = None
        if WEBHOOK is not None:
            try:
                WEBHOOK.verify(body, dict(self.headers.items()))
                verified = True
            except Exception as err:  # the verifier's own refusal, reported
                verified = False
                error = str(err)
        planned = PLAN.pop(0) if PLAN else "200"
        status, _, retry_after = planned.partition(":")
        if verified is False:
            status = "400"
        line = json.dumps(
            {
                "id": self.headers.get("webhook-id"),
                "timestamp": self.headers.get("webhook-timestamp"),
                "verified": verified,
                "error": error,
                "status": int(status),
                "content_type": self.headers.get("content-type"),
                "body": body.decode("utf-8", "replace"),
            }
        )
        with PRINTING:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        self.send_response(int(status))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
