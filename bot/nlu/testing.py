"""A fake Rasa server for tests: real HTTP on loopback, with the failures a real one can show.

    with FakeRasaServer(mode="slow") as fake:
        client = NluClient(fake.url, token=fake.token, timeout_s=0.2)

Modes: ok, slow (answers after `delay_s`), error (HTTP 500), garbage (200 with a non-JSON body),
wrong_shape (200 with JSON that is not a parse result), unauthorized (401), reset (closes the connection).
The mode can be changed while it runs; `requests` counts the parse requests it received.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def canned_parse(text: str, intent: str = "greeting", confidence: float = 0.93) -> dict[str, Any]:
    return {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": intent, "confidence": confidence}, {"name": "thanks", "confidence": 0.05}],
        "entities": [],
    }


class FakeRasaServer:
    def __init__(self, mode: str = "ok", token: str = "test-token", delay_s: float = 5.0) -> None:
        self.mode = mode
        self.token = token
        self.delay_s = delay_s
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if urlparse(self.path).path == "/status":
                    self._send(200, json.dumps({"model_file": "fake.tar.gz"}).encode())
                else:
                    self._send(200, b"Hello from the fake Rasa", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                with fake._lock:
                    fake.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                query = parse_qs(urlparse(self.path).query)
                mode = fake.mode
                if mode == "slow":
                    fake._stop.wait(fake.delay_s)
                    mode = "ok"
                if mode == "reset":
                    linger_now = struct.pack("ii", 1, 0)  # close with RST instead of FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_now)
                    self.connection.close()
                    return
                if mode == "unauthorized" or query.get("token") != [fake.token]:
                    self._send(401, json.dumps({"message": "User is not authenticated."}).encode())
                elif mode == "error":
                    self._send(500, b'{"message": "internal error"}')
                elif mode == "garbage":
                    self._send(200, b"<html>\x00\xff not json", "text/html")
                elif mode == "wrong_shape":
                    self._send(200, json.dumps({"intent": "greeting", "entities": "none"}).encode())
                else:
                    self._send(200, json.dumps(canned_parse(body.get("text", ""))).encode())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeRasaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
