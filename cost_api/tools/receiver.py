"""`cost-api alerts receive`: a local webhook receiver for trying the alerts. It prints every event POSTed
to it (a line, then the JSON body) and checks its `X-Cost-Signature` with the secret (answering 401 to a
bad one, 204 otherwise). docs/alerts.md, "Trying it locally".
"""

from __future__ import annotations

import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cost_api.watch.webhook import SIGNATURE_HEADER, verify


def _handler(secret: str | None, out: Any) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signed = None if secret is None else verify(secret, self.headers.get(SIGNATURE_HEADER), body)
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            mark = {None: "signature not checked", True: "signature ok", False: "BAD SIGNATURE"}[signed]
            print(f"[{mark}] {event.get('event')} {event.get('id')}: {event.get('text')}", file=out, flush=True)
            print(json.dumps(event, indent=2, ensure_ascii=False), file=out, flush=True)
            self.send_response(401 if signed is False else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Receiver


def receive(host: str, port: int, secret: str | None, out: Any = sys.stdout) -> None:
    """Print every webhook event POSTed to http://host:port/ (checking signatures with `secret`) until
    interrupted; OSError when it cannot listen there."""
    server = ThreadingHTTPServer((host, port), _handler(secret, out))
    print(f"listening on http://{host}:{server.server_port}/ (Ctrl-C to stop)", file=out, flush=True)
    with contextlib.suppress(KeyboardInterrupt), server:
        server.serve_forever()
