"""Benchmark of the handoff queue on PostgreSQL: "take next" latency with 20 agents taking tickets at once, and the
queue view's latency, both with 10,000 open tickets.

    python -m bench.handoff --json [--out FILE] [--url postgresql://…] [--agents 20] [--open 10000] [--claims 2000]

The URL defaults to CAREBOT_BENCH_POSTGRES_URL, then CAREBOT_TEST_POSTGRES_URL. Everything happens in a scratch
schema of that database (created, migrated, dropped at the end), so the database's own tables are never touched.

1. Fill: 10,000 escalations through Handoff.escalate (priorities 1-4, four skills), in transactions of 500.
2. Take next: one agent alone first (the database's own cost), then all agents at once, each a thread with its
   own connection: it times take_next, then answers and resolves the ticket (untimed) and takes the next, until
   the agents have made --claims claims together. A quarter of the agents have one skill, the rest every skill.
   Every claim is checked to be unique.
3. Queue view: Handoff.queue(limit=200) over the open tickets, timed single-threaded.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import emit, machine, percentile
from bot.db import make_engine, upgrade
from handoff import Conflict, Escalation, Handoff, transaction

SKILLS = ("general", "billing", "mobile", "broadband")


def _ms(values: list[float]) -> dict[str, float]:
    return {q: round(percentile(values, n), 2) for q, n in (("p50", 50), ("p95", 95), ("p99", 99))} | {
        "max": round(max(values), 2)
    }


def scratch_schema_url(url: str, schema: str) -> str:
    """The same database with `schema` first on the search path (migrations and queries land there)."""
    parsed = make_url(url)
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def fill(handoff: Handoff, count: int) -> float:
    started = time.perf_counter()
    now = datetime.now(UTC)
    for first in range(0, count, 500):
        with transaction(handoff.engine) as conn:
            for n in range(first, min(first + 500, count)):
                handoff.escalate(conn, Escalation(
                    conversation_id=str(10**18 + n), tweet_id=str(10**18 + n), customer_id=str(10**6 + n % 3000),
                    customer_handle=f"customer{n % 3000}", text=f"my line has been down since Monday ({n})",
                    created_at=now - timedelta(seconds=count - n), source="mention", band="human",
                    reasons=["an outage report"], priority=1 + n // 4 % 4, skill=SKILLS[n % len(SKILLS)],
                ))  # fmt: skip
    return time.perf_counter() - started


def take_next_race(url: str, agent_ids: list[int], claims_wanted: int) -> dict[str, Any]:
    latencies: list[float] = []
    claimed: list[int] = []
    refusals = Counter[str]()
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(agent_ids))

    def agent_session(agent_id: int) -> None:
        engine = make_engine(url)
        handoff = Handoff(engine)
        try:
            start.wait()
            while True:
                with lock:
                    if len(claimed) >= claims_wanted:
                        return
                began = time.perf_counter()
                try:
                    ticket = handoff.take_next(agent_id)
                except Conflict as exc:
                    with lock:
                        refusals[str(exc)[:60]] += 1
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                if ticket is None:
                    return
                with lock:
                    latencies.append(elapsed)
                    claimed.append(ticket.id)
                with transaction(engine) as conn:
                    handoff.record_outbound(conn, ticket.id, author="bot", text="ok", outbox_id=None, kind="bench")
                    handoff.mark_answered(conn, ticket.id, agent_id)
                handoff.resolve(ticket.id, agent_id)
        except Exception as exc:  # reported in the JSON
            errors.append(f"{exc.__class__.__name__}: {exc}")
        finally:
            engine.dispose()

    threads = [threading.Thread(target=agent_session, args=(agent_id,)) for agent_id in agent_ids]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    duplicates = sum(1 for n in Counter(claimed).values() if n > 1)
    return {
        "agents": len(agent_ids), "claims": len(claimed), "duplicate_claims": duplicates,
        "take_next_ms": _ms(latencies), "claims_per_s_including_answer_and_resolve": round(len(claimed) / wall, 1),
        "refusals": dict(refusals), "errors": errors[:5],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--url", default=os.environ.get("CAREBOT_BENCH_POSTGRES_URL")
                        or os.environ.get("CAREBOT_TEST_POSTGRES_URL"), help="a PostgreSQL database URL")  # fmt: skip
    parser.add_argument("--agents", type=int, default=20, help="agents taking tickets at once")
    parser.add_argument("--open", type=int, default=10_000, help="open tickets in the queue")
    parser.add_argument("--claims", type=int, default=2000, help="claims to time, all agents together")
    args = parser.parse_args(argv)
    if not args.url or make_url(args.url).get_backend_name() != "postgresql":
        parser.error("give a PostgreSQL URL with --url or CAREBOT_BENCH_POSTGRES_URL")

    schema = f"bench_handoff_{os.getpid()}"
    admin = make_engine(args.url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = scratch_schema_url(args.url, schema)
    report: dict[str, Any] = {
        "benchmark": "handoff", "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
    }  # fmt: skip
    try:
        upgrade(url)
        engine = make_engine(url)
        handoff = Handoff(engine)
        with engine.connect() as conn:
            report["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
        agent_ids = [
            handoff.add_agent(
                f"agent{n}", f"Agent {n}", f"A{chr(65 + n // 26)}{chr(65 + n % 26)}", capacity=5,
                skills=[SKILLS[1 + n % 3]] if n % 4 == 0 else [],
            ).id
            for n in range(args.agents)
        ]  # fmt: skip
        report["fill"] = {"open_tickets": args.open, "escalate_s": round(fill(handoff, args.open), 1)}
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        report["take_next_one_agent_alone"] = take_next_race(url, agent_ids[1:2], 200)
        report["take_next"] = take_next_race(url, agent_ids, args.claims)

        latencies = []
        for _ in range(50):
            began = time.perf_counter()
            rows = handoff.queue(limit=200)
            latencies.append((time.perf_counter() - began) * 1000)
        open_now = len(handoff.queue(limit=args.open))
        report["queue_view"] = {"open_tickets": open_now, "rows": len(rows), "ms": _ms(latencies)}
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
