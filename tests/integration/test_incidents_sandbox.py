"""An outage handled as one incident, end to end over real HTTP: 20 outage tweets replayed into the sandbox X, the
real worker (tweepy, the real Rasa, MiniLM, the live policy) turning them into tickets, a lead grouping them into
one incident through the web app's JSON API, one update sent → 20 distinct replies posted to the sandbox X by the
worker's sender within X's posting budget; then resolving the incident → 20 closing replies under the threads and
20 resolved tickets, with no tweet answered twice. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from worker_support import (
    check_invariants,
    fresh_database,
    settled,
    small_training_data,
    start_worker,
    stop_worker,
    wait_for,
    worker_environment,
)

from bot.channel.models import inbound_tweets, outbox, worker_heartbeats
from bot.db import make_engine
from bot.sandbox.replay import replay
from bot.sandbox.testing import running_sandbox
from bot.settings import Settings
from bot.web.app import build_services, create_app
from handoff.models import tickets
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

pytestmark = pytest.mark.rasa

CUSTOMERS = 20
PASSWORD = "correct horse battery"
START_TIMEOUT_S = 180
# X's published limit for posting tweets: 100 per 15 minutes per user (bot/channel/x_limits.py).
POSTS_PER_15_MINUTES = 100
PROBLEMS = (
    "still no internet in Leeds since 7am, already restarted the hub twice",
    "fibre down in Leeds again!! third time this month, sort it out",
    "no broadband at all in Leeds LS6 since this morning, I work from home",
    "internet has been dead in Leeds for 5 hours now, still nothing",
)
UPDATE = (
    "Engineers are repairing a damaged fibre cable that serves Leeds. We expect service back by 6pm; live updates "
    "are on our status page."
)
CLOSING = "Service is back for everyone in Leeds. If yours isn't, restart your hub and tell us here."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebApp:
    """carebot's web app on 127.0.0.1 in a thread, over the worker's database, with a lead who signs ^LL."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        settings = Settings(data_dir=data_dir, database_url=database_url, nlu_token="test-token")
        self.services = build_services(settings, migrate=False)
        lead = self.services.handoff.add_agent("lee", "Lee Lead", "LL", capacity=0)
        self.services.accounts.create("lee", PASSWORD, role="lead", display_name="Lee Lead", initials="LL",
                                      agent_id=lead.id)  # fmt: skip
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, services=self.services)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=2)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> WebApp:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the web app did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.services.close()

    def logged_in(self) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60)
        page = client.get("/login")
        token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/login", data={"username": "lee", "password": PASSWORD, "login_token": token})
        assert answer.status_code == 303, answer.text
        client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
        return client


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def running(request: pytest.FixtureRequest, rasa_server: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The sandbox X, the worker and the web app over one database: a SQLite file, or the test PostgreSQL."""
    if request.param == "postgresql":
        database_url = fresh_database(request.getfixturevalue("postgres_url"))
    else:
        database_url = fresh_database(f"sqlite:///{tmp_path / 'carebot.db'}")
    with running_sandbox(tmp_path / "sandbox-x.db") as sandbox:
        env = worker_environment(
            data_dir=tmp_path / "var", database_url=database_url, sandbox_url=sandbox.url, rasa=rasa_server,
            training_dir=small_training_data(tmp_path / "training"),
        )  # fmt: skip
        log = tmp_path / "worker.log"
        worker = start_worker(env, log)
        engine = make_engine(database_url)
        try:

            def started() -> bool:
                assert worker.poll() is None, f"the worker exited:\n{log.read_text(errors='replace')[-3000:]}"
                with engine.connect() as conn:
                    return conn.execute(select(worker_heartbeats.c.name)).first() is not None

            wait_for(started, START_TIMEOUT_S, "the worker's first step", log, database_url)
            with WebApp(database_url, tmp_path / "var-web") as web:
                yield {"sandbox": sandbox.url, "database_url": database_url, "log": log, "engine": engine, "web": web}
        finally:
            stop_worker(worker)
            engine.dispose()


def _posts(sandbox_url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{sandbox_url}/sandbox/posts", timeout=10).json()["data"])


def test_twenty_outage_tweets_get_one_incident_twenty_distinct_updates_and_are_resolved_together(
    running: dict[str, Any], tmp_path: Path
) -> None:
    sandbox_url, database_url, log, engine = (running[k] for k in ("sandbox", "database_url", "log", "engine"))
    traffic = tmp_path / "outage.jsonl"
    traffic.write_text("".join(
        json.dumps({"at": n * 0.5, "key": f"t{n}", "user": f"leeds_{n}",
                    "text": f"@KestrelCare {PROBLEMS[n % len(PROBLEMS)]} (house {n + 1})"}) + "\n"
        for n in range(CUSTOMERS)
    ))  # fmt: skip
    report = replay(traffic, sandbox_url, speed=10)
    assert report.refused == [] and len(report.posted) == CUSTOMERS
    customer_tweets = set(report.posted.values())

    def all_filed() -> bool:
        with engine.connect() as conn:
            done = conn.execute(
                select(func.count()).select_from(inbound_tweets)
                .where(inbound_tweets.c.tweet_id.in_(customer_tweets), inbound_tweets.c.ticket_id.is_not(None))
            ).scalar_one()  # fmt: skip
        return bool(done == CUSTOMERS) and settled(database_url, CUSTOMERS)

    wait_for(all_filed, 180, "20 tickets from the outage tweets, and the bot's acknowledgements posted", log,
             database_url)  # fmt: skip
    posts_before = _posts(sandbox_url)

    lead = running["web"].logged_in()
    made = lead.post("/api/incidents", json={"title": "Fibre outage, Leeds", "keywords": ["leeds"],
                                             "status_note": "Cable damaged near LS6; engineers on site."})  # fmt: skip
    assert made.status_code == 201, made.text
    incident = made.json()["id"]
    suggested = lead.get(f"/api/incidents/{incident}/suggestions").json()["suggestions"]
    ticket_ids = sorted(s["ticket_id"] for s in suggested)
    assert len(ticket_ids) == CUSTOMERS
    linked = lead.post(f"/api/incidents/{incident}/link", json={"ticket_ids": ticket_ids}).json()
    assert sorted(linked["linked"]) == ticket_ids and linked["refused"] == []

    sent = lead.post(f"/api/incidents/{incident}/update", json={"text": UPDATE})
    assert sent.status_code == 200, sent.text
    assert len(sent.json()["queued"]) == CUSTOMERS and sent.json()["refused"] == []

    def updates_posted() -> list[dict[str, Any]]:
        ours = [p for p in _posts(sandbox_url) if UPDATE in p["text"]]
        return ours if len(ours) == CUSTOMERS else []

    wait_for(lambda: bool(updates_posted()), 120, "20 updates on the sandbox X", log, database_url)
    updates = updates_posted()
    texts = [p["text"] for p in updates]
    assert len(set(texts)) == CUSTOMERS  # X refuses duplicates: each customer's update is worded apart
    assert all(weighted_length(t) <= MAX_WEIGHTED_LENGTH and t.endswith(" ^LL") for t in texts)
    handles = {m.group(1) for t in texts if (m := re.search(r"@(leeds_\d+)\b", t))}
    assert len(handles) == CUSTOMERS  # each names its own customer
    with engine.connect() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.kind == "incident_update")).all()
    assert {r.state for r in rows} == {"sent"} and len(rows) == CUSTOMERS
    # Each update went into its customer's thread: under the customer's tweet or our acknowledgement of it.
    by_id = {p["id"]: p for p in posts_before}
    for post in updates:
        target = post["in_reply_to_tweet_id"]
        assert target in customer_tweets or by_id[target]["in_reply_to_tweet_id"] in customer_tweets

    closing = lead.post(f"/api/incidents/{incident}/resolve", json={"text": CLOSING})
    assert closing.status_code == 200, closing.text
    assert closing.json()["resolved"] is True and len(closing.json()["queued"]) == CUSTOMERS

    def closings_posted() -> list[dict[str, Any]]:
        ours = [p for p in _posts(sandbox_url) if CLOSING in p["text"]]
        return ours if len(ours) == CUSTOMERS else []

    wait_for(lambda: bool(closings_posted()), 120, "20 closing replies on the sandbox X", log, database_url)
    closings = closings_posted()
    assert len({p["text"] for p in closings}) == CUSTOMERS
    update_ids = {p["id"] for p in updates}
    assert {p["in_reply_to_tweet_id"] for p in closings} == update_ids  # one closing under each thread's update
    with engine.connect() as conn:
        states = conn.execute(select(tickets.c.state).where(tickets.c.id.in_(ticket_ids))).scalars().all()
    assert states == ["resolved"] * CUSTOMERS
    shown = lead.get(f"/api/incidents/{incident}").json()
    assert shown["state"] == "resolved" and shown["replies"] == {"sent": 2 * CUSTOMERS}

    wait_for(lambda: settled(database_url, CUSTOMERS), 60, "the outbox to settle", log, database_url)
    counts = check_invariants(database_url, sandbox_url, customer_tweets)
    all_posts = _posts(sandbox_url)
    assert counts["replies"] == len(all_posts) <= POSTS_PER_15_MINUTES  # the whole storm within one window's budget
    lead.close()
