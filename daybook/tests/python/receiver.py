"""A webhook receiver for daybook's notification tests: verifies every delivery with the
official `standardwebhooks` package (PyPI) — not daybook's own code — and appends what it
accepted to a JSON-lines ledger.

    receiver.py --secret whsec_… --ledger out.jsonl [--port N] [--mode ok|500|410|hang]

Prints {"port": N} once listening. Modes: `ok` answers 204 to a verified delivery (400 to
one whose signature fails); `500` answers 500 to everything; `410` answers 410 Gone; `hang`
reads the request and never answers; `404` answers 404 Not Found; `redirect` answers 302 to --location.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

parser = argparse.ArgumentParser()
parser.add_argument("--secret", required=True)
parser.add_argument("--ledger", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--mode", default="ok")
parser.add_argument("--location", default="")
args = parser.parse_args()

webhook = Webhook(args.secret)
lock = threading.Lock()
ledger = open(args.ledger, "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if args.mode == "hang":
            time.sleep(3600)
            return
        if args.mode == "redirect":
            with lock:
                ledger.write(json.dumps({"redirected": True}) + "\n")
            self.send_response(302)
            self.send_header("location", args.location)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if args.mode in ("500", "410", "404"):
            return self.answer(int(args.mode))
        headers = {k: v for k, v in self.headers.items()}
        try:
            payload = webhook.verify(body, headers)
        except WebhookVerificationError as e:
            with lock:
                ledger.write(json.dumps({"bad_signature": str(e)}) + "\n")
            return self.answer(400)
        data = payload["data"]
        line = {
            "id": headers.get("webhook-id"),
            "type": payload["type"],
            "cid": data.get("cid"),
            "event_id": data.get("event_id"),
            "received_at": data.get("received_at"),
            "links": payload.get("links"),
            "arrived_ms": int(time.time() * 1000),
        }
        with lock:
            ledger.write(json.dumps(line) + "\n")
        self.answer(204)


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
