"""The incident desk's service layer (pages and JSON API): one reply to every customer of an outage.

It composes handoff.incidents (the incident, its tickets and their rules) with the tone guide and the outbox. A
lead writes one update; every linked customer gets it in their own wording, because X refuses a text identical to a
recent one: the opening varies per ticket, it names the customer's @handle (when the handle is a plain X handle),
and it ends with the ticket's own reference `(ref ABCDE)` before the sender's signature (`^AB`, from the account's
roster agent). Each text is tone-checked with the same comparison with recent replies the rest of carebot uses
(bot.decision.tone.check over bot.channel.replies.recent_reply_texts and the texts of this batch). A template that
fails the tone check is refused with the reasons before anything is queued.

Each reply is queued in its own transaction with what it changes: an update (outbox kind `incident_update`) with
the ticket's first response; a closing reply (kind `incident_close`) with the ticket resolved. A ticket that cannot
take its reply now (our last reply in its thread is still being posted, say) is named and keeps its state; the
incident is resolved once none of its tickets is open, so resolving again finishes the rest. The sender paces the
outbox within X's posting limits.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from bot.channel.models import outbox
from bot.channel.replies import ReplyError, recent_reply_texts, reply_target
from bot.decision.tone import Author, RecentReplies, ToneGuide, Violation, check, default_guide, reference_code
from bot.web.accounts import Account
from bot.web.console import ConsoleError, NotFound
from handoff import HandoffError, TicketNotFound, transaction
from handoff.incidents import (
    MAX_TEMPLATE_CHARS,
    STOPWORDS,
    Incident,
    IncidentNotFound,
    Incidents,
    IncidentSummary,
    LinkedTicket,
    LinkResult,
    Suggestion,
    words_of,
)
from handoff.models import incident_tickets, messages, tickets
from handoff.states import OPEN_STATES
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

KINDS = {"update": "incident_update", "closing": "incident_close"}  # template kind → outbox kind
_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")  # what X allows in a handle; anything else is not echoed

# Openings, with the customer's handle and without. Each ticket tries them in its own order.
OPENINGS = {
    "update": (
        ("Hi @{handle}, an update:", "Hi, an update:"),
        ("Hello @{handle}, here's where things stand:", "Hello, here's where things stand:"),
        ("@{handle}, thanks for bearing with us.", "Thanks for bearing with us."),
        ("Thanks for your patience, @{handle}.", "Thanks for your patience."),
        ("Hi @{handle}, thanks for waiting.", "Hi, thanks for waiting."),
        ("An update for you, @{handle}:", "An update for you:"),
        ("@{handle}, sorry for the wait.", "Sorry for the wait."),
        ("Hi again @{handle}.", "Hi again."),
    ),
    "closing": (
        ("Good news, @{handle}:", "Good news:"),
        ("Hi @{handle}, good news:", "Hi, good news:"),
        ("@{handle}, thanks for your patience:", "Thanks for your patience:"),
        ("Hello @{handle}, to close this off:", "Hello, to close this off:"),
        ("Thanks for bearing with us, @{handle}.", "Thanks for bearing with us."),
        ("@{handle}, an update to finish:", "An update to finish:"),
        ("Hi again @{handle}, all sorted:", "Hi again, all sorted:"),
        ("@{handle}, thanks for waiting.", "Thanks for waiting."),
    ),
}
REFERENCE_ROOM = weighted_length(" (ref ABCDE)")
SURGE_WORDS = 4  # words offered as keywords when an incident is started from the lead page's surge box
SURGE_WINDOW = timedelta(hours=2)


class IncidentError(ConsoleError):
    """The incident action cannot be done; the message says why, in words a lead reads."""


class IncidentMissing(NotFound):
    """There is no such incident."""


@dataclass(frozen=True)
class SendReport:
    """What one update or closing did: the replies queued (ticket id → text) and the tickets that got none."""

    kind: str  # update | closing
    queued: dict[int, str] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)
    resolved: bool = False  # closing: the incident is resolved (none of its tickets is open)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "queued": [{"ticket_id": t, "text": text} for t, text in self.queued.items()],
            "refused": [{"ticket_id": t, "reason": why} for t, why in self.refused.items()],
            "resolved": self.resolved,
        }  # fmt: skip

    def message(self) -> str:
        what = "update" if self.kind == "update" else "closing reply"
        text = f"{len(self.queued)} {what}{'' if len(self.queued) == 1 else 's'} queued, each worded for its customer."
        if self.kind == "closing":
            text += " The incident is resolved." if self.resolved else " The incident stays open."
        if self.refused:
            text += " Not sent: " + " ".join(f"#{t}: {why}" for t, why in list(self.refused.items())[:10])
            if len(self.refused) > 10:
                text += f" (and {len(self.refused) - 10} more)"
        return text


@dataclass(frozen=True)
class TemplateReport:
    """The tone check of a template, and how it would read for a few of the incident's customers."""

    kind: str
    ok: bool
    violations: list[Violation]
    samples: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": self.ok, "violations": [v.to_dict() for v in self.violations],
                "samples": self.samples}  # fmt: skip


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    tickets: list[LinkedTicket]
    suggestions: list[Suggestion]
    shared_words: tuple[str, ...]
    audit: list[Any]

    @property
    def open_tickets(self) -> int:
        return sum(1 for t in self.tickets if t.ticket.is_open)

    def to_dict(self) -> dict[str, Any]:
        return {
            **incident_dict(self.incident), "open_tickets": self.open_tickets,
            "tickets": [
                {"id": t.ticket.id, "state": t.ticket.state, "customer_handle": t.ticket.customer_handle,
                 "customer_text": t.customer_text, "linked_by": t.linked_by, "linked_at": t.linked_at.isoformat(),
                 "first_response_at": t.ticket.first_response_at.isoformat() if t.ticket.first_response_at else None}
                for t in self.tickets
            ],
            "suggestions": [suggestion_dict(s) for s in self.suggestions], "shared_words": list(self.shared_words),
        }  # fmt: skip


def incident_dict(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id, "title": incident.title, "state": incident.state, "status_note": incident.status_note,
        "keywords": list(incident.keywords), "reply_template": incident.reply_template,
        "closing_template": incident.closing_template, "created_by": incident.created_by,
        "created_at": incident.created_at.isoformat(), "updated_at": incident.updated_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
    }  # fmt: skip


def summary_dict(summary: IncidentSummary) -> dict[str, Any]:
    return {**incident_dict(summary.incident), "tickets": summary.tickets, "open_tickets": summary.open_tickets}


def suggestion_dict(suggestion: Suggestion) -> dict[str, Any]:
    t = suggestion.ticket
    return {
        "ticket_id": t.id, "state": t.state, "customer_handle": t.customer_handle,
        "customer_text": suggestion.customer_text, "keywords": list(suggestion.keywords),
        "shared": list(suggestion.shared), "created_at": t.created_at.isoformat(),
    }  # fmt: skip


def _order(seed: str, count: int) -> list[int]:
    """0 … count-1 in an order fixed by the seed: each ticket starts with its own opening."""
    keyed = [(hashlib.sha256(f"{seed}:{n}".encode()).digest(), n) for n in range(count)]
    return [n for _, n in sorted(keyed)]


def usable_handle(handle: str | None) -> str | None:
    """The customer's handle when it is a plain X handle (letters, digits, underscore, at most 15)."""
    return handle if handle and _HANDLE.fullmatch(handle) else None


def compose_incident_reply(
    kind: str, template: str, *, ticket_id: int, handle: str | None, author: Author, recent: RecentReplies,
    guide: ToneGuide,
) -> tuple[str | None, list[Violation]]:  # fmt: skip
    """The first wording for this ticket that passes the tone check against `recent`: an opening (with the
    customer's @handle when it is usable), the template, the ticket's reference and the signature. Returns the
    text, or None with the violations of the last wording tried."""
    signature = guide.signature(author)
    reference = f"(ref {reference_code(f'ticket-{ticket_id}')})"
    body = " ".join(template.split())
    handle = usable_handle(handle)
    openings = OPENINGS[kind]
    candidates: list[str] = []
    for n in _order(f"{kind}:{ticket_id}", len(openings)):
        with_handle, plain = openings[n]
        if handle:
            candidates.append(with_handle.format(handle=handle))
        candidates.append(plain)
    candidates.append("")
    last: list[Violation] = []
    for opening in candidates:
        text = " ".join(part for part in (opening, body, reference, signature) if part)
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            continue
        last = check(text, author, recent_replies=recent, guide=guide)
        if not last:
            return text, []
    return None, last or [Violation("too_long", "It does not fit in a tweet with the reference and signature.")]


class IncidentDesk:
    def __init__(
        self, handoff: Any, engine: Engine, *, guide: ToneGuide | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:  # fmt: skip
        self.handoff = handoff
        self.engine = engine
        self.incidents = Incidents(engine, clock=clock)
        self.guide = guide or default_guide()
        self.clock = clock

    # ------------------------------------------------ helpers
    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (IncidentNotFound, TicketNotFound) as exc:
            raise IncidentMissing(str(exc)) from exc
        except HandoffError as exc:
            raise IncidentError(str(exc)) from exc

    def _sender(self, account: Account) -> tuple[Any, Author]:
        """The roster agent and signature of who sends: incident replies are signed like any agent's."""
        if account.agent_id is None or not account.initials:
            raise IncidentError(
                "Your account has no place on the roster or no initials, so it cannot sign replies. Ask a lead to "
                "add you with `carebot users add … --initials`."
            )
        agent = self._call(lambda: self.handoff.agent(account.agent_id))
        return agent, Author.agent(agent.initials)

    # ------------------------------------------------ reading
    def overview(self, *, state: str | None = None) -> list[IncidentSummary]:
        result: list[IncidentSummary] = self._call(lambda: self.incidents.overview(state=state))
        return result

    def view(self, incident_id: int, *, suggestions: bool = True) -> IncidentView:
        incident = self._call(lambda: self.incidents.get(incident_id))
        return IncidentView(
            incident=incident, tickets=self.incidents.tickets(incident_id),
            suggestions=self.incidents.suggestions(incident_id) if suggestions and incident.is_open else [],
            shared_words=self.incidents.shared_words(incident_id), audit=self.incidents.audit(incident_id, limit=50),
        )  # fmt: skip

    def suggestions(self, incident_id: int) -> list[Suggestion]:
        result: list[Suggestion] = self._call(lambda: self.incidents.suggestions(incident_id))
        return result

    def surge_words(self, *, limit: int = SURGE_WORDS) -> list[str]:
        """The words most open tickets from the last two hours share that are in no incident: keywords offered
        when a lead starts an incident from the surge box."""
        since = self.clock() - SURGE_WINDOW
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(tickets.c.id)
                    .where(tickets.c.state.in_(OPEN_STATES), tickets.c.created_at >= since,
                           tickets.c.id.not_in(select(incident_tickets.c.ticket_id)))
                    .order_by(tickets.c.id.desc()).limit(300)
                ).scalars()
            )  # fmt: skip
            texts: dict[int, set[str]] = {}
            if ids:
                for ticket_id, text in conn.execute(
                    select(messages.c.ticket_id, messages.c.text).where(
                        messages.c.ticket_id.in_(ids), messages.c.direction == "in"
                    )
                ):
                    texts.setdefault(ticket_id, set()).update(
                        w for w in words_of(text[:1000]) if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()
                    )
        counts: Counter[str] = Counter(w for words in texts.values() for w in words)
        needed = max(3, len(texts) // 4)
        return [w for w, n in counts.most_common(limit) if n >= needed]

    # ------------------------------------------------ changes
    def create(
        self, account: Account, title: str, *, status_note: str = "", keywords: str | Iterable[str] = ()
    ) -> Incident:
        incident: Incident = self._call(
            lambda: self.incidents.create(title, status_note=status_note, keywords=keywords, by=account.username)
        )
        return incident

    def edit(
        self, incident_id: int, account: Account, *, status_note: str | None = None,
        keywords: str | Iterable[str] | None = None, title: str | None = None,
    ) -> Incident:  # fmt: skip
        incident: Incident = self._call(
            lambda: self.incidents.edit(
                incident_id, by=account.username, status_note=status_note, keywords=keywords, title=title
            )
        )
        return incident

    def link(self, incident_id: int, account: Account, ticket_ids: Iterable[int]) -> LinkResult:
        result: LinkResult = self._call(lambda: self.incidents.link(incident_id, ticket_ids, by=account.username))
        return result

    def unlink(self, incident_id: int, account: Account, ticket_id: int) -> None:
        self._call(lambda: self.incidents.unlink(incident_id, ticket_id, by=account.username))

    # ------------------------------------------------ templates and replies
    def check_template(self, incident_id: int, account: Account, kind: str, template: str) -> TemplateReport:
        """The tone check of the template as every reply would carry it, and three of the incident's wordings."""
        if kind not in KINDS:
            raise IncidentError(f"A template is an update or a closing, not {kind!r}.")
        _, author = self._sender(account)
        violations = self._template_violations(template, author)
        samples: list[str] = []
        if not violations:
            linked = [t for t in self._call(lambda: self.incidents.tickets(incident_id)) if t.ticket.is_open][:3]
            recent = RecentReplies((), self.guide)
            for item in linked:
                text, _ = compose_incident_reply(
                    kind, template, ticket_id=item.ticket.id, handle=item.ticket.customer_handle, author=author,
                    recent=recent, guide=self.guide,
                )  # fmt: skip
                if text:
                    samples.append(text)
                    recent.add(text)
        return TemplateReport(kind, not violations, violations, samples)

    def _template_violations(self, template: str, author: Author) -> list[Violation]:
        if not isinstance(template, str) or not template.strip():
            return [Violation("empty", "Write the message every linked customer gets.")]
        if len(template) > MAX_TEMPLATE_CHARS:
            return [Violation("too_long", f"It is {len(template)} characters; a tweet has 280.")]
        body = " ".join(template.split())
        signature = self.guide.signature(author)
        violations = [v for v in check(f"{body} {signature}", author, guide=self.guide) if v.code != "too_long"]
        room = MAX_WEIGHTED_LENGTH - REFERENCE_ROOM - weighted_length(f" {signature}")
        length = weighted_length(body)
        if length > room:
            violations.append(Violation(
                "too_long", f"It is {length} characters as X counts them; with the ticket's reference and your "
                f"signature every reply carries, it may have {room}.",
            ))  # fmt: skip
        return violations

    def send_update(self, incident_id: int, account: Account, template: str) -> SendReport:
        """The update to every open linked ticket, each in its own wording (refused whole when the template
        fails the tone check)."""
        report = self._send(incident_id, account, "update", template)
        self._call(lambda: self.incidents.record_template(
            incident_id, "update", template, by=account.username, tickets_sent=len(report.queued)
        ))  # fmt: skip
        return report

    def resolve(self, incident_id: int, account: Account, template: str) -> SendReport:
        """A closing public reply under each open linked ticket's thread, each resolving its ticket in the same
        transaction; then the incident is resolved, when none of its tickets is open any more."""
        report = self._send(incident_id, account, "closing", template)
        self._call(lambda: self.incidents.record_template(
            incident_id, "closing", template, by=account.username, tickets_sent=len(report.queued)
        ))  # fmt: skip
        if report.refused:
            return report
        try:
            self.incidents.finish(incident_id, by=account.username)
        except HandoffError:  # a ticket was linked or reopened meanwhile: resolving again finishes it
            return SendReport("closing", report.queued, {}, resolved=False)
        return SendReport("closing", report.queued, {}, resolved=True)

    def _send(self, incident_id: int, account: Account, kind: str, template: str) -> SendReport:
        agent, author = self._sender(account)
        incident = self._call(lambda: self.incidents.get(incident_id))
        if not incident.is_open:
            raise IncidentError(f"Incident {incident_id} is resolved already.")
        violations = self._template_violations(template, author)
        if violations:
            raise IncidentError("Not sent: " + " ".join(v.message for v in violations))
        queued: dict[int, str] = {}
        refused: dict[int, str] = {}
        for ticket_id in self.incidents.open_ticket_ids(incident_id):
            try:
                with transaction(self.engine) as conn:
                    text = self._queue_one(conn, incident_id, ticket_id, kind, template, agent, author, queued)
            except (HandoffError, ReplyError) as exc:
                refused[ticket_id] = str(exc)
                continue
            queued[ticket_id] = text
        return SendReport(kind, queued, refused)

    def _queue_one(
        self, conn: Connection, incident_id: int, ticket_id: int, kind: str, template: str, agent: Any,
        author: Author, batch: dict[int, str],
    ) -> str:  # fmt: skip
        """One reply in the caller's transaction: composed, tone-checked, queued, recorded, and its ticket changed."""
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketNotFound(f"There is no ticket {ticket_id}.")
        recent = RecentReplies([*recent_reply_texts(conn), *batch.values()], self.guide)
        text, problems = compose_incident_reply(
            kind, template, ticket_id=ticket_id, handle=row.customer_handle, author=author, recent=recent,
            guide=self.guide,
        )  # fmt: skip
        if text is None:
            raise ReplyError(" ".join(p.message for p in problems))
        target = reply_target(conn, row.conversation_id, dm=row.source == "dm", ticket_id=ticket_id)
        now = self.clock()
        try:
            with conn.begin_nested():
                outbox_id = conn.execute(
                    insert(outbox).values(
                        target_tweet_id=target, conversation_id=row.conversation_id, kind=KINDS[kind],
                        author=agent.initials, text=text, state="pending", attempts=0, ticket_id=ticket_id,
                        created_at=now, updated_at=now,
                    ).returning(outbox.c.id)
                ).scalar_one()  # fmt: skip
        except IntegrityError as exc:
            raise ReplyError("Someone else has just replied to this tweet; send again to reach this customer.") from exc
        self.handoff.record_outbound(conn, ticket_id, author=agent.initials, text=text, outbox_id=outbox_id,
                                     kind=KINDS[kind])  # fmt: skip
        if kind == "update":
            self.incidents.mark_replied(conn, incident_id, ticket_id, by=agent.username)
        else:
            self.incidents.resolve_ticket(conn, incident_id, ticket_id, by=agent.username,
                                          agent_id=agent.id)  # fmt: skip
        return text

    def outbox_counts(self, incident_id: int) -> dict[str, int]:
        """The incident's replies by outbox state (pending, sending, sent, failed, unknown)."""
        ids = select(incident_tickets.c.ticket_id).where(incident_tickets.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox.c.state, func.count())
                .where(outbox.c.ticket_id.in_(ids), outbox.c.kind.in_(list(KINDS.values())))
                .group_by(outbox.c.state)
            ).all()
        return {state: int(count) for state, count in rows}
