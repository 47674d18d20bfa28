"""Run the sandbox X in-process for tests: real HTTP through uvicorn in a thread, on a free loopback port.

Use: `with running_sandbox(tmp_path / "x.db") as sandbox:` then talk HTTP to `sandbox.url`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from bot.sandbox.server import create_app

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunningSandbox:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    port: int
    store_path: Path
    app: FastAPI


class SandboxStartError(RuntimeError):
    """The sandbox X did not start listening in time."""


@contextmanager
def running_sandbox(
    store_path: Path, port: int = 0, account: str = "KestrelCare", tier: str = "unmetered",
    reply_restriction: bool = True,
) -> Iterator[RunningSandbox]:  # fmt: skip
    """Serve the sandbox X over `store_path` on 127.0.0.1:`port` (0: a free port) until the block ends, with the
    rate limits of X's access `tier` enforced (bot.sandbox.server; unmetered: none), and X's reply restriction for
    self-serve apps unless `reply_restriction` is False (X for enterprise apps)."""
    app = create_app(store_path, account, tier=tier, reply_restriction=reply_restriction)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY for it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1,
        timeout_keep_alive=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sandbox-x", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise SandboxStartError(f"the sandbox X did not start on port {bound_port}")
            time.sleep(0.01)
        yield RunningSandbox(f"http://127.0.0.1:{bound_port}", bound_port, store_path, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
