"""Stand-in board API: GET /health answers $FAKE_HEALTH_STATUS (default 200) with $FAKE_HEALTH_BODY."""

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fake_service import record


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = int(os.environ.get("FAKE_HEALTH_STATUS", "200")) if self.path == "/health" else 404
        body = os.environ.get("FAKE_HEALTH_BODY", json.dumps({"status": "ok"})).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print("board-api:", format % args, flush=True)


server = ThreadingHTTPServer((os.environ["WF_BOARD_HOST"], int(os.environ["WF_BOARD_PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
record("board-api")
server.serve_forever()
print("board-api got SIGTERM, exiting", flush=True)
