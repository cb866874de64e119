"""A Slack-compatible webhook receiver on loopback, for the alert tests."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook on 127.0.0.1 that queues each POSTed JSON body before it answers ``status``;
    with ``hang`` set it does not answer until the test ends (a webhook that never responds)."""

    def __init__(self, status: int = 200, hang: bool = False) -> None:
        self.bodies: queue.Queue[dict] = queue.Queue()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                receiver.bodies.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if hang:
                    receiver.release.wait(timeout=30)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
