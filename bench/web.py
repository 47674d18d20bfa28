"""Benchmark of the agent console: how long the queue page takes to render with 10,000 open tickets, as an agent's
browser sees it (real HTTP to uvicorn, logged in), and the same queue from the JSON API.

    python -m bench.web --json [--out FILE] [--url postgresql://…] [--open 10000] [--requests 100]

Without --url it runs on a SQLite file in a temporary directory (carebot's default); with a PostgreSQL URL
(or CAREBOT_BENCH_POSTGRES_URL) it works in a scratch schema of that database, dropped at the end.

1. Fill: --open escalations through Handoff.escalate (priorities 1-4, four skills), 40 of them held by agents.
2. Queue page: GET /queue --requests times, one after another (the page shows the 200 most urgent tickets and
   the counts over all of them); the same for GET /api/queue and for GET /queue?view=mine.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import emit, machine, percentile
from bench.handoff import fill, scratch_schema_url
from bot.db import make_engine, upgrade
from bot.settings import Settings
from bot.web.app import build_services, create_app
from handoff import Handoff

PASSWORD = "benchmark password"


def _ms(values: list[float]) -> dict[str, float]:
    return {q: round(percentile(values, n), 2) for q, n in (("p50", 50), ("p95", 95), ("p99", 99))} | {
        "max": round(max(values), 2)
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_knowledge_base() -> Any:
    raise RuntimeError("the queue page does not search the FAQ")


def _time(client: httpx.Client, path: str, requests: int) -> dict[str, Any]:
    latencies = []
    size = 0
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get(path)
        latencies.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return {"path": path, "requests": requests, "bytes": size, "ms": _ms(latencies)}


def run(url: str, args: argparse.Namespace, report: dict[str, Any]) -> None:
    upgrade(url)
    engine = make_engine(url)
    handoff = Handoff(engine)
    settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()) / "carebot-bench-web")
    services = build_services(
        settings, engine=engine, handoff=handoff, knowledge_base=_no_knowledge_base, migrate=False,
        password_hasher=PasswordHasher(),
    )  # fmt: skip
    agents = [handoff.add_agent(f"agent{n}", f"Agent {n}", f"Q{chr(65 + n)}", capacity=10).id for n in range(4)]
    services.accounts.create("agent0", PASSWORD, role="agent", display_name="Agent 0", initials="QA",
                             agent_id=agents[0])  # fmt: skip
    report["fill"] = {"open_tickets": args.open, "escalate_s": round(fill(handoff, args.open), 1)}
    for agent_id in agents:
        for _ in range(10):
            handoff.take_next(agent_id)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            report["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
    app = create_app(settings, services=services)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            page = client.get("/login")
            token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
            client.post("/login", data={"username": "agent0", "password": PASSWORD, "login_token": token})
            assert client.get("/api/me").status_code == 200, "could not log in"
            for path in ("/queue", "/api/queue"):
                client.get(path)  # warm up
            report["queue_page"] = _time(client, "/queue", args.requests)
            report["queue_api"] = _time(client, "/api/queue", args.requests)
            report["queue_page_mine"] = _time(client, "/queue?view=mine", args.requests)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.close()
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--url", default=os.environ.get("CAREBOT_BENCH_POSTGRES_URL"),
                        help="a PostgreSQL database URL (default: a SQLite file)")  # fmt: skip
    parser.add_argument("--open", type=int, default=10_000, help="open tickets in the queue")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "benchmark": "web", "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
    }  # fmt: skip
    if args.url:
        if make_url(args.url).get_backend_name() != "postgresql":
            parser.error("--url must be a PostgreSQL URL (without it the benchmark uses SQLite)")
        schema = f"bench_web_{os.getpid()}"
        admin = make_engine(args.url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        report["database"] = "postgresql"
        try:
            run(scratch_schema_url(args.url, schema), args, report)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    else:
        report["database"] = "sqlite"
        with tempfile.TemporaryDirectory() as directory:
            run(f"sqlite:///{directory}/carebot.db", args, report)
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
