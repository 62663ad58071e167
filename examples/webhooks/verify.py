#!/usr/bin/env python3
"""A webhook receiver that verifies ussd-gateway's deliveries (Standard Webhooks).

    WEBHOOK_SECRET=whsec_... python3 verify.py [PORT]

Prints `listening on PORT` (0 picks a free port), then one JSON line per delivery it
accepts. A delivery is accepted when one of the `v1,` signatures in `webhook-signature`
is the base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed by the
secret's bytes (base64 after `whsec_`), and its timestamp is within five minutes.
Anything else gets 401. A `webhook-id` seen before is answered 200 and not handled
again: the gateway retries until it hears 2xx, so a receiver may see one twice.
Standard library only.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_SECS = 300


def key(secret):
    return base64.b64decode(secret.removeprefix("whsec_"))


def verified(secret, headers, body):
    """Whether the delivery is signed with `secret` and recent."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECS:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key(secret), signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in (s.partition(",") for s in signatures.split())
    )


class Receiver(BaseHTTPRequestHandler):
    secret = os.environ.get("WEBHOOK_SECRET", "")
    seen = set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if not verified(self.secret, self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        msg_id = self.headers["webhook-id"]
        if msg_id not in self.seen:
            self.seen.add(msg_id)
            event = json.loads(body)
            print(json.dumps({"id": msg_id, "type": event["type"], "sequence": event["sequence"]}), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = HTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
