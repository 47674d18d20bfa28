"""The agent console's service layer: what the pages and the JSON API both call.

It composes the handoff queue (handoff.Handoff), the knowledge base (suggestions), the tone guide (the live check
and the signature) and the outbox (bot.channel.replies.queue_agent_reply). Routes never query tables themselves.
Every method returns plain view objects, so the pages and the API show the same thing.

The signature is the server's: an agent writes the body, the console appends `^XY` from the account's initials
(a copy of their own signature typed at the end is taken off first; anyone else's is a tone violation).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, case, func, literal, select

from bot.channel.models import inbound_tweets, outbox
from bot.channel.replies import (
    NoPublicReply,
    ReplyError,
    queue_agent_reply,
    recent_reply_texts,
    reply_channels,
    reply_target,
)
from bot.db import as_utc
from bot.decision.personal_data import redact
from bot.decision.tone import Author, ToneError, ToneGuide, Violation, check, compose_reply, default_guide
from bot.learning import decision_of_ticket, label_store
from bot.web.accounts import Account
from handoff import HandoffError, TicketNotFound, transaction
from handoff.labels import LabelledDecision, Labels, edit_distance
from handoff.models import agents, messages, tickets
from handoff.states import CLAIMABLE_STATES, CLOSED_STATES, HELD_STATES, OPEN_STATES, STATES
from knowledge_base.errors import KbError
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

log = logging.getLogger(__name__)

QUEUE_VIEWS = ("all", "waiting", "mine", "breached")
SEARCH_LIMIT = 100  # tickets a search shows, newest first
SEARCH_STATES = ("open", "closed", *STATES)
MAX_HELD = 1000  # more than any agent's capacity
MIN_SUGGESTION_SCORE = 0.3  # less similar entries are noise, not suggestions
ACTIVITY_FRESH_S = 0.9  # an account's activity() is reused this long (just under the event stream's 1 s beat)
THREAD_BEFORE = 20  # the latest tweets and replies of the thread before a ticket that its page shows
MAX_REPLY_CHARS = 2000  # a reply body longer than this is refused before anything else (a tweet is 280)


class ConsoleError(Exception):
    """The action cannot be done; the message says why, in words an agent reads."""


class NotFound(ConsoleError):
    """There is no such ticket."""


class KnowledgeBaseProvider(Protocol):
    def __call__(self) -> Any: ...  # a bot.kb.KnowledgeBase (service, searcher), opened on first use


# (conn, handoff, ticket_id, agent, text, *, channel, kind) -> the queued reply
ReplyQueue = Callable[..., Any]


# ---------------------------------------------------------------- view objects


@dataclass(frozen=True)
class QueueItem:
    id: int
    state: str
    priority: int
    band: str
    source: str
    skill: str
    customer_handle: str | None
    preview: str
    reasons: list[str]
    created_at: datetime
    waiting_s: int | None  # how long the customer has waited for an answer; None: not waiting
    sla_due_at: datetime | None
    sla_left_s: int | None  # negative: breached
    holder: str | None  # initials of the agent who holds it
    viewers: list[str]  # initials of agents looking at it now

    def to_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["created_at"] = self.created_at.isoformat()
        data["sla_due_at"] = self.sla_due_at.isoformat() if self.sla_due_at else None
        return data


@dataclass(frozen=True)
class MessageItem:
    id: int
    direction: str  # in | out
    author: str
    text: str
    created_at: datetime
    tweet_id: str | None
    delivery: str | None
    channel: str = "public"  # public | dm: where it was written
    failure: str | None = None  # a failed reply: why it was not posted, and what to do instead (the outbox's reason)

    def to_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class AuditItem:
    at: datetime
    actor: str
    action: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "actor": self.actor, "action": self.action, "details": self.details}


@dataclass(frozen=True)
class EarlierContact:
    id: int
    state: str
    created_at: datetime
    resolved_at: datetime | None
    intent: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "created_at": self.created_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None, "intent": self.intent,
        }  # fmt: skip


@dataclass(frozen=True)
class Suggestion:
    entry_id: int
    slug: str
    score: float
    question: str
    answer: str
    insert_text: str  # the answer in the house voice, without the signature (the server adds it)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class ToneReport:
    text: str  # what would be posted: the body and the signature
    signature: str
    length: int  # weighted, as X counts
    limit: int
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "signature": self.signature, "length": self.length, "limit": self.limit,
            "ok": self.ok, "violations": [v.to_dict() for v in self.violations],
        }  # fmt: skip


@dataclass(frozen=True)
class TicketView:
    id: int
    state: str
    priority: int
    band: str
    source: str
    skill: str
    customer_id: str
    customer_handle: str | None
    conversation_id: str
    reasons: list[str]
    intent: str | None
    confidence: float
    draft_reply: str | None
    dm_handover: bool
    holder_id: int | None
    holder: str | None
    created_at: datetime
    sla_due_at: datetime | None
    sla_left_s: int | None
    first_response_at: datetime | None
    messages: list[MessageItem]
    audit: list[AuditItem]
    earlier: list[EarlierContact] = field(default_factory=list)
    viewers: list[str] = field(default_factory=list)
    # The thread before this ticket: the customer's earlier tweets in the conversation and our replies to them
    # (a "that didn't help" under the bot's answer needs the question and the answer).
    thread_before: list[MessageItem] = field(default_factory=list)
    dm_conversation_id: str | None = None  # the customer's DM conversation that joined this public ticket
    # Why X allows no public reply in this thread now (its reply restriction), with what to do instead; None: it does.
    no_public_reply: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def reply_channels(self) -> tuple[str, ...]:
        """Where the agent may answer, the default first: by DM once the customer has written by DM."""
        return reply_channels(self.source, self.dm_conversation_id, public_allowed=self.no_public_reply is None)

    @property
    def joined_dm(self) -> bool:
        """A public ticket the customer's DM joined: its thread mixes public tweets and DMs."""
        return self.source != "dm" and self.dm_conversation_id is not None

    @property
    def last_customer_text(self) -> str:
        for message in reversed(self.messages):
            if message.direction == "in":
                return message.text
        return ""

    @property
    def fingerprint(self) -> str:
        """Changes whenever something an agent would want to see changes: state, holder, messages, deliveries."""
        parts = [self.state, str(self.holder_id), str(len(self.messages))]
        parts += [message.delivery or "" for message in self.messages if message.direction == "out"]
        return ":".join(parts)

    @property
    def draft_pending(self) -> bool:
        """A drafted reply waits for an agent: no agent has answered since the customer's latest message."""
        if not self.draft_reply or not self.is_open:
            return False
        for message in reversed(self.messages):
            if message.direction == "in":
                return True
            if message.author != "bot":
                return False
        return True

    def held_by(self, account: Account) -> bool:
        return self.holder_id is not None and self.holder_id == account.agent_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "state": self.state, "priority": self.priority, "band": self.band, "source": self.source,
            "skill": self.skill, "customer_id": self.customer_id, "customer_handle": self.customer_handle,
            "conversation_id": self.conversation_id, "reasons": self.reasons, "intent": self.intent,
            "confidence": self.confidence, "draft_reply": self.draft_reply, "dm_handover": self.dm_handover,
            "holder": self.holder, "created_at": self.created_at.isoformat(),
            "sla_due_at": self.sla_due_at.isoformat() if self.sla_due_at else None, "sla_left_s": self.sla_left_s,
            "first_response_at": self.first_response_at.isoformat() if self.first_response_at else None,
            "messages": [m.to_dict() for m in self.messages], "audit": [a.to_dict() for a in self.audit],
            "earlier": [e.to_dict() for e in self.earlier], "viewers": self.viewers, "fingerprint": self.fingerprint,
            "thread_before": [m.to_dict() for m in self.thread_before],
            "dm_conversation_id": self.dm_conversation_id, "reply_channels": list(self.reply_channels),
            "no_public_reply": self.no_public_reply,
        }  # fmt: skip


@dataclass(frozen=True)
class TicketSearch:
    """What an agent searches for, over open and closed tickets. Empty fields do not narrow the search.

    `text`: a ticket number (#42 or 42), a customer handle (@maya_k), or words in any of the ticket's messages or
    the customer's handle. `state`: a state, "open" or "closed". `agent`: initials or username of the agent who
    holds or last held the ticket.
    `since`/`until`: the ticket's creation date, inclusive (YYYY-MM-DD, UTC)."""

    text: str = ""
    state: str = ""
    skill: str = ""
    agent: str = ""
    since: date | None = None
    until: date | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.text.strip() or self.state or self.skill or self.agent or self.since or self.until)


@dataclass(frozen=True)
class SearchHit:
    id: int
    state: str
    priority: int
    source: str
    skill: str
    customer_handle: str | None
    preview: str
    created_at: datetime
    holder: str | None

    def to_dict(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["created_at"] = self.created_at.isoformat()
        return data


def _like(text: str) -> str:
    """A LIKE pattern that matches `text` anywhere, with its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---------------------------------------------------------------- the service


class ConsoleService:
    def __init__(
        self,
        handoff: Any,
        engine: Engine,
        *,
        knowledge_base: KnowledgeBaseProvider | None = None,
        reply_queue: ReplyQueue | None = None,
        transaction: Callable[[Engine], AbstractContextManager[Any]] | None = None,
        guide: ToneGuide | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        labels: Labels | None = None,
    ) -> None:
        self.handoff = handoff
        self.engine = engine
        self.labels = labels or label_store(engine, clock=clock)  # what agents' actions say about the bot
        self._knowledge_base = knowledge_base
        self._reply_queue = reply_queue
        self._transaction = transaction
        self.guide = guide or default_guide()
        self.clock = clock
        # activity() per account for ACTIVITY_FRESH_S: every open page streams it, an agent may have several
        self._activity: dict[int, tuple[float, dict[str, Any]]] = {}
        self._activity_lock = threading.Lock()

    # ------------------------------------------------ helpers

    def _agent_id(self, account: Account) -> int:
        if account.agent_id is None:
            raise ConsoleError("Your account has no place on the roster, so it cannot take tickets. Ask a lead.")
        return account.agent_id

    def _author(self, account: Account) -> Author:
        if not account.initials:
            raise ConsoleError("Your account has no initials, so it cannot sign replies. Ask a lead.")
        return Author.agent(account.initials)

    def _call(self, action: Callable[[], Any]) -> Any:
        """Run a handoff action, turning its errors into messages for the agent."""
        try:
            return action()
        except TicketNotFound as exc:
            raise NotFound(str(exc) or "There is no such ticket.") from exc
        except HandoffError as exc:
            raise ConsoleError(str(exc)) from exc

    def _sla_left(self, due: datetime | None) -> int | None:
        due = as_utc(due)
        return None if due is None else int((due - self.clock()).total_seconds())

    @staticmethod
    def _one_line(text: str, limit: int = 160) -> str:
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def _transaction_for(self) -> AbstractContextManager[Any]:
        return (self._transaction or transaction)(self.engine)

    # ------------------------------------------------ reading

    def queue(self, *, limit: int = 200, view: str = "all", account: Account | None = None) -> list[QueueItem]:
        """Open tickets in "take next" order; `view` narrows them: all, waiting (nobody holds them), mine (held
        by `account`), breached (past the first-reply deadline)."""
        if view not in QUEUE_VIEWS:
            raise ConsoleError(f"There is no queue view {view!r}; try one of {', '.join(QUEUE_VIEWS)}.")
        if view == "waiting":
            fetched = self._queue(limit, states=CLAIMABLE_STATES)
        elif view == "mine":
            fetched = self._queue(MAX_HELD, states=HELD_STATES)
        else:
            fetched = self._queue(limit if view == "all" else 5 * limit)
        return [item for item in fetched if self.in_view(item, view, account)][:limit]

    def queue_counts(self, account: Account) -> dict[str, int]:
        """How many open tickets each queue view has (over the whole queue, not only the rows shown): one pass
        over the open tickets of the handoff tables."""
        one = literal(1)
        waiting = case((tickets.c.state.in_(CLAIMABLE_STATES), one), else_=0)
        mine = case(((tickets.c.state.in_(HELD_STATES)) & (tickets.c.agent_id == account.agent_id), one), else_=0)
        late = (tickets.c.first_response_at.is_(None)) & (tickets.c.sla_due_at < self.clock())
        breached = case((late, one), else_=0)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.sum(waiting), func.sum(mine), func.sum(breached)).where(
                    tickets.c.state.in_(OPEN_STATES)
                )
            ).one()
        return {"all": row[0] or 0, "waiting": row[1] or 0, "mine": row[2] or 0, "breached": row[3] or 0}

    def search(self, query: TicketSearch, *, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
        """Tickets, open and closed, that match every field of the query; newest first."""
        if query.state and query.state not in SEARCH_STATES:
            raise ConsoleError(f"There is no ticket state {query.state!r}; try one of {', '.join(SEARCH_STATES)}.")
        conditions: list[Any] = []
        text = " ".join(query.text.split())[:200]
        number = re.fullmatch(r"#?(\d{1,18})", text)
        if number:
            conditions.append(tickets.c.id == int(number.group(1)))
        elif text.startswith("@"):
            conditions.append(tickets.c.customer_handle.ilike(_like(text[1:]), escape="\\"))
        elif text:
            in_messages = select(messages.c.ticket_id).where(messages.c.text.ilike(_like(text), escape="\\"))
            conditions.append(
                tickets.c.id.in_(in_messages) | tickets.c.customer_handle.ilike(_like(text), escape="\\")
            )
        if query.state == "open":
            conditions.append(tickets.c.state.in_(OPEN_STATES))
        elif query.state == "closed":
            conditions.append(tickets.c.state.in_(CLOSED_STATES))
        elif query.state:
            conditions.append(tickets.c.state == query.state)
        if query.skill:
            conditions.append(tickets.c.skill == query.skill.strip()[:64])
        if query.agent:
            who = query.agent.strip().lstrip("^")[:64]
            holder = select(agents.c.id).where((agents.c.initials == who.upper()) | (agents.c.username == who.lower()))
            conditions.append(tickets.c.agent_id.in_(holder))
        if query.since:
            conditions.append(tickets.c.created_at >= datetime.combine(query.since, datetime.min.time(), UTC))
        if query.until:
            conditions.append(tickets.c.created_at < datetime.combine(query.until, datetime.min.time(), UTC)
                              + timedelta(days=1))  # fmt: skip
        latest_in = (
            select(messages.c.text)
            .where(messages.c.ticket_id == tickets.c.id, messages.c.direction == "in")
            .order_by(messages.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tickets, agents.c.initials.label("holder_initials"), latest_in.label("latest_text"))
                .outerjoin(agents, agents.c.id == tickets.c.agent_id)
                .where(*conditions)
                .order_by(tickets.c.created_at.desc(), tickets.c.id.desc())
                .limit(limit)
            ).all()
        return [
            SearchHit(
                id=row.id, state=row.state, priority=row.priority, source=row.source, skill=row.skill,
                customer_handle=row.customer_handle, preview=self._one_line(redact(row.latest_text or "")),
                created_at=as_utc(row.created_at) or self.clock(),
                holder=row.holder_initials if row.state in HELD_STATES else None,
            )  # fmt: skip
            for row in rows
        ]

    def activity(self, account: Account) -> dict[str, Any]:
        """What an open console page watches (bot/web/events.py): the queue's counts, and the newest customer
        message on the tickets this agent holds (its ticket and message ids), or None. Worked out at most once
        per ACTIVITY_FRESH_S for each account, however many of its pages are open."""
        now = time.monotonic()
        with self._activity_lock:
            known = self._activity.get(account.id)
        if known is not None and now - known[0] < ACTIVITY_FRESH_S:
            return known[1]
        state = self._current_activity(account)
        with self._activity_lock:
            self._activity[account.id] = (now, state)
        return state

    def _current_activity(self, account: Account) -> dict[str, Any]:
        counts = self.queue_counts(account)
        with self.engine.connect() as conn:
            newest = conn.execute(
                select(messages.c.id, messages.c.ticket_id)
                .join(tickets, tickets.c.id == messages.c.ticket_id)
                .where(messages.c.direction == "in", tickets.c.agent_id == account.agent_id,
                       tickets.c.state.in_(HELD_STATES))
                .order_by(messages.c.id.desc())
                .limit(1)
            ).first()  # fmt: skip
        mine = {"message_id": newest.id, "ticket_id": newest.ticket_id} if newest is not None else None
        return {"counts": counts, "newest_on_mine": mine}

    @staticmethod
    def in_view(item: QueueItem, view: str, account: Account | None) -> bool:
        if view == "waiting":
            return item.holder is None
        if view == "mine":
            return account is not None and item.holder is not None and item.holder == account.initials
        if view == "breached":
            return item.sla_left_s is not None and item.sla_left_s < 0
        return True

    def _queue(self, limit: int, states: tuple[str, ...] = OPEN_STATES) -> list[QueueItem]:
        now = self.clock()
        items = []
        for row in self.handoff.queue(limit=limit, states=states):
            ticket = row.ticket
            created = as_utc(ticket.created_at) or now
            items.append(
                QueueItem(
                    id=ticket.id, state=ticket.state, priority=ticket.priority, band=ticket.band,
                    source=ticket.source, skill=ticket.skill, customer_handle=ticket.customer_handle,
                    preview=self._one_line(redact(row.last_customer_text or "")), reasons=list(ticket.reasons),
                    created_at=created,
                    waiting_s=int(row.waiting_seconds) if row.waiting_seconds is not None else None,
                    sla_due_at=as_utc(ticket.sla_due_at),
                    sla_left_s=int(row.sla_seconds_left) if ticket.first_response_at is None else None,
                    holder=row.holder.initials if row.holder is not None else None, viewers=list(row.viewers),
                )  # fmt: skip
            )
        return items

    def ticket(self, ticket_id: int, viewer: Account | None = None) -> TicketView:
        """The whole ticket; a viewing agent is recorded as looking at it."""
        if viewer is not None and viewer.agent_id is not None:
            self._call(lambda: self.handoff.record_view(ticket_id, viewer.agent_id))
        detail = self._call(lambda: self.handoff.ticket(ticket_id))
        ticket = detail.ticket
        earlier = self.handoff.customer_history(ticket.customer_id, exclude_ticket=ticket.id)
        failures = self._failures([m.outbox_id for m in detail.messages if m.delivery == "failed" and m.outbox_id])
        return TicketView(
            id=ticket.id, state=ticket.state, priority=ticket.priority, band=ticket.band, source=ticket.source,
            skill=ticket.skill, customer_id=ticket.customer_id, customer_handle=ticket.customer_handle,
            conversation_id=ticket.conversation_id, reasons=list(ticket.reasons), intent=ticket.intent,
            confidence=float(ticket.confidence or 0.0), draft_reply=ticket.draft_reply,
            dm_handover=bool(ticket.dm_handover), holder_id=ticket.holder_id,
            holder=detail.holder.initials if detail.holder is not None else None,
            created_at=as_utc(ticket.created_at) or self.clock(), sla_due_at=as_utc(ticket.sla_due_at),
            sla_left_s=self._sla_left(ticket.sla_due_at) if ticket.first_response_at is None else None,
            first_response_at=as_utc(ticket.first_response_at),
            messages=[
                MessageItem(
                    id=m.id, direction=m.direction, author=m.author, text=m.text,
                    created_at=as_utc(m.created_at) or self.clock(), tweet_id=m.tweet_id, delivery=m.delivery,
                    channel="dm" if ticket.source == "dm" else getattr(m, "channel", "public"),
                    failure=failures.get(m.outbox_id) if m.delivery == "failed" else None,
                )  # fmt: skip
                for m in detail.messages
            ],
            audit=[
                AuditItem(at=as_utc(a.at) or self.clock(), actor=a.actor, action=a.action, details=dict(a.details))
                for a in detail.audit
            ],
            earlier=[
                EarlierContact(
                    id=t.id, state=t.state, created_at=as_utc(t.created_at) or self.clock(),
                    resolved_at=as_utc(t.resolved_at), intent=t.intent,
                )  # fmt: skip
                for t in earlier
            ],
            viewers=list(detail.viewers),
            thread_before=self._thread_before(ticket.conversation_id, ticket.id, detail.messages),
            dm_conversation_id=getattr(ticket, "dm_conversation_id", None),
            no_public_reply=self._no_public_reply(ticket.id, ticket.source, ticket.conversation_id),
        )  # fmt: skip

    def _no_public_reply(self, ticket_id: int, source: str, conversation_id: str) -> str | None:
        """Why a public reply cannot go out in this thread (X's reply restriction: bot.channel.replies), shown
        before the agent writes one; None when there is a tweet to reply under, or the ticket is a DM."""
        if source == "dm":
            return None
        with self.engine.connect() as conn:
            try:
                reply_target(conn, conversation_id, dm=False, ticket_id=ticket_id, reuse_failed=True)
            except NoPublicReply as exc:
                return str(exc)
            except ReplyError:
                return None  # our last reply is still being posted: said when the agent sends
        return None

    def _failures(self, outbox_ids: list[int]) -> dict[int, str]:
        """Why each of these failed replies was not posted (the outbox's reason: X's reply restriction names what
        to do instead)."""
        if not outbox_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.id, outbox.c.last_error).where(outbox.c.id.in_(outbox_ids))).all()
        return {row.id: row.last_error for row in rows if row.last_error}

    def _thread_before(self, conversation_id: str, ticket_id: int, messages: list[Any]) -> list[MessageItem]:
        """The conversation's tweets and our sent replies that are not messages of this ticket, oldest first,
        from before the ticket's first message (at most THREAD_BEFORE of them, the latest)."""
        on_ticket = {m.tweet_id for m in messages if m.tweet_id}
        first = min((as_utc(m.created_at) for m in messages if m.created_at is not None), default=None)
        with self.engine.connect() as conn:
            tweets = conn.execute(
                select(inbound_tweets.c.tweet_id, inbound_tweets.c.author_username, inbound_tweets.c.author_id,
                       inbound_tweets.c.text, inbound_tweets.c.created_at)
                .where(inbound_tweets.c.conversation_id == conversation_id)
            ).all()  # fmt: skip
            replies = conn.execute(
                select(outbox.c.id, outbox.c.author, outbox.c.text, outbox.c.sent_at, outbox.c.posted_tweet_id)
                .where(outbox.c.conversation_id == conversation_id, outbox.c.state == "sent",
                       (outbox.c.ticket_id.is_(None)) | (outbox.c.ticket_id != ticket_id))
            ).all()  # fmt: skip
        items = [
            MessageItem(
                id=0, direction="in", author=t.author_username or t.author_id, text=t.text,
                created_at=as_utc(t.created_at) or self.clock(), tweet_id=t.tweet_id, delivery=None,
            )  # fmt: skip
            for t in tweets
            if t.tweet_id not in on_ticket
        ] + [
            MessageItem(
                id=0, direction="out", author=r.author, text=r.text, created_at=as_utc(r.sent_at) or self.clock(),
                tweet_id=r.posted_tweet_id, delivery="sent",
            )  # fmt: skip
            for r in replies
        ]
        if first is not None:
            items = [item for item in items if item.created_at <= first]
        items.sort(key=lambda item: item.created_at)
        return items[-THREAD_BEFORE:]

    # ------------------------------------------------ suggestions and tone

    def suggestions(
        self, text: str, account: Account, *, seed: int | str = 0, k: int = 3, min_score: float = MIN_SUGGESTION_SCORE
    ) -> list[Suggestion]:
        """The top published FAQ answers for a customer's text (at least `min_score` similar), ready to insert in
        the house voice."""
        if self._knowledge_base is None or not text.strip():
            return []
        try:
            kb = self._knowledge_base()
            result = kb.searcher.search(text, k=k)
            published = kb.service.published([hit.entry_id for hit in result.hits])
        except KbError:
            return []
        except Exception:  # suggestions help; a broken knowledge base must not take the ticket page down
            log.exception("FAQ suggestions failed")
            return []
        author = self._author(account)
        suggestions = []
        for hit in result.hits:
            version = published.get(hit.entry_id)
            if version is None or hit.score < min_score:
                continue
            try:
                reply = compose_reply(
                    "faq_answer", author, variant_seed=f"{seed}:{hit.entry_id}", answer=version.content.answer,
                    guide=self.guide,
                )  # fmt: skip
            except ToneError:
                continue
            suggestions.append(
                Suggestion(
                    entry_id=hit.entry_id, slug=hit.slug, score=round(float(hit.score), 3),
                    question=version.content.question, answer=version.content.answer,
                    insert_text=self.strip_own_signature(reply, account),
                )  # fmt: skip
            )
        return suggestions

    def strip_own_signature(self, text: str, account: Account) -> str:
        """The body without the account's own signature at its end (the server adds it)."""
        signature = self.guide.signature(self._author(account))
        body = text.rstrip()
        pattern = re.compile(r"\s*" + re.escape(signature) + r"$")
        return pattern.sub("", body).rstrip()

    def signature(self, account: Account) -> str:
        """The signature the server adds to this account's replies ("" for an account without initials)."""
        return self.guide.signature(Author.agent(account.initials)) if account.initials else ""

    def signed(self, body: str, account: Account) -> str:
        signature = self.guide.signature(self._author(account))
        return f"{self.strip_own_signature(body, account)} {signature}".lstrip()

    def tone_check(
        self, body: str, account: Account, *, recent_replies: list[str] | None = None, dm: bool = False
    ) -> ToneReport:
        """The tone check of what would be posted: the body signed with the account's initials. `dm`: the reply
        goes by direct message (a DM ticket), which may carry personal details but never card details."""
        if len(body) > MAX_REPLY_CHARS:
            body = body[:MAX_REPLY_CHARS]
        author = self._author(account)
        text = self.signed(body, account)
        violations = check(text, author, recent_replies=recent_replies or (), guide=self.guide, dm=dm)
        return ToneReport(
            text=text, signature=self.guide.signature(author), length=weighted_length(text),
            limit=MAX_WEIGHTED_LENGTH, violations=violations,
        )  # fmt: skip

    # ------------------------------------------------ actions

    def take_next(self, account: Account) -> int | None:
        agent_id = self._agent_id(account)
        ticket = self._call(lambda: self.handoff.take_next(agent_id))
        return None if ticket is None else int(ticket.id)

    def claim(self, ticket_id: int, account: Account) -> None:
        agent_id = self._agent_id(account)
        self._call(lambda: self.handoff.claim(ticket_id, agent_id))

    def release(self, ticket_id: int, account: Account) -> None:
        agent_id = self._agent_id(account)
        self._call(lambda: self.handoff.release(ticket_id, agent_id))

    def resolve(self, ticket_id: int, account: Account) -> None:
        agent_id = self._agent_id(account)
        self._call(lambda: self.handoff.resolve(ticket_id, agent_id))

    def return_to_bot(self, ticket_id: int, account: Account) -> None:
        agent_id = self._agent_id(account)
        self._call(lambda: self.handoff.return_to_bot(ticket_id, agent_id))

    def reject_draft(self, ticket_id: int, account: Account) -> None:
        """Throw the draft away; the rejection is a label against the draft's FAQ entry."""
        agent_id = self._agent_id(account)

        def label(conn: Any, ticket: Any) -> None:
            decision = self._labelled_decision(conn, ticket.id, ticket.faq_entry_id, None)
            self.labels.record(conn, "rejected", decision, actor=account.username)

        self._call(lambda: self.handoff.reject_draft(ticket_id, agent_id, also=label))

    def _labelled_decision(
        self, conn: Any, ticket_id: int, entry_id: int | None, score: float | None, text: str = ""
    ) -> LabelledDecision:
        """The decision of the ticket's latest tweet, about `entry_id` (the draft's or the suggestion's; the
        score is the decision's own when it is about its entry)."""
        found = decision_of_ticket(conn, ticket_id) or LabelledDecision(text=text, ticket_id=ticket_id)
        if entry_id is None or entry_id == found.faq_entry_id:
            return replace(found, score=found.score if score is None else score)
        return replace(found, faq_entry_id=entry_id, score=score)

    def _reply_label(self, ticket: TicketView, account: Account, body: str, kind: str) -> dict[str, Any] | None:
        """What this reply says about the bot: a draft approved unchanged or edited (with the edit distance), a
        suggestion sent, or a reply of the agent's own while the top suggestion was another entry (a negative
        for it). None for replies that are not answers (a move to DM)."""
        if kind != "agent_reply":
            return None
        sent = " ".join(body.split())
        if ticket.draft_pending and ticket.draft_reply:
            draft = " ".join(self.guide.signature_pattern.sub("", ticket.draft_reply).split())
            distance = edit_distance(draft, sent)
            return {"label": "approved" if distance == 0 else "edited", "entry": None, "score": None,
                    "edit_distance": distance}  # fmt: skip
        suggestions = self.suggestions(ticket.last_customer_text, account, seed=ticket.id)
        for suggestion in suggestions:
            inserted = " ".join(suggestion.insert_text.split())
            if inserted and (inserted in sent or edit_distance(inserted, sent) <= len(inserted) // 5):
                return {"label": "suggestion_sent", "entry": suggestion.entry_id, "score": suggestion.score,
                        "edit_distance": edit_distance(inserted, sent)}  # fmt: skip
        top = suggestions[0] if suggestions else None
        return {"label": "own_reply", "entry": top.entry_id if top else None, "score": top.score if top else None,
                "edit_distance": None}  # fmt: skip

    def _recent_replies(self, ticket: TicketView) -> list[str]:
        return [m.text for m in ticket.messages if m.direction == "out"]

    def reply(
        self, ticket_id: int, account: Account, body: str, *, channel: str | None = None, kind: str = "agent_reply"
    ) -> ToneReport:
        """Queue the agent's reply (signed by the server) to go out through the outbox, by DM or in public
        (`channel`; None: the ticket's default, by DM once the customer has written by DM).

        Refused with the tone violations when the check finds any; the ticket must be held by this agent.
        """
        if len(body) > MAX_REPLY_CHARS:
            raise ConsoleError(f"The reply is longer than {MAX_REPLY_CHARS} characters; a tweet has 280.")
        ticket = self.ticket(ticket_id)
        if not ticket.is_open:
            raise ConsoleError(f"Ticket {ticket_id} is {ticket.state.replace('_', ' ')}; it takes no reply.")
        if not ticket.held_by(account):
            raise ConsoleError("Claim the ticket before replying: nobody else should answer it at the same time.")
        channel = channel or ticket.reply_channels[0]
        if channel not in ticket.reply_channels:
            where = " or ".join("by DM" if c == "dm" else "in public" for c in ticket.reply_channels)
            raise ConsoleError(f"This ticket is answered {where}.")
        report = self.tone_check(body, account, recent_replies=self._recent_replies(ticket), dm=channel == "dm")
        if not report.ok:
            codes = [v.code for v in report.violations]
            self._call(lambda: self.handoff.record_refused_reply(ticket_id, account.username, violations=codes,
                                                                 channel=channel))  # fmt: skip
            raise ConsoleError("Not sent: " + " ".join(v.message for v in report.violations))
        label = self._reply_label(ticket, account, self.strip_own_signature(body, account), kind)
        self._queue_reply(ticket_id, account, report.text, channel=channel, kind=kind, label=label,
                          customer_text=ticket.last_customer_text)  # fmt: skip
        return report

    def approve_draft(self, ticket_id: int, account: Account) -> ToneReport:
        """Send the bot's drafted reply of an approve-band ticket, signed by the approving agent."""
        ticket = self.ticket(ticket_id)
        if not ticket.draft_reply:
            raise ConsoleError("This ticket has no draft to approve.")
        if not ticket.draft_pending:
            raise ConsoleError("The customer has had an answer since this draft was written; it was not sent again.")
        if not ticket.held_by(account) and ticket.holder_id is None:
            self.claim(ticket_id, account)
        body = self.guide.signature_pattern.sub("", ticket.draft_reply).strip()
        return self.reply(ticket_id, account, body)

    def dm_handover_text(self, ticket_id: int, account: Account) -> str:
        """The tone guide's words for moving to DM, in a wording none of our recent replies used (X refuses a
        text identical to a recent one, and an outage sends many of these)."""
        with self._transaction_for() as conn:
            recent = recent_reply_texts(conn)
        reply = compose_reply(
            "dm_handover", self._author(account), variant_seed=ticket_id, recent_replies=recent, guide=self.guide
        )
        return self.strip_own_signature(reply, account)

    def move_to_dm(self, ticket_id: int, account: Account) -> ToneReport:
        """Ask the customer, in public, to continue in a direct message (the tone guide's words)."""
        if self.ticket(ticket_id).source == "dm":
            raise ConsoleError("This conversation is already a direct message: there is nothing to move.")
        return self.reply(
            ticket_id, account, self.dm_handover_text(ticket_id, account), channel="public", kind="dm_handover"
        )

    def _queue_reply(
        self, ticket_id: int, account: Account, text: str, *, channel: str | None = None, kind: str = "agent_reply",
        label: dict[str, Any] | None = None, customer_text: str = "",
    ) -> None:
        """The one place a reply enters the outbox: bot.channel.replies.queue_agent_reply in one transaction
        (it re-checks the tone against recent replies, picks the tweet to answer, records the message and marks
        the ticket answered)."""
        agent = self._call(lambda: self.handoff.agent(self._agent_id(account)))
        try:
            with self._transaction_for() as conn:
                (self._reply_queue or queue_agent_reply)(
                    conn, self.handoff, ticket_id, agent, text, channel=channel, kind=kind
                )
                if label is not None:  # the reply and what it says about the bot are stored together
                    decision = self._labelled_decision(conn, ticket_id, label["entry"], label["score"], customer_text)
                    self.labels.record(
                        conn, label["label"], decision, actor=account.username, edit_distance=label["edit_distance"]
                    )
        except (HandoffError, ReplyError) as exc:
            raise ConsoleError(str(exc)) from exc
