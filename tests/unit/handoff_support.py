"""Shared helpers for the handoff queue's tests: a migrated scratch SQLite database, a clock the test moves, and
shortcuts to escalate tweets and put tickets into any state."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bot.db import make_engine, upgrade
from handoff import Escalation, Handoff, Ticket, transaction

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
_tweet_ids = itertools.count(1_800_000_000_000_000_000)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Desk:
    """A Handoff on its own database, with the test's clock and two ready agents."""

    engine: Engine
    handoff: Handoff
    clock: Clock
    ann: int = 0
    bob: int = 0

    def escalation(self, conversation: str | None = None, **overrides: Any) -> Escalation:
        tweet_id = str(next(_tweet_ids))
        values: dict[str, Any] = {
            "conversation_id": conversation or tweet_id, "tweet_id": tweet_id, "customer_id": "501",
            "customer_handle": "maya_k", "text": "My broadband has been down since Monday!!",
            "created_at": self.clock(), "source": "mention", "band": "human", "reasons": ["an angry complaint"],
            "priority": 3, "skill": "general",
        }  # fmt: skip
        values.update(overrides)
        return Escalation(**values)

    def escalate(self, conversation: str | None = None, **overrides: Any) -> int:
        with transaction(self.engine) as conn:
            return self.handoff.escalate(conn, self.escalation(conversation, **overrides))

    def take(self, agent_id: int) -> Ticket:
        """Take next, when the test knows there is a ticket for the agent."""
        ticket = self.handoff.take_next(agent_id)
        assert ticket is not None, "nothing was waiting"
        return ticket

    def answer(self, ticket_id: int, agent_id: int, text: str = "Sorry about that, we're on it") -> None:
        """The agent's reply is recorded and the ticket marked answered, in one transaction like the web app."""
        initials = self.handoff.agent(agent_id).initials
        with transaction(self.engine) as conn:
            self.handoff.record_outbound(
                conn, ticket_id, author=initials, text=f"{text} ^{initials}", outbox_id=None, kind="agent_reply"
            )
            self.handoff.mark_answered(conn, ticket_id, agent_id)

    def ticket_in(self, state: str, *, agent_id: int | None = None) -> Ticket:
        """A new ticket brought into `state` the way agents and customers do it (held ones by `agent_id`)."""
        holder = agent_id or self.ann
        ticket_id = self.escalate()
        if state in ("claimed", "answered", "resolved"):
            self.handoff.claim(ticket_id, holder)
        if state in ("answered", "resolved"):
            self.answer(ticket_id, holder)
        if state == "resolved":
            self.handoff.resolve(ticket_id, holder)
        if state in ("returned_to_bot", "reopened"):
            self.handoff.return_to_bot(ticket_id, holder)
        if state == "reopened":
            conversation = self.handoff.ticket(ticket_id).ticket.conversation_id
            assert self.escalate(conversation) == ticket_id
        ticket = self.handoff.ticket(ticket_id).ticket
        assert ticket.state == state
        return ticket


_TEMPLATES: dict[str, Path] = {}


def migrated_copy(directory: Path) -> str:
    """A fresh, fully migrated SQLite database (migrated once per session, then copied)."""
    if "db" not in _TEMPLATES:
        template = Path(directory).parent / "handoff-template.db"
        if not template.exists():
            upgrade(f"sqlite:///{template}")
        _TEMPLATES["db"] = template
    target = directory / "carebot.db"
    shutil.copyfile(_TEMPLATES["db"], target)
    return f"sqlite:///{target}"


@contextmanager
def scratch_desk(directory: Path, **handoff_options: Any) -> Iterator[Desk]:
    engine = make_engine(migrated_copy(directory))
    clock = Clock()
    handoff = Handoff(engine, clock=clock, **handoff_options)
    try:
        desk = Desk(engine, handoff, clock)
        desk.ann = handoff.add_agent("ann", "Ann Brown", "AB", capacity=5).id
        desk.bob = handoff.add_agent("bob", "Bob Okafor", "BO", capacity=5).id
        yield desk
    finally:
        engine.dispose()
