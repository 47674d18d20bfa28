"""The handoff queue's service: escalations become tickets, agents take, answer, release, resolve or return them,
leads reassign them and run the roster; every state change and every reply is an audit event.

Worker-side writes take a SQLAlchemy Connection, so the caller stores a tweet, its ticket and its outbox row in
one transaction (`with transaction(engine) as conn`). Agent-side calls open their own transaction.

Every change to a ticket is a conditional UPDATE (on the state or version it was read in, and for a claim on the
agent being active with a free place) whose row count is checked, so two agents can never hold one ticket. "Take
next" picks its candidate with SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite ignores FOR UPDATE, where the
conditional UPDATE alone decides and a lost race is retried with the next candidate.

An agent whose log-in account is disabled is inactive (`set_agent_active`): it goes offline, its tickets go back
to the queue, and nobody can give it tickets or bring it online until it is active again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, case, func, insert, or_, select, true, update
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from handoff import states as sm
from handoff.errors import AgentNotFound, Conflict, HandoffError, InvalidInput, TicketNotFound
from handoff.models import OPEN_CONDITION, WAITING_CONDITION, agents, audit_events, messages, ticket_views, tickets

__all__ = [
    "Agent", "AgentNotFound", "AuditEvent", "Conflict", "Escalation", "Handoff", "HandoffError", "InvalidInput",
    "Message", "QueueRow", "RosterRow", "ShiftPicture", "Ticket", "TicketDetail", "TicketNotFound", "transaction",
]  # fmt: skip

SOURCES = ("mention", "search", "dm")
BANDS = ("human", "approve")
KINDS = ("core", "on_call")
AGENT_STATUSES = ("online", "away", "offline")
DELIVERIES = ("pending", "sent", "failed")
CHANNELS = ("public", "dm")  # where a message was written: in the public thread or by DM
MOST_URGENT, ROUTINE = 1, 4
VIEWER_WINDOW = timedelta(minutes=1)  # an agent who looked at a ticket this recently is "viewing" it
MAX_ATTEMPTS = 20  # lost races retried (by "take next", or while filing a tweet) before giving up
_INITIALS = re.compile(r"[A-Z]{2,3}")

Clock = Callable[[], datetime]

# Written out, not bound as parameters, so that both databases match them with the partial indexes' conditions.
_WAITING = sql_text(WAITING_CONDITION)
_OPEN = sql_text(OPEN_CONDITION)


# ---------------------------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Escalation:
    """What triage hands over: the customer's tweet and why a human should see it."""

    conversation_id: str
    tweet_id: str
    customer_id: str
    customer_handle: str | None
    text: str
    created_at: datetime
    source: str  # mention | search | dm
    band: str  # human | approve
    reasons: list[str]
    priority: int  # 1 = most urgent … 4 = routine
    skill: str
    intent: str | None = None
    confidence: float = 0.0
    faq_entry_id: int | None = None
    draft_reply: str | None = None
    dm_handover: bool = False


@dataclass(frozen=True)
class Ticket:
    id: int
    conversation_id: str
    customer_id: str
    customer_handle: str | None
    source: str
    state: str
    priority: int
    skill: str
    band: str
    reasons: tuple[str, ...]
    intent: str | None
    confidence: float
    faq_entry_id: int | None
    draft_reply: str | None
    dm_handover: bool
    agent_id: int | None  # the holder while claimed or answered; afterwards who closed it
    sla_due_at: datetime
    waiting_since: datetime | None  # the oldest customer message not yet answered
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    version: int
    dm_conversation_id: str | None = None  # the customer's DM conversation that joined this public ticket

    @property
    def is_open(self) -> bool:
        return self.state in sm.OPEN_STATES

    @property
    def holder_id(self) -> int | None:
        return self.agent_id if self.state in sm.HELD_STATES else None


@dataclass(frozen=True)
class Message:
    id: int
    ticket_id: int
    direction: str  # in | out
    tweet_id: str | None
    author: str  # the customer's handle, "bot", or an agent's initials
    text: str
    created_at: datetime
    outbox_id: int | None
    delivery: str  # pending | sent | failed
    channel: str = "public"  # public | dm


@dataclass(frozen=True)
class Agent:
    id: int
    username: str
    display_name: str
    initials: str
    kind: str  # core | on_call
    status: str  # online | away | offline
    capacity: int
    skills: tuple[str, ...]  # empty: every skill
    created_at: datetime
    active: bool = True  # False while the agent's log-in account is disabled

    @property
    def label(self) -> str:
        return f"{self.display_name} ({self.initials})"

    def has_skill(self, skill: str) -> bool:
        return not self.skills or skill in self.skills


@dataclass(frozen=True)
class RosterRow:
    agent: Agent
    open_tickets: int  # held now (claimed or answered)

    @property
    def free(self) -> int:
        return max(self.agent.capacity - self.open_tickets, 0)


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    holder: Agent | None
    viewers: tuple[str, ...]  # initials of the agents who looked at it in the last minute
    last_customer_text: str | None
    waiting_seconds: float | None  # how long the customer has waited for an answer; None: not waiting
    sla_seconds_left: float  # negative: the first-response deadline has passed

    @property
    def sla_breached(self) -> bool:
        return self.ticket.first_response_at is None and self.sla_seconds_left < 0


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    ticket_id: int | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    messages: list[Message]  # oldest first
    audit: list[AuditEvent]  # oldest first
    holder: Agent | None
    viewers: tuple[str, ...]


@dataclass(frozen=True)
class ShiftPicture:
    """The shift at a glance, for a lead."""

    open_by_priority: dict[int, int]  # priority → open tickets (every priority 1-4 present)
    sla_breaches: int  # open tickets still without a first response after their deadline
    oldest_waiting: Ticket | None  # the open ticket whose customer has waited longest for an answer
    created_last_hour: int  # tickets created or reopened in the last hour…
    created_hour_before: int  # …and in the hour before it

    @property
    def open_tickets(self) -> int:
        return sum(self.open_by_priority.values())


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that commits at the end, or rolls back on any error."""
    with engine.begin() as connection:
        yield connection


# ---------------------------------------------------------------------------------------------- helpers
def _utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive value (SQLite hands those back) is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _ticket(row: Row[Any]) -> Ticket:
    return Ticket(
        id=row.id, conversation_id=row.conversation_id, customer_id=row.customer_id,
        customer_handle=row.customer_handle, source=row.source, state=row.state, priority=row.priority,
        skill=row.skill, band=row.band, reasons=tuple(row.reasons), intent=row.intent, confidence=row.confidence,
        faq_entry_id=row.faq_entry_id, draft_reply=row.draft_reply, dm_handover=bool(row.dm_handover),
        agent_id=row.agent_id, sla_due_at=_utc(row.sla_due_at), waiting_since=_utc_or_none(row.waiting_since),
        created_at=_utc(row.created_at), updated_at=_utc(row.updated_at), claimed_at=_utc_or_none(row.claimed_at),
        first_response_at=_utc_or_none(row.first_response_at), resolved_at=_utc_or_none(row.resolved_at),
        dm_conversation_id=row.dm_conversation_id,
        version=row.version,
    )  # fmt: skip


def _agent(row: Row[Any]) -> Agent:
    return Agent(
        id=row.id, username=row.username, display_name=row.display_name, initials=row.initials, kind=row.kind,
        status=row.status, capacity=row.capacity, skills=tuple(row.skills), created_at=_utc(row.created_at),
        active=bool(row.active),
    )  # fmt: skip


def _message(row: Row[Any]) -> Message:
    return Message(
        id=row.id, ticket_id=row.ticket_id, direction=row.direction, tweet_id=row.tweet_id, author=row.author,
        text=row.text, created_at=_utc(row.created_at), outbox_id=row.outbox_id, delivery=row.delivery,
        channel=row.channel or "public",
    )  # fmt: skip


def _audit_event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        id=row.id, at=_utc(row.at), actor=row.actor, action=row.action, ticket_id=row.ticket_id,
        details=dict(row.details or {}),
    )  # fmt: skip


def _follow_up_state(row: Row[Any]) -> dict[str, str]:
    """The state change when the customer writes to an open ticket: an answered one owes them a reply again
    (back to `claimed`, still with its holder); others keep their state."""
    to_state = sm.next_state("reopen", row.state) if row.state in sm.OPEN_STATES else None
    return {"state": to_state} if to_state else {}


def _text_field(name: str, value: object, *, limit: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty text")
    if len(value) > limit:
        raise InvalidInput(f"{name} is {len(value)} characters long; at most {limit} are allowed")


def _check_escalation(e: Escalation) -> None:
    for name, limit in (("conversation_id", 24), ("tweet_id", 24), ("customer_id", 24), ("skill", 64)):
        _text_field(name, getattr(e, name), limit=limit)
    _text_field("customer_handle", e.customer_handle, limit=64, optional=True)
    _text_field("intent", e.intent, limit=64, optional=True)
    if not isinstance(e.text, str):
        raise InvalidInput("text must be a text")
    if e.source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {e.source!r}")
    if e.band not in BANDS:
        raise InvalidInput(f"band must be one of {', '.join(BANDS)}, not {e.band!r}")
    if isinstance(e.priority, bool) or not isinstance(e.priority, int) or not MOST_URGENT <= e.priority <= ROUTINE:
        raise InvalidInput(f"priority must be a whole number from {MOST_URGENT} to {ROUTINE}, not {e.priority!r}")
    if not all(isinstance(reason, str) for reason in e.reasons):
        raise InvalidInput("reasons must be a list of texts")


def _check_capacity_value(capacity: object) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= 1000:
        raise InvalidInput(f"capacity must be a whole number from 0 to 1000, not {capacity!r}")
    return capacity


def _check_status(status: str) -> None:
    if status not in AGENT_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(AGENT_STATUSES)}, not {status!r}")


# ---------------------------------------------------------------------------------------------- the service
class Handoff:
    def __init__(self, engine: Engine, *, sla_minutes: int = 60, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._sla = timedelta(minutes=sla_minutes)
        self._clock = clock

    @property
    def engine(self) -> Engine:
        return self._engine

    def _now(self) -> datetime:
        return _utc(self._clock())

    def _is_postgresql(self, conn: Connection) -> bool:
        return conn.dialect.name == "postgresql"

    # ------------------------------------------------------------------ worker side
    def escalate(self, conn: Connection, escalation: Escalation) -> int:
        """File the escalated tweet and return its ticket's id: the conversation's open ticket gets the message
        (and a higher priority when this one is more urgent); else its latest closed ticket is reopened; else a
        new ticket is queued. Escalating a tweet that is already filed changes nothing."""
        _check_escalation(escalation)
        filed = self._ticket_of_tweet(conn, escalation.tweet_id)
        if filed is not None:
            return filed
        for _ in range(MAX_ATTEMPTS):
            ticket_id = self._file(conn, escalation)
            if ticket_id is not None:
                self._insert_customer_message(
                    conn, ticket_id, tweet_id=escalation.tweet_id,
                    author=escalation.customer_handle or escalation.customer_id, text=escalation.text,
                    created_at=escalation.created_at, channel="dm" if escalation.source == "dm" else "public",
                )  # fmt: skip
                return ticket_id
        raise Conflict(f"conversation {escalation.conversation_id} kept changing while its tweet was filed")

    def _file(self, conn: Connection, e: Escalation) -> int | None:
        """One attempt to find, reopen or create the ticket for the escalation; None when a race was lost."""
        now = self._now()
        open_row = self._open_row(conn, e.conversation_id)
        if open_row is not None:
            priority = min(open_row.priority, e.priority)
            reasons = list(dict.fromkeys([*open_row.reasons, *e.reasons]))
            waiting_since = open_row.waiting_since if open_row.waiting_since is not None else _utc(e.created_at)
            follow_up = _follow_up_state(open_row)
            changed = self._update_if_unchanged(
                conn, open_row, priority=priority, reasons=reasons, waiting_since=waiting_since,
                dm_handover=bool(open_row.dm_handover or e.dm_handover), updated_at=now, **follow_up,
            )  # fmt: skip
            if not changed:
                return None
            details: dict[str, Any] = {"tweet_id": e.tweet_id, "reasons": list(e.reasons)}
            if priority != open_row.priority:
                details["priority"] = {"from": open_row.priority, "to": priority}
            if follow_up:
                details.update({"from": open_row.state, "to": follow_up["state"]})
            self._audit(conn, "bot", "escalated", open_row.id, details)
            return int(open_row.id)

        # The conversation's latest ticket, or the public ticket its DMs joined: a customer is one conversation.
        latest = conn.execute(
            select(tickets).where(self._of_conversation(e.conversation_id))
            .order_by(tickets.c.created_at.desc(), tickets.c.id.desc()).limit(1)
        ).first()  # fmt: skip
        if latest is not None:
            to_state = sm.next_state("reopen", latest.state)
            if to_state is None:
                return None  # it was opened after we looked for an open one: try again, the tweet joins it
            changed = self._update_if_unchanged(
                conn, latest, state=to_state, agent_id=None, **self._triage_columns(e), claimed_at=None,
                first_response_at=None, resolved_at=None, updated_at=now,
            )  # fmt: skip
            if not changed:
                return None
            details = {"from": latest.state, "to": to_state, "tweet_id": e.tweet_id, "priority": e.priority}
            self._audit(conn, "bot", "reopened", latest.id, details)
            return int(latest.id)

        values = {
            "conversation_id": e.conversation_id, "customer_id": e.customer_id, "customer_handle": e.customer_handle,
            "source": e.source, "state": "queued", "agent_id": None, **self._triage_columns(e), "created_at": now,
            "updated_at": now, "version": 1,
        }  # fmt: skip
        try:
            with self._statement_savepoint(conn):
                ticket_id = conn.execute(insert(tickets).values(values).returning(tickets.c.id)).scalar_one()
        except IntegrityError:
            if self._open_row(conn, e.conversation_id) is None:
                raise
            return None  # another worker opened the conversation's ticket just now: the tweet joins that one
        self._audit(conn, "bot", "created", ticket_id, {
            "tweet_id": e.tweet_id, "source": e.source, "band": e.band, "priority": e.priority, "skill": e.skill,
            "reasons": list(e.reasons),
        })  # fmt: skip
        return int(ticket_id)

    def _statement_savepoint(self, conn: Connection) -> AbstractContextManager[Any]:
        """Lets one failed statement be undone without the caller's transaction: a savepoint on PostgreSQL (where
        an error aborts the whole transaction); nothing on SQLite, which undoes just the failed statement."""
        return conn.begin_nested() if self._is_postgresql(conn) else nullcontext()

    def _triage_columns(self, e: Escalation) -> dict[str, Any]:
        created = _utc(e.created_at)
        return {
            "priority": e.priority, "skill": e.skill, "band": e.band, "reasons": list(e.reasons),
            "intent": e.intent, "confidence": float(e.confidence), "faq_entry_id": e.faq_entry_id,
            "draft_reply": e.draft_reply, "dm_handover": bool(e.dm_handover), "sla_due_at": created + self._sla,
            "waiting_since": created,
        }  # fmt: skip

    def add_customer_message(
        self, conn: Connection, conversation_id: str, *, tweet_id: str, author: str, text: str, created_at: datetime,
        channel: str = "public",
    ) -> int | None:
        """Append the customer's tweet (or DM: `channel`) to the conversation's open ticket and return the ticket's
        id; None when no ticket of the conversation is open (nothing is stored then). A DM conversation's open
        ticket may be the public ticket its DMs joined (join_dm)."""
        _text_field("tweet_id", tweet_id, limit=24)
        _text_field("author", author, limit=64)
        filed = self._ticket_of_tweet(conn, tweet_id)
        if filed is not None:
            return filed
        for _ in range(MAX_ATTEMPTS):
            row = self._open_row(conn, conversation_id)
            if row is None:
                return None
            if self._append_customer_message(
                conn, row, tweet_id=tweet_id, author=author, text=text, created_at=created_at, channel=channel
            ):
                return int(row.id)
        raise Conflict(f"conversation {conversation_id} kept changing while a message was added")

    def join_dm(
        self, conn: Connection, ticket_id: int, *, dm_conversation_id: str, tweet_id: str, author: str, text: str,
        created_at: datetime,
    ) -> int | None:
        """A DM from the customer of open ticket `ticket_id` (a public ticket) joins it: the ticket keeps the DM
        conversation (its later DMs join it too, and the agent may answer there), the DM is one of its messages,
        the holder keeps it, and a customer reply's rules apply (an answered ticket is the holder's again). The
        join is audited (dm_joined). None when the ticket is no longer open, or already joined another DM
        conversation (nothing is stored then)."""
        _text_field("tweet_id", tweet_id, limit=24)
        _text_field("author", author, limit=64)
        _text_field("dm_conversation_id", dm_conversation_id, limit=24)
        filed = self._ticket_of_tweet(conn, tweet_id)
        if filed is not None:
            return filed
        for _ in range(MAX_ATTEMPTS):
            row = self._ticket_row(conn, ticket_id)
            if row.state not in sm.OPEN_STATES or row.dm_conversation_id not in (None, dm_conversation_id):
                return None
            details: dict[str, Any] = {"dm_conversation_id": dm_conversation_id, "tweet_id": tweet_id}
            if self._append_customer_message(
                conn, row, tweet_id=tweet_id, author=author, text=text, created_at=created_at, channel="dm",
                dm_conversation_id=dm_conversation_id,
                audit=("dm_joined", details) if row.dm_conversation_id is None else None,
            ):  # fmt: skip
                return int(row.id)
        raise Conflict(f"ticket {ticket_id} kept changing while a DM joined it")

    def _append_customer_message(
        self, conn: Connection, row: Row[Any], *, tweet_id: str, author: str, text: str, created_at: datetime,
        channel: str, audit: tuple[str, dict[str, Any]] | None = None, **values: Any,
    ) -> bool:
        """Store a customer message on the open ticket `row` as one customer reply (the waiting time starts, an
        answered ticket is its holder's again, audited as customer_replied), with further column `values` and
        an `audit` event of its own; False when the ticket changed meanwhile (nothing is stored then)."""
        waiting_since = row.waiting_since if row.waiting_since is not None else _utc(created_at)
        follow_up = _follow_up_state(row)
        if not self._update_if_unchanged(
            conn, row, waiting_since=waiting_since, updated_at=self._now(), **follow_up, **values
        ):
            return False
        self._insert_customer_message(
            conn, row.id, tweet_id=tweet_id, author=author, text=text, created_at=created_at, channel=channel
        )
        if audit is not None:
            self._audit(conn, author, audit[0], row.id, audit[1])
        if follow_up:
            event = {"from": row.state, "to": follow_up["state"], "tweet_id": tweet_id}
            self._audit(conn, author, "customer_replied", row.id, event)
        return True

    def open_ticket_for(self, conn: Connection, conversation_id: str) -> Ticket | None:
        """The conversation's open ticket: while there is one, a human owns the thread. For a DM conversation it
        may be the public ticket the DMs joined."""
        row = self._open_row(conn, conversation_id)
        return None if row is None else _ticket(row)

    def record_outbound(
        self, conn: Connection, ticket_id: int, *, author: str, text: str, outbox_id: int | None, kind: str,
        channel: str | None = None,
    ) -> int:
        """Record a reply to the ticket's customer (queued in the outbox as `outbox_id`); returns the message id.
        `channel` (public | dm): where it goes; by default a DM ticket's replies are DMs, the others public."""
        _text_field("author", author, limit=64)
        row = self._ticket_row(conn, ticket_id)
        channel = channel or ("dm" if row.source == "dm" else "public")
        if channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
        message_id = conn.execute(
            insert(messages).values(
                ticket_id=ticket_id, direction="out", tweet_id=None, author=author, text=text,
                created_at=self._now(), outbox_id=outbox_id, delivery="pending" if outbox_id is not None else "sent",
                channel=channel,
            ).returning(messages.c.id)
        ).scalar_one()  # fmt: skip
        actor = conn.execute(select(agents.c.username).where(agents.c.initials == author)).scalar() or author
        details = {
            "kind": kind, "author": author, "text": text, "outbox_id": outbox_id, "message_id": message_id,
            "channel": channel,
        }  # fmt: skip
        self._audit(conn, actor, "replied", ticket_id, details)
        return int(message_id)

    def mark_delivery(self, conn: Connection, outbox_id: int, delivery: str, tweet_id: str | None) -> None:
        """The outbox says how the reply `outbox_id` went: pending, sent (as `tweet_id`) or failed."""
        if delivery not in DELIVERIES:
            raise InvalidInput(f"delivery must be one of {', '.join(DELIVERIES)}, not {delivery!r}")
        rows = conn.execute(select(messages).where(messages.c.outbox_id == outbox_id)).all()
        for row in rows:
            if row.delivery == delivery and (tweet_id is None or row.tweet_id == tweet_id):
                continue
            values: dict[str, Any] = {"delivery": delivery}
            if tweet_id is not None:
                values["tweet_id"] = tweet_id
            conn.execute(update(messages).where(messages.c.id == row.id).values(values))
            if delivery != row.delivery and delivery != "pending":
                action = "delivered" if delivery == "sent" else "delivery_failed"
                details = {"message_id": row.id, "outbox_id": outbox_id, "tweet_id": tweet_id}
                self._audit(conn, "bot", action, row.ticket_id, details)

    # ------------------------------------------------------------------ agent side
    def take_next(self, agent_id: int) -> Ticket | None:
        """Claim the most urgent waiting ticket the agent has the skill for: highest priority, then earliest SLA
        deadline, then oldest. None when nothing is waiting; Conflict when the agent is at capacity."""
        for _ in range(MAX_ATTEMPTS):
            with self._engine.begin() as conn:
                agent = self._agent_row(conn, agent_id, lock=True)
                self._require_active(agent)
                self._require_free_capacity(conn, agent)
                candidate = select(tickets).where(_WAITING)
                if agent.skills:
                    candidate = candidate.where(tickets.c.skill.in_(list(agent.skills)))
                candidate = candidate.order_by(
                    tickets.c.priority, tickets.c.sla_due_at, tickets.c.created_at, tickets.c.id
                ).limit(1)
                # PostgreSQL: lock the candidate, skipping the ones other agents are claiming right now.
                # SQLite ignores FOR UPDATE; the conditional UPDATE below decides who wins.
                row = conn.execute(candidate.with_for_update(skip_locked=True)).first()
                if row is None:
                    return None
                ticket = self._claim_row(conn, row, agent, actor=agent.username, action="claimed")
                if ticket is not None:
                    return ticket
        raise Conflict("Too many agents are taking tickets at this moment; please try again.")

    def claim(self, ticket_id: int, agent_id: int) -> Ticket:
        """Take this ticket. Taking one you already hold changes nothing; skills do not restrict a chosen ticket."""
        with self._engine.begin() as conn:
            agent = self._agent_row(conn, agent_id, lock=True)
            row = self._ticket_row(conn, ticket_id)
            if row.state in sm.HELD_STATES:
                if row.agent_id == agent_id:
                    return _ticket(row)
                raise Conflict(f"Ticket {ticket_id} is already taken by {self._label(conn, row.agent_id)}.")
            self._require_state(row, "claim")
            self._require_active(agent)
            self._require_free_capacity(conn, agent)
            ticket = self._claim_row(conn, row, agent, actor=agent.username, action="claimed")
            if ticket is None:
                raise self._lost_race(conn, ticket_id)
            return ticket

    def release(self, ticket_id: int, agent_id: int) -> Ticket:
        """Put a taken, unanswered ticket back in the queue."""
        with self._engine.begin() as conn:
            agent, row = self._holder_and_ticket(conn, ticket_id, agent_id, "release")
            return self._transition(conn, row, "release", agent.username, agent_id=None, claimed_at=None)

    def mark_answered(self, conn: Connection, ticket_id: int, agent_id: int) -> None:
        """The holder's reply is queued: the ticket is answered and the customer no longer waits."""
        agent, row = self._holder_and_ticket(conn, ticket_id, agent_id, "answer")
        now = self._now()
        first = row.first_response_at if row.first_response_at is not None else now
        if row.state == "answered":
            if not self._update_if_unchanged(conn, row, waiting_since=None, updated_at=now):
                raise self._lost_race(conn, ticket_id)
            return
        self._transition(conn, row, "answer", agent.username, first_response_at=first, waiting_since=None)

    def resolve(self, ticket_id: int, agent_id: int) -> Ticket:
        """Close a ticket its holder has answered, or one that needs no reply (praise, spam)."""
        with self._engine.begin() as conn:
            agent, row = self._holder_and_ticket(conn, ticket_id, agent_id, "resolve")
            return self._transition(conn, row, "resolve", agent.username, resolved_at=self._now(), waiting_since=None)

    def return_to_bot(self, ticket_id: int, agent_id: int) -> Ticket:
        """Hand the thread back to the bot. A held ticket only by its holder; a waiting one by any agent."""
        with self._engine.begin() as conn:
            agent = self._agent_row(conn, agent_id)
            row = self._ticket_row(conn, ticket_id)
            self._require_state(row, "return_to_bot")
            if row.state in sm.HELD_STATES and row.agent_id != agent_id:
                raise Conflict(f"Ticket {ticket_id} is held by {self._label(conn, row.agent_id)}, not by you.")
            return self._transition(conn, row, "return_to_bot", agent.username, agent_id=agent_id, waiting_since=None)

    def reassign(self, ticket_id: int, to_agent_id: int, by: str) -> Ticket:
        """A lead gives an open ticket to another agent (within that agent's capacity)."""
        _text_field("by", by, limit=64)
        with self._engine.begin() as conn:
            agent = self._agent_row(conn, to_agent_id, lock=True)
            row = self._ticket_row(conn, ticket_id)
            self._require_state(row, "reassign")
            if row.state in sm.HELD_STATES and row.agent_id == to_agent_id:
                raise Conflict(f"Ticket {ticket_id} is already held by {agent.display_name} ({agent.initials}).")
            self._require_active(agent, yours=False)
            self._require_free_capacity(conn, agent, yours=False)
            previous = self._username(conn, row.agent_id) if row.state in sm.HELD_STATES else None
            ticket = self._claim_row(conn, row, agent, actor=by, action="reassigned", details={"from_agent": previous})
            if ticket is None:
                raise self._lost_race(conn, ticket_id)
            return ticket

    def reject_draft(
        self, ticket_id: int, agent_id: int, *, also: Callable[[Connection, Ticket], None] | None = None
    ) -> Ticket:
        """The holder throws away the bot's drafted reply and will write one: the ticket becomes human-band.
        `also` runs in the same transaction with the ticket as it was (it records the rejection as a label)."""
        with self._engine.begin() as conn:
            agent = self._agent_row(conn, agent_id)
            row = self._ticket_row(conn, ticket_id)
            if row.state not in sm.HELD_STATES or row.agent_id != agent_id:
                raise Conflict(f"Take ticket {ticket_id} before you reject its draft.")
            if row.draft_reply is None:
                raise Conflict(f"Ticket {ticket_id} has no drafted reply to reject.")
            if not self._update_if_unchanged(conn, row, draft_reply=None, band="human", updated_at=self._now()):
                raise self._lost_race(conn, ticket_id)
            self._audit(conn, agent.username, "draft_rejected", ticket_id, {"draft": row.draft_reply})
            if also is not None:
                also(conn, _ticket(row))
            return self._ticket_by_id(conn, ticket_id)

    def record_refused_reply(self, ticket_id: int, actor: str, *, violations: Sequence[str], channel: str) -> None:
        """An agent's reply the tone check refused, audited as reply_refused with the violation codes (not the
        text, which may hold the personal data it was refused for): what a lead coaches, and a trainee's score."""
        with self._engine.begin() as conn:
            self._audit(conn, actor, "reply_refused", ticket_id, {"violations": list(violations), "channel": channel})

    def record_review(self, ticket_id: int, reviewer: str, *, verdict: str, comment: str) -> None:
        """A lead's review of the reply on a ticket (a training session's `good` or `needs_work`, with a comment),
        audited as reply_reviewed; the newest review of a ticket is the one that counts."""
        if verdict not in ("good", "needs_work"):
            raise ValueError(f"a review is good or needs_work, not {verdict!r}")
        with self._engine.begin() as conn:
            self._ticket_row(conn, ticket_id)
            self._audit(conn, reviewer, "reply_reviewed", ticket_id, {"verdict": verdict, "comment": comment})

    def record_view(self, ticket_id: int, agent_id: int) -> None:
        """The agent has the ticket open now (the queue shows who is viewing what)."""
        with self._engine.begin() as conn:
            self._ticket_row(conn, ticket_id)
            self._agent_row(conn, agent_id)
            dialect_insert = postgresql.insert if self._is_postgresql(conn) else sqlite.insert
            now = self._now()
            statement = dialect_insert(ticket_views).values(ticket_id=ticket_id, agent_id=agent_id, seen_at=now)
            conn.execute(
                statement.on_conflict_do_update(index_elements=["ticket_id", "agent_id"], set_={"seen_at": now})
            )

    # ------------------------------------------------------------------ reading
    def queue(self, *, limit: int = 200, states: Sequence[str] = sm.OPEN_STATES) -> list[QueueRow]:
        """Tickets in these states in the order "take next" follows, with holder, viewers and waiting time."""
        unknown = set(states) - set(sm.STATES)
        if unknown:
            raise InvalidInput(f"unknown ticket states: {', '.join(sorted(unknown))}")
        now = self._now()
        in_states = _OPEN if tuple(states) == sm.OPEN_STATES else tickets.c.state.in_(list(states))
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(tickets).where(in_states)
                .order_by(tickets.c.priority, tickets.c.sla_due_at, tickets.c.created_at, tickets.c.id).limit(limit)
            ).all()  # fmt: skip
            ids = [row.id for row in rows]
            holders = self._agents_by_id(conn, {row.agent_id for row in rows if row.state in sm.HELD_STATES})
            viewers = self._viewers(conn, ids, now)
            latest = (
                select(func.max(messages.c.id))
                .where(messages.c.ticket_id.in_(ids), messages.c.direction == "in")
                .group_by(messages.c.ticket_id)
            )
            last_text = {
                row.ticket_id: row.text
                for row in conn.execute(select(messages.c.ticket_id, messages.c.text).where(messages.c.id.in_(latest)))
            }
        result = []
        for row in rows:
            ticket = _ticket(row)
            waiting = None if ticket.waiting_since is None else (now - ticket.waiting_since).total_seconds()
            result.append(QueueRow(
                ticket=ticket, holder=holders.get(ticket.holder_id) if ticket.holder_id else None,
                viewers=viewers.get(ticket.id, ()), last_customer_text=last_text.get(ticket.id),
                waiting_seconds=waiting, sla_seconds_left=(ticket.sla_due_at - now).total_seconds(),
            ))  # fmt: skip
        return result

    def ticket(self, ticket_id: int) -> TicketDetail:
        """The ticket with its whole thread and its audit trail."""
        with self._engine.connect() as conn:
            ticket = _ticket(self._ticket_row(conn, ticket_id))
            thread = conn.execute(
                select(messages).where(messages.c.ticket_id == ticket_id).order_by(messages.c.created_at, messages.c.id)
            ).all()
            trail = conn.execute(
                select(audit_events).where(audit_events.c.ticket_id == ticket_id).order_by(audit_events.c.id)
            ).all()
            holder = self._agents_by_id(conn, {ticket.holder_id}).get(ticket.holder_id) if ticket.holder_id else None
            viewers = self._viewers(conn, [ticket_id], self._now()).get(ticket_id, ())
        return TicketDetail(
            ticket=ticket, messages=[_message(m) for m in thread], audit=[_audit_event(a) for a in trail],
            holder=holder, viewers=viewers,
        )  # fmt: skip

    def shift(self) -> ShiftPicture:
        """Open tickets by priority, SLA breaches, the longest wait, and the volume of the last two hours."""
        now = self._now()
        hour_ago, two_hours_ago = now - timedelta(hours=1), now - timedelta(hours=2)
        with self._engine.connect() as conn:
            by_priority = dict.fromkeys(range(MOST_URGENT, ROUTINE + 1), 0)
            for priority, count in conn.execute(
                select(tickets.c.priority, func.count()).where(_OPEN).group_by(tickets.c.priority)
            ):
                by_priority[priority] = count
            breaches = conn.execute(
                select(func.count())
                .select_from(tickets)
                .where(_OPEN, tickets.c.first_response_at.is_(None), tickets.c.sla_due_at < now)
            ).scalar_one()
            oldest = conn.execute(
                select(tickets)
                .where(_OPEN, tickets.c.waiting_since.is_not(None))
                .order_by(tickets.c.waiting_since, tickets.c.id)
                .limit(1)
            ).first()
            # Reopened tickets count as new contacts: the audit log has when each was created or reopened.
            arrivals = select(func.count()).where(audit_events.c.action.in_(["created", "reopened"]))
            last_hour = conn.execute(arrivals.where(audit_events.c.at > hour_ago)).scalar_one()
            hour_before = conn.execute(
                arrivals.where(audit_events.c.at > two_hours_ago, audit_events.c.at <= hour_ago)
            ).scalar_one()
        return ShiftPicture(
            open_by_priority=by_priority, sla_breaches=breaches,
            oldest_waiting=None if oldest is None else _ticket(oldest), created_last_hour=last_hour,
            created_hour_before=hour_before,
        )  # fmt: skip

    def customer_history(self, customer_id: str, *, exclude_ticket: int | None = None, limit: int = 20) -> list[Ticket]:
        """The customer's other tickets, newest first: their earlier contacts."""
        query = select(tickets).where(tickets.c.customer_id == customer_id)
        if exclude_ticket is not None:
            query = query.where(tickets.c.id != exclude_ticket)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(tickets.c.created_at.desc(), tickets.c.id.desc()).limit(limit)).all()
        return [_ticket(row) for row in rows]

    def audit(self, *, ticket_id: int | None = None, limit: int = 100) -> list[AuditEvent]:
        """The newest audit events first, of one ticket or of everything."""
        query = select(audit_events)
        if ticket_id is not None:
            query = query.where(audit_events.c.ticket_id == ticket_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(audit_events.c.id.desc()).limit(limit)).all()
        return [_audit_event(row) for row in rows]

    # ------------------------------------------------------------------ roster
    def add_agent(
        self, username: str, display_name: str, initials: str, *, kind: str = "core", capacity: int = 5,
        skills: Sequence[str] = (), status: str = "offline", conn: Connection | None = None,
    ) -> Agent:  # fmt: skip
        """Put an agent on the roster. Initials are 2-3 capitals, unique: they sign the agent's replies.

        With `conn`, in the caller's transaction (so a log-in account and its roster agent are made together)."""
        _text_field("username", username, limit=64)
        _text_field("display_name", display_name, limit=100)
        if not isinstance(initials, str) or not _INITIALS.fullmatch(initials):
            raise InvalidInput(f"initials must be 2 or 3 capital letters A-Z, like 'AB', not {initials!r}")
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        _check_status(status)
        _check_capacity_value(capacity)
        if isinstance(skills, str):
            raise InvalidInput("skills must be a list of skill names, not one text")
        for skill in skills:
            _text_field("a skill", skill, limit=64)
        with self._engine.begin() if conn is None else nullcontext(conn) as conn:
            for column, value in ((agents.c.username, username), (agents.c.initials, initials)):
                taken = conn.execute(select(agents).where(column == value)).first()
                if taken is not None:
                    raise Conflict(f"The {column.name} {value!r} is already used by {taken.display_name}.")
            try:
                with self._statement_savepoint(conn):
                    agent_id = conn.execute(
                        insert(agents).values(
                            username=username, display_name=display_name, initials=initials, kind=kind,
                            status=status, capacity=capacity, skills=list(dict.fromkeys(skills)),
                            created_at=self._now(),
                        ).returning(agents.c.id)
                    ).scalar_one()  # fmt: skip
            except IntegrityError as exc:  # added by somebody else at this very moment
                raise Conflict(f"The username {username!r} or the initials {initials!r} are already used.") from exc
            details = {"agent": username, "kind": kind, "capacity": capacity, "skills": list(skills)}
            self._audit(conn, "admin", "agent_added", None, details)
            return _agent(self._agent_row(conn, agent_id))

    def agent(self, agent_id: int) -> Agent:
        with self._engine.connect() as conn:
            return _agent(self._agent_row(conn, agent_id))

    def agent_by_username(self, username: str) -> Agent | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(agents).where(agents.c.username == username)).first()
        return None if row is None else _agent(row)

    def set_status(self, agent_id: int, status: str, by: str) -> Agent:
        """Online, away or offline (audited). An inactive agent stays offline."""
        _check_status(status)
        return self._set_agent_field(agent_id, "status", status, by, only_active=status != "offline")

    def set_capacity(self, agent_id: int, capacity: int, by: str) -> Agent:
        """How many open tickets the agent may hold at once (audited). Lowering it takes no ticket away."""
        return self._set_agent_field(agent_id, "capacity", _check_capacity_value(capacity), by)

    def set_skills(self, agent_id: int, skills: Sequence[str], by: str) -> Agent:
        """The skills "take next" routes to the agent by; empty: every skill (audited)."""
        if isinstance(skills, str):
            raise InvalidInput("skills must be a list of skill names, not one text")
        for skill in skills:
            _text_field("a skill", skill, limit=64)
        return self._set_agent_field(agent_id, "skills", list(dict.fromkeys(skills)), by)

    def _set_agent_field(self, agent_id: int, name: str, value: Any, by: str, *, only_active: bool = False) -> Agent:
        _text_field("by", by, limit=64)
        with self._engine.begin() as conn:
            row = self._agent_row(conn, agent_id, lock=True)
            if only_active:
                self._require_active(row, yours=False)  # it may have been disabled since the caller looked
            before = getattr(row, name)
            if before != value:
                conn.execute(update(agents).where(agents.c.id == agent_id).values({name: value}))
                details = {"agent": row.username, "from": before, "to": value}
                self._audit(conn, by, f"agent_{name}_changed", None, details)
            return _agent(self._agent_row(conn, agent_id))

    def set_agent_active(self, conn: Connection, agent_id: int, active: bool, by: str) -> Agent:
        """Disable or enable the agent, in the caller's transaction (with its log-in account), audited.

        Disabling sets it offline and puts every ticket it holds back in the queue; afterwards take next, claim,
        reassign and bringing it online refuse it. Enabling lets it be given work again; it stays offline until
        it (or a lead) sets it online."""
        _text_field("by", by, limit=64)
        row = self._agent_row(conn, agent_id, lock=True)
        if bool(row.active) == active:
            return _agent(row)
        values: dict[str, Any] = {"active": active} if active else {"active": False, "status": "offline"}
        conn.execute(update(agents).where(agents.c.id == agent_id).values(values))
        requeued = [] if active else self._requeue_held(conn, row, by)
        details: dict[str, Any] = {"agent": row.username}
        if not active:
            details.update(status={"from": row.status, "to": "offline"}, requeued=requeued)
        self._audit(conn, by, "agent_enabled" if active else "agent_disabled", None, details)
        return _agent(self._agent_row(conn, agent_id))

    def _requeue_held(self, conn: Connection, agent: Row[Any], by: str) -> list[int]:
        """Put every ticket the (now inactive) agent holds back in the queue; returns their ids."""
        requeued: list[int] = []
        for _ in range(MAX_ATTEMPTS):
            held = conn.execute(
                select(tickets).where(tickets.c.agent_id == agent.id, tickets.c.state.in_(sm.HELD_STATES))
                .order_by(tickets.c.id)
            ).all()  # fmt: skip
            if not held:
                return requeued
            for row in held:
                to_state = self._require_state(row, "requeue")
                now = self._now()
                if self._update_if_unchanged(conn, row, state=to_state, agent_id=None, claimed_at=None, updated_at=now):
                    details = {"from": row.state, "to": to_state, "agent": agent.username,
                               "reason": "the agent's account was disabled"}  # fmt: skip
                    self._audit(conn, by, "requeued", row.id, details)
                    requeued.append(int(row.id))
        raise Conflict(f"The tickets of {agent.display_name} ({agent.initials}) kept changing; please try again.")

    def roster(self, *, include_inactive: bool = False) -> list[RosterRow]:
        """Every active agent (and with `include_inactive` the disabled ones too) with the number of tickets they
        hold: core before on-call, online first, then by name."""
        held = (
            select(tickets.c.agent_id, func.count().label("held"))
            .where(tickets.c.state.in_(sm.HELD_STATES))
            .group_by(tickets.c.agent_id)
            .subquery()
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(agents, func.coalesce(held.c.held, 0).label("held"))
                .select_from(agents.outerjoin(held, held.c.agent_id == agents.c.id))
                .where(true() if include_inactive else agents.c.active.is_(True))
            ).all()  # fmt: skip
        status_order = {status: n for n, status in enumerate(AGENT_STATUSES)}
        result = [RosterRow(agent=_agent(row), open_tickets=int(row.held)) for row in rows]
        result.sort(key=lambda r: (KINDS.index(r.agent.kind), status_order[r.agent.status], r.agent.display_name))
        return result

    # ------------------------------------------------------------------ internals
    def _ticket_row(self, conn: Connection, ticket_id: int) -> Row[Any]:
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketNotFound(f"There is no ticket {ticket_id}.")
        return row

    def _ticket_by_id(self, conn: Connection, ticket_id: int) -> Ticket:
        return _ticket(self._ticket_row(conn, ticket_id))

    def _agent_row(self, conn: Connection, agent_id: int, *, lock: bool = False) -> Row[Any]:
        query = select(agents).where(agents.c.id == agent_id)
        if lock:
            # PostgreSQL: one claim at a time per agent, so two claims cannot both fit in the last free slot.
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise AgentNotFound(f"There is no agent {agent_id} on the roster.")
        return row

    def _of_conversation(self, conversation_id: str) -> ColumnElement[bool]:
        """The conversation's tickets: its own, and the public ticket its DMs joined (a DM conversation's)."""
        return or_(tickets.c.conversation_id == conversation_id, tickets.c.dm_conversation_id == conversation_id)

    def _open_row(self, conn: Connection, conversation_id: str) -> Row[Any] | None:
        own_first = case((tickets.c.conversation_id == conversation_id, 0), else_=1)
        return conn.execute(
            select(tickets).where(self._of_conversation(conversation_id), _OPEN)
            .order_by(own_first, tickets.c.created_at.desc(), tickets.c.id.desc()).limit(1)
        ).first()  # fmt: skip

    def _ticket_of_tweet(self, conn: Connection, tweet_id: str) -> int | None:
        return conn.execute(select(messages.c.ticket_id).where(messages.c.tweet_id == tweet_id)).scalar()

    def _insert_customer_message(
        self, conn: Connection, ticket_id: int, *, tweet_id: str, author: str, text: str, created_at: datetime,
        channel: str = "public",
    ) -> None:
        conn.execute(
            insert(messages).values(
                ticket_id=ticket_id, direction="in", tweet_id=tweet_id, author=author, text=text,
                created_at=_utc(created_at), outbox_id=None, delivery="sent", channel=channel,
            )
        )  # fmt: skip

    def _held_count(self, agent_id: int) -> Any:
        return (
            select(func.count())
            .select_from(tickets)
            .where(tickets.c.agent_id == agent_id, tickets.c.state.in_(sm.HELD_STATES))
            .scalar_subquery()
        )

    def _has_free_capacity(self, agent_id: int) -> ColumnElement[bool]:
        """True while the agent is active and holds fewer tickets than its capacity (NULL, so false, if inactive)."""
        capacity = select(agents.c.capacity).where(agents.c.id == agent_id, agents.c.active.is_(True))
        return self._held_count(agent_id) < capacity.scalar_subquery()

    def _require_active(self, agent: Row[Any], *, yours: bool = True) -> None:
        if agent.active:
            return
        if yours:
            raise Conflict("Your account is disabled: you cannot take tickets.")
        raise Conflict(
            f"{agent.display_name} ({agent.initials}) is disabled: enable their account before giving them work "
            "or bringing them online."
        )

    def _require_free_capacity(self, conn: Connection, agent: Row[Any], *, yours: bool = True) -> None:
        held = conn.execute(select(self._held_count(agent.id))).scalar_one()
        if held >= agent.capacity:
            if yours:
                raise Conflict(
                    f"You hold {held} open tickets and your capacity is {agent.capacity}: resolve or release one first."
                )
            raise Conflict(
                f"{agent.display_name} ({agent.initials}) holds {held} open tickets and the capacity is "
                f"{agent.capacity}: raise it, or give the ticket to somebody else."
            )

    def _require_state(self, row: Row[Any], action: str) -> str:
        to_state = sm.next_state(action, row.state)
        if to_state is None:
            raise Conflict(sm.refusal(action, row.state, row.id))
        return to_state

    def _holder_and_ticket(
        self, conn: Connection, ticket_id: int, agent_id: int, action: str
    ) -> tuple[Row[Any], Row[Any]]:
        agent = self._agent_row(conn, agent_id)
        row = self._ticket_row(conn, ticket_id)
        if row.state in sm.HELD_STATES and row.agent_id != agent_id:
            raise Conflict(f"Ticket {ticket_id} is held by {self._label(conn, row.agent_id)}, not by you.")
        self._require_state(row, action)
        return agent, row

    def _update_if_unchanged(self, conn: Connection, row: Row[Any], *extra: ColumnElement[bool], **values: Any) -> bool:
        """Update the ticket only if nobody changed it since `row` was read; True when it was updated."""
        result = conn.execute(
            update(tickets)
            .where(tickets.c.id == row.id, tickets.c.version == row.version, *extra)
            .values(version=row.version + 1, **values)
        )
        return result.rowcount == 1

    def _transition(self, conn: Connection, row: Row[Any], action: str, actor: str, **values: Any) -> Ticket:
        to_state = self._require_state(row, action)
        if not self._update_if_unchanged(conn, row, state=to_state, updated_at=self._now(), **values):
            raise self._lost_race(conn, row.id)
        self._audit(conn, actor, _AUDIT_ACTIONS[action], row.id, {"from": row.state, "to": to_state})
        return self._ticket_by_id(conn, row.id)

    def _claim_row(
        self, conn: Connection, row: Row[Any], agent: Row[Any], *, actor: str, action: str,
        details: dict[str, Any] | None = None,
    ) -> Ticket | None:  # fmt: skip
        """Give the ticket to the agent if it is still as read and the agent still has a free slot."""
        to_state = sm.next_state("reassign" if action == "reassigned" else "claim", row.state)
        if to_state is None:
            return None
        now = self._now()
        claimable = tickets.c.state.in_(sm.CLAIMABLE_STATES) if action == "claimed" else tickets.c.state == row.state
        changed = self._update_if_unchanged(
            conn, row, claimable, self._has_free_capacity(agent.id), state=to_state, agent_id=agent.id,
            claimed_at=now, updated_at=now,
        )  # fmt: skip
        if not changed:
            return None
        event = {"from": row.state, "to": to_state, "agent": agent.username, **(details or {})}
        self._audit(conn, actor, action, row.id, event)
        return self._ticket_by_id(conn, row.id)

    def _lost_race(self, conn: Connection, ticket_id: int) -> Conflict:
        return Conflict(f"Ticket {ticket_id} was changed by somebody else just now; reload it and try again.")

    def _label(self, conn: Connection, agent_id: int | None) -> str:
        row = conn.execute(select(agents).where(agents.c.id == agent_id)).first() if agent_id else None
        return "nobody" if row is None else f"{row.display_name} ({row.initials})"

    def _username(self, conn: Connection, agent_id: int | None) -> str | None:
        if agent_id is None:
            return None
        return conn.execute(select(agents.c.username).where(agents.c.id == agent_id)).scalar()

    def _agents_by_id(self, conn: Connection, ids: set[int | None]) -> dict[int | None, Agent]:
        wanted = [i for i in ids if i is not None]
        if not wanted:
            return {}
        return {row.id: _agent(row) for row in conn.execute(select(agents).where(agents.c.id.in_(wanted)))}

    def _viewers(self, conn: Connection, ticket_ids: list[int], now: datetime) -> dict[int, tuple[str, ...]]:
        if not ticket_ids:
            return {}
        rows = conn.execute(
            select(ticket_views.c.ticket_id, agents.c.initials)
            .join(agents, agents.c.id == ticket_views.c.agent_id)
            .where(ticket_views.c.ticket_id.in_(ticket_ids), ticket_views.c.seen_at >= now - VIEWER_WINDOW)
            .order_by(ticket_views.c.ticket_id, agents.c.initials)
        ).all()
        viewers: dict[int, tuple[str, ...]] = {}
        for ticket_id, initials in rows:
            viewers[ticket_id] = (*viewers.get(ticket_id, ()), initials)
        return viewers

    def _audit(self, conn: Connection, actor: str, action: str, ticket_id: int | None, details: dict[str, Any]) -> None:
        conn.execute(
            insert(audit_events).values(
                at=self._now(), actor=actor, action=action, ticket_id=ticket_id, details=details
            )
        )


_AUDIT_ACTIONS = {
    "release": "released", "answer": "answered", "resolve": "resolved", "return_to_bot": "returned_to_bot",
}  # fmt: skip
