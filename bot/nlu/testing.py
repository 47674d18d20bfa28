"""A fake Rasa server for tests: real HTTP on loopback, with the failures a real one can show.

    with FakeRasaServer(mode="slow") as fake:
        client = NluClient(fake.url, token=fake.token, timeout_s=0.2)

Modes: ok, slow (answers after `delay_s`), error (HTTP 500), garbage (200 with a non-JSON body),
wrong_shape (200 with JSON that is not a parse result), unauthorized (401), reset (closes the connection),
loading (409 "No agent loaded" to parses and status, as Rasa without a model). The mode can be changed while it
runs; `requests` counts the parse requests it received. `PUT /model` loads a model as Rasa does: after
`load_delay_s`, `model_file` becomes the file's name (400 when `refuse_loads` is set), and every other request
meanwhile waits for the load to end; `loads` lists the files, `answered_by` the model of each parse answered.
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
        self.model_file = "fake.tar.gz"
        self.load_delay_s = 0.0
        self.refuse_loads = False
        self.loads: list[str] = []
        self.answered_by: list[str] = []
        self._loaded = threading.Event()  # clear while a PUT /model loads: Rasa's event loop answers nothing then
        self._loaded.set()
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
                fake._loaded.wait(60)
                if urlparse(self.path).path == "/status" and fake.mode == "loading":
                    self._send(409, json.dumps({"message": "No agent loaded."}).encode())
                elif urlparse(self.path).path == "/status":
                    self._send(200, json.dumps({"model_file": fake.model_file}).encode())
                else:
                    self._send(200, b"Hello from the fake Rasa", "text/plain")

            def do_PUT(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if parse_qs(urlparse(self.path).query).get("token") != [fake.token]:
                    self._send(401, json.dumps({"message": "User is not authenticated."}).encode())
                    return
                model_file = str(body.get("model_file", ""))
                if not fake.refuse_loads:
                    fake._loaded.clear()
                with fake._lock:
                    fake.loads.append(model_file)
                if fake.refuse_loads:
                    message = f"Agent with name '{model_file}' could not be loaded."
                    self._send(400, json.dumps({"message": message}).encode())
                    return
                fake._stop.wait(fake.load_delay_s)
                fake.model_file = model_file.rsplit("/", 1)[-1]
                fake._loaded.set()
                self.send_response(204)
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                with fake._lock:
                    fake.requests += 1
                fake._loaded.wait(60)
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
                elif mode == "loading":
                    self._send(409, json.dumps({"message": "No agent loaded."}).encode())
                elif mode == "error":
                    self._send(500, b'{"message": "internal error"}')
                elif mode == "garbage":
                    self._send(200, b"<html>\x00\xff not json", "text/html")
                elif mode == "wrong_shape":
                    self._send(200, json.dumps({"intent": "greeting", "entities": "none"}).encode())
                else:
                    with fake._lock:
                        fake.answered_by.append(fake.model_file)
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
