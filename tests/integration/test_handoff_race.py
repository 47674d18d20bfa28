"""No ticket is held by two agents: many agents, each on their own connection, call "take next" at once (PostgreSQL
with SELECT … FOR UPDATE SKIP LOCKED, 20 agents' sessions on 500 tickets; SQLite with fewer threads), and every
ticket is claimed exactly once while no agent ever holds more than their capacity."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from bot.db import make_engine, upgrade
from handoff import Conflict, Escalation, Handoff, transaction
from handoff.models import audit_events, messages, tickets
from handoff.models import metadata as handoff_metadata
from handoff.states import HELD_STATES

CAPACITY = 1  # two sessions share each agent, so the second often finds the agent's only slot taken


@pytest.fixture
def handoff_postgres_url(postgres_url: str) -> str:
    """The test PostgreSQL database, migrated, with empty handoff tables."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            for table in reversed(handoff_metadata.sorted_tables):  # rows that refer to others go first
                conn.execute(delete(table))
    finally:
        engine.dispose()
    return postgres_url


@pytest.fixture
def handoff_sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    return url


def fill_queue(url: str, tickets_count: int, agents_count: int) -> tuple[list[int], list[int]]:
    engine = make_engine(url)
    try:
        handoff = Handoff(engine)
        agent_ids = [
            handoff.add_agent(
                f"agent{n}", f"Agent {n}", f"A{chr(65 + n // 26)}{chr(65 + n % 26)}", capacity=CAPACITY
            ).id
            for n in range(agents_count)
        ]
        now = datetime.now(UTC)
        with transaction(engine) as conn:
            ticket_ids = [
                handoff.escalate(
                    conn,
                    Escalation(
                        conversation_id=str(10**18 + n),
                        tweet_id=str(10**18 + n),
                        customer_id=str(500 + n),
                        customer_handle=f"customer{n}",
                        text=f"help {n}",
                        created_at=now,
                        source="mention",
                        band="human",
                        reasons=["a complaint"],
                        priority=1 + n % 4,
                        skill="general",
                    ),
                )  # fmt: skip
                for n in range(tickets_count)
            ]
        return ticket_ids, agent_ids
    finally:
        engine.dispose()


@dataclass
class Session:
    """One agent's browser session: its own engine (so its own connection) taking, answering and resolving."""

    url: str
    agent_id: int
    claimed: list[int] = field(default_factory=list)
    over_capacity: list[int] = field(default_factory=list)
    refusals: int = 0
    error: BaseException | None = None

    def run(self, start: threading.Barrier) -> None:
        engine = make_engine(self.url)
        handoff = Handoff(engine)
        held_now = (
            select(func.count())
            .select_from(tickets)
            .where(tickets.c.agent_id == self.agent_id, tickets.c.state.in_(HELD_STATES))
        )
        try:
            start.wait()
            while True:
                try:
                    ticket = handoff.take_next(self.agent_id)
                except Conflict:
                    self.refusals += 1  # at capacity (the agent's other session holds the slot), or a busy queue
                    continue
                if ticket is None:
                    return
                self.claimed.append(ticket.id)
                with engine.connect() as conn:
                    held = conn.execute(held_now).scalar_one()
                if held > CAPACITY:
                    self.over_capacity.append(held)
                with transaction(engine) as conn:
                    handoff.record_outbound(
                        conn, ticket.id, author="bot", text="Sorted ^bot", outbox_id=None, kind="agent_reply"
                    )
                    handoff.mark_answered(conn, ticket.id, self.agent_id)
                handoff.resolve(ticket.id, self.agent_id)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            engine.dispose()


def race(url: str, *, sessions: int, tickets_count: int) -> None:
    ticket_ids, agent_ids = fill_queue(url, tickets_count, agents_count=sessions // 2)
    workers = [Session(url, agent_ids[n % len(agent_ids)]) for n in range(sessions)]
    start = threading.Barrier(sessions)
    threads = [threading.Thread(target=w.run, args=(start,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads)
    assert [w.error for w in workers if w.error] == []

    claims = Counter(ticket_id for w in workers for ticket_id in w.claimed)
    assert sorted(claims) == sorted(ticket_ids)  # every ticket claimed…
    assert set(claims.values()) == {1}  # …exactly once
    assert [w.over_capacity for w in workers if w.over_capacity] == []
    assert sum(1 for w in workers if w.claimed) > sessions // 2  # the work really was shared
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            claimed_events = Counter(
                conn.execute(select(audit_events.c.ticket_id).where(audit_events.c.action == "claimed")).scalars()
            )
            states = Counter(conn.execute(select(tickets.c.state)).scalars())
    finally:
        engine.dispose()
    assert claimed_events == claims
    assert states == {"resolved": tickets_count}


@pytest.mark.postgres
def test_twenty_agents_taking_next_on_postgresql_claim_each_ticket_once(handoff_postgres_url: str) -> None:
    race(handoff_postgres_url, sessions=20, tickets_count=500)


def test_agents_taking_next_on_sqlite_claim_each_ticket_once(handoff_sqlite_url: str) -> None:
    race(handoff_sqlite_url, sessions=6, tickets_count=90)


def claim_one_ticket_at_once(url: str, sessions: int) -> None:
    ticket_ids, agent_ids = fill_queue(url, 1, agents_count=sessions)
    start = threading.Barrier(sessions)
    outcomes: list[str] = []

    def claim(agent_id: int) -> None:
        engine = make_engine(url)
        try:
            start.wait()
            Handoff(engine).claim(ticket_ids[0], agent_id)
            outcomes.append("claimed")
        except Conflict as exc:
            outcomes.append(str(exc))
        finally:
            engine.dispose()

    threads = [threading.Thread(target=claim, args=(agent_id,)) for agent_id in agent_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert outcomes.count("claimed") == 1
    assert len(outcomes) == sessions
    assert all("already taken" in o or "changed by somebody else" in o for o in outcomes if o != "claimed")


@pytest.mark.postgres
def test_one_ticket_claimed_by_many_agents_at_once_on_postgresql_goes_to_one(handoff_postgres_url: str) -> None:
    claim_one_ticket_at_once(handoff_postgres_url, 20)


def test_one_ticket_claimed_by_many_agents_at_once_on_sqlite_goes_to_one(handoff_sqlite_url: str) -> None:
    claim_one_ticket_at_once(handoff_sqlite_url, 6)


def escalate_the_same_conversations_at_once(url: str, workers: int, conversations: int) -> None:
    """Workers file different tweets of the same new conversations at the same moment: one ticket each."""
    start = threading.Barrier(workers)
    errors: list[BaseException] = []
    now = datetime.now(UTC)

    def worker(number: int) -> None:
        engine = make_engine(url)
        handoff = Handoff(engine)
        try:
            start.wait()
            for n in range(conversations):
                with transaction(engine) as conn:
                    handoff.escalate(conn, Escalation(
                        conversation_id=f"77{n:06d}", tweet_id=f"88{n:06d}{number:02d}", customer_id="5",
                        customer_handle="maya_k", text=f"still down ({number})", created_at=now, source="mention",
                        band="human", reasons=["an outage report"], priority=1 + number % 4, skill="general",
                    ))  # fmt: skip
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            per_conversation = Counter(conn.execute(select(tickets.c.conversation_id)).scalars())
            filed = conn.execute(select(func.count()).select_from(messages)).scalar_one()
            priorities = set(conn.execute(select(tickets.c.priority)).scalars())
    finally:
        engine.dispose()
    assert len(per_conversation) == conversations and set(per_conversation.values()) == {1}
    assert filed == workers * conversations  # no tweet lost
    assert priorities == {1}  # each ticket took the most urgent of its tweets


@pytest.mark.postgres
def test_workers_filing_one_conversation_at_once_on_postgresql_open_one_ticket(handoff_postgres_url: str) -> None:
    escalate_the_same_conversations_at_once(handoff_postgres_url, workers=4, conversations=60)


def test_workers_filing_one_conversation_at_once_on_sqlite_open_one_ticket(handoff_sqlite_url: str) -> None:
    escalate_the_same_conversations_at_once(handoff_sqlite_url, workers=4, conversations=40)
