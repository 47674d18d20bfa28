"""Customer satisfaction and the public close through the sandbox X over real HTTP: the worker runs as its own
process (tweepy against the sandbox, the real MiniLM), on SQLite and PostgreSQL; agents work the tickets through the
handoff service and the outbox as the console does.

- A resolved DM ticket: the question arrives in the customer's DMs on the sandbox, the customer answers "4 thanks"
  there, and the score is stored with the ticket and the agent who resolved it, without a new ticket.
- A public ticket moved to DM, whose customer's DM joins it, answered by DM and resolved: one short reply appears
  under the public thread.

The NLU server is not running (its port is closed, CAREBOT_WORKER_NLU_WAIT_S=0): every customer message goes to
people at once, which is all these tests need from triage; the survey answer never reaches triage.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from worker_support import fresh_database, small_training_data, start_worker, stop_worker, tweet, wait_for

from bot.channel.models import inbound_tweets, outbox
from bot.channel.replies import queue_agent_reply
from bot.csat import CLOSE_KIND, QUESTION_KIND
from bot.db import make_engine
from bot.decision.tone import Author, compose_reply
from bot.sandbox.testing import RunningSandbox, running_sandbox
from handoff.models import csat_surveys, tickets
from handoff.service import Handoff, transaction

TIMEOUT_S = 120


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return fresh_database(f"sqlite:///{tmp_path / 'carebot.db'}")
    return fresh_database(str(request.getfixturevalue("postgres_url")))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Desk:
    """The worker as a process, and an agent working tickets through the handoff service and the outbox."""

    def __init__(self, database_url: str, sandbox: RunningSandbox, tmp_path: Path) -> None:
        import os

        self.url = database_url
        self.sandbox = sandbox
        self.log = tmp_path / "worker.log"
        shared = "CAREBOT_KB_EMBEDDING_CACHE_DIR"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_") or k == shared}
        env.update(
            CAREBOT_DATA_DIR=str(tmp_path / "var"), CAREBOT_DATABASE_URL=database_url,
            CAREBOT_X_API_URL=sandbox.url, CAREBOT_NLU_URL=f"http://127.0.0.1:{_closed_port()}",
            CAREBOT_NLU_TOKEN="no-nlu-here", CAREBOT_NLU_RETRIES="0", CAREBOT_NLU_TIMEOUT_S="1",
            CAREBOT_WORKER_NLU_WAIT_S="0", CAREBOT_TRAINING_DATA_DIR=str(small_training_data(tmp_path / "training")),
            CAREBOT_X_POLL_INTERVAL_S="0.2", CAREBOT_X_TIER="unmetered", CAREBOT_X_RECONCILE_AFTER_S="0",
            CAREBOT_X_TIMEOUT_S="5", CAREBOT_X_BACKOFF_MAX_S="2", CAREBOT_KB_REFRESH_INTERVAL_S="0.2",
        )  # fmt: skip
        self.engine: Engine = make_engine(database_url)
        self.handoff = Handoff(self.engine, sla_minutes=60)
        self.agent = self.handoff.add_agent("ann", "Ann Brown", "AB", status="online", capacity=10)
        self.worker = start_worker(env, self.log)
        self.http = httpx.Client(base_url=sandbox.url, timeout=10)

    def close(self) -> None:
        stop_worker(self.worker)
        self.http.close()
        self.engine.dispose()

    def wait(self, condition: Any, what: str) -> None:
        wait_for(condition, TIMEOUT_S, what, self.log, self.url)

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).where(*where)).all())

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    def dm(self, username: str, text: str) -> dict[str, Any]:
        response = self.http.post("/sandbox/customer-dms", json={"username": username, "text": text})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def our_dms(self) -> list[dict[str, Any]]:
        return list(self.http.get("/sandbox/posts").json()["dms"])

    def our_tweets(self) -> list[dict[str, Any]]:
        return list(self.http.get("/sandbox/posts").json()["data"])

    def ticket_of(self, customer_id: str, source: str) -> Any:
        self.wait(lambda: self.count(tickets, tickets.c.customer_id == customer_id, tickets.c.source == source) == 1,
                  f"the {source} ticket of customer {customer_id}")  # fmt: skip
        return self.rows(tickets, tickets.c.customer_id == customer_id, tickets.c.source == source)[0]

    def reply(self, ticket_id: int, text: str, kind: str = "agent_reply") -> int:
        """The agent's reply, queued as the console queues it; returns once the worker has sent it."""
        if self.rows(tickets, tickets.c.id == ticket_id)[0].state in ("queued", "reopened"):
            self.handoff.claim(ticket_id, self.agent.id)
        with transaction(self.engine) as conn:
            queued = queue_agent_reply(conn, self.handoff, ticket_id, self.agent, text, kind=kind)
        self.wait(lambda: self.rows(outbox, outbox.c.id == queued.outbox_id)[0].state == "sent", f"reply {kind} sent")
        return queued.outbox_id


@pytest.fixture
def desk(database_url: str, sandbox: RunningSandbox, tmp_path: Path) -> Iterator[Desk]:
    running = Desk(database_url, sandbox, tmp_path)
    try:
        yield running
    finally:
        running.close()


def test_a_csat_round_trip_through_the_sandbox_dms(desk: Desk) -> None:
    first = desk.dm("maya_k", "my bill is wrong this month, I was charged twice")
    customer = str(first["sender_id"])
    ticket = desk.ticket_of(customer, "dm")
    desk.reply(ticket.id, "Sorry about that, Maya. I've refunded the second charge: it reaches you in 3 days. ^AB")
    desk.handoff.resolve(ticket.id, desk.agent.id)

    def asked() -> list[dict[str, Any]]:
        return [dm for dm in desk.our_dms() if "1 (poor) to 5 (great)" in dm["text"]]

    desk.wait(lambda: len(asked()) == 1, "the satisfaction question in the customer's DMs")
    [question] = asked()
    assert question["recipient_id"] == customer and question["text"].endswith(" ^bot")
    [survey] = desk.rows(csat_surveys)
    assert (survey.ticket_id, survey.state, survey.agent_id) == (ticket.id, "asked", desk.agent.id)
    [row] = desk.rows(outbox, outbox.c.kind == QUESTION_KIND)
    assert row.posted_tweet_id == question["id"]

    answer = desk.dm("maya_k", "4 thanks")
    desk.wait(lambda: desk.rows(csat_surveys)[0].state == "answered", "the answer stored")
    [survey] = desk.rows(csat_surveys)
    assert (survey.score, survey.comment, survey.ticket_id, survey.agent_id) == (4, "thanks", ticket.id, desk.agent.id)
    stored = desk.rows(inbound_tweets, inbound_tweets.c.tweet_id == f"dm-{answer['id']}")
    assert [(r.state, r.ignore_reason, r.ticket_id) for r in stored] == [("done", "csat_answer", None)]
    assert desk.count(tickets) == 1  # no new ticket
    assert desk.rows(tickets, tickets.c.id == ticket.id)[0].state == "resolved"  # and not reopened
    assert len(asked()) == 1 and len(desk.our_dms()) == 2  # our reply and the one question, nothing more


def test_the_public_close_is_posted_after_a_dm_resolution(desk: Desk) -> None:
    opener = tweet(desk.sandbox.url, "omar_t", "@KestrelCare I'm locked out of my account, can you help?")
    customer = str(opener["author_id"])
    public = desk.ticket_of(customer, "mention")
    handover = compose_reply("dm_handover", Author.agent("AB"), variant_seed=public.id)
    handover_row = desk.reply(public.id, handover, kind="dm_handover")
    dm = desk.dm("omar_t", "hi, it's about my locked account")
    # The DM joins the public ticket (a customer is one conversation); the agent answers it there, by DM.
    desk.wait(lambda: desk.rows(inbound_tweets, inbound_tweets.c.tweet_id == f"dm-{dm['id']}",
                                inbound_tweets.c.ticket_id == public.id), "the DM in the public ticket")  # fmt: skip
    assert desk.count(tickets) == 1
    desk.reply(public.id, "All done: your account is unlocked and you can log in again now. ^AB")
    assert [d["recipient_id"] for d in desk.our_dms()] == [customer]
    desk.handoff.resolve(public.id, desk.agent.id)

    def closes() -> list[dict[str, Any]]:
        return [t for t in desk.our_tweets() if t["conversation_id"] == opener["id"] and "DM" in t["text"]
                and t["text"] != handover]  # fmt: skip

    desk.wait(lambda: len(closes()) == 1, "the public close under the thread")
    [close] = closes()
    [handover_sent] = desk.rows(outbox, outbox.c.id == handover_row)
    assert close["in_reply_to_tweet_id"] == handover_sent.posted_tweet_id  # under our own reply: one per tweet
    assert close["text"].endswith(" ^bot")
    [row] = desk.rows(outbox, outbox.c.kind == CLOSE_KIND)
    assert (row.posted_tweet_id, row.ticket_id) == (close["id"], public.id)
    # Once per public conversation: later passes of the worker post nothing more there.
    desk.wait(lambda: desk.count(csat_surveys) == 1, "the resolution decided")
    assert len(closes()) == 1
