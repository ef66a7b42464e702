"""A Puskesos webhook receiver (standard library only): python webhook_receiver.py SECRET PORT OUT.jsonl

Checks the signature (HMAC-SHA256 over "<t>." + body, at most 5 minutes old), drops a repeat (same
CloudEvents id), appends each new event to OUT.jsonl, and answers 204. Put it behind HTTPS.
"""
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET, PORT, OUT = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]
seen: set[str] = set()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fields = dict(p.split("=", 1) for p in self.headers.get("Puskesos-Signature", "t=0,v1=").split(","))
        expected = hmac.new(SECRET, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if abs(time.time() - int(fields["t"])) > 300 or not hmac.compare_digest(expected, fields.get("v1", "")):
            self.send_response(401)
        else:
            event = json.loads(body)
            if event["id"] not in seen:  # at least once: a repeat is recognised by its id
                seen.add(event["id"])
                with open(OUT, "a") as out:
                    out.write(json.dumps(event) + "\n")
            self.send_response(204)
        self.end_headers()


HTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
