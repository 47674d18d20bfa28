"""Incidents: during an outage a lead handles one incident ("Fibre outage, Leeds") instead of many tickets.

An incident has a title, a status note the lead keeps current, and keywords that offer similar new tickets for
linking. A ticket is in one incident at most. The replies to the linked customers are composed and queued by the
bot side (bot/web/incidents.py); this module keeps the incident's rows and the rules for its tickets, each change
in the audit log (handoff_audit_events, incident events with `incident_id` in their details):

- `mark_replied`: an incident update was queued for a linked ticket: the customer no longer waits (the first
  response is set once); the ticket keeps its state and holder;
- `resolve_ticket`: the ticket is resolved with its incident (the state machine's `resolve_incident`, from any open
  state, whoever holds it), in the caller's transaction with its closing reply;
- `finish`: the incident is resolved once none of its tickets is open any more.

Ticket changes are conditional UPDATEs on the version they were read in, like handoff.service.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from handoff import states as sm
from handoff.errors import Conflict, HandoffError, InvalidInput, TicketNotFound
from handoff.models import audit_events, incident_tickets, incidents, messages, tickets
from handoff.service import Ticket, _ticket, _utc, _utc_or_none

__all__ = [
    "Incident", "IncidentNotFound", "IncidentSummary", "Incidents", "LinkResult", "LinkedTicket", "Suggestion",
    "keyword_list", "words_of",
]  # fmt: skip

MAX_TITLE = 120
MAX_NOTE = 2000
MAX_KEYWORDS = 20
MAX_KEYWORD_CHARS = 40
MAX_TEMPLATE_CHARS = 1000
MAX_LINK = 500  # tickets one link request may name
SUGGESTION_SCAN = 2000  # open tickets looked at for suggestions, newest first
LINKABLE_SOURCES = ("mention",)  # incident replies go in public, to tweets addressed to us
MIN_SHARED_TICKETS = 2  # a word the linked tickets share appears in at least this many of them…
SHARED_SHARE = 0.5  # …and in at least this share of them
MAX_SHARED_WORDS = 8

# Words too common to say anything about an outage.
STOPWORDS = frozenset(
    """a about after again all also am an and any are as at be been but by can cant could did do does dont for from
    get got had has have hi how i im is it its ive just kestrel kestrelcare me my no not now of on or our out please
    so still than that the their them then there they this to too up us was we were what when where why will with
    you your yours since today hello hey day days hours hour""".split()
)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Clock = Callable[[], datetime]


class IncidentNotFound(HandoffError):
    """There is no such incident."""


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    state: str  # open | resolved
    status_note: str
    keywords: tuple[str, ...]
    reply_template: str | None  # the latest update sent to every linked customer
    closing_template: str | None  # the public reply under each thread when it was resolved
    created_by: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state == "open"


@dataclass(frozen=True)
class IncidentSummary:
    incident: Incident
    tickets: int  # linked
    open_tickets: int  # linked and still open


@dataclass(frozen=True)
class LinkedTicket:
    ticket: Ticket
    linked_by: str
    linked_at: datetime
    customer_text: str  # the customer's latest message


@dataclass(frozen=True)
class Suggestion:
    """An open ticket in no incident whose customer's words match the incident's."""

    ticket: Ticket
    customer_text: str  # the customer's latest message
    keywords: tuple[str, ...]  # the incident's keywords it contains
    shared: tuple[str, ...]  # the words the linked tickets share that it contains

    @property
    def score(self) -> int:
        return 2 * len(self.keywords) + len(self.shared)


@dataclass(frozen=True)
class LinkResult:
    linked: list[int]
    refused: dict[int, str]  # ticket id → why it was not linked


# ---------------------------------------------------------------------------------------------- words
def words_of(text: str) -> list[str]:
    """The words of a text for matching: NFKC, case-folded, letters and digits (apostrophes inside words kept)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [word.replace("’", "'") for word in _WORD.findall(folded)]


def keyword_list(values: Iterable[str] | str) -> tuple[str, ...]:
    """Keywords from a list, or from one text separated by commas or new lines; checked and without repeats."""
    if isinstance(values, str):
        values = re.split(r"[,\n]", values)
    found: dict[str, str] = {}
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput("keywords must be texts")
        keyword = " ".join(value.split())
        if not keyword:
            continue
        if _CONTROL.search(keyword) or _hidden(keyword):
            raise InvalidInput("a keyword may not contain control or invisible formatting characters")
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise InvalidInput(f"the keyword {keyword[:20]!r}… is longer than {MAX_KEYWORD_CHARS} characters")
        if not words_of(keyword):
            raise InvalidInput(f"the keyword {keyword!r} has no letters or digits")
        found.setdefault(" ".join(words_of(keyword)), keyword)
    if len(found) > MAX_KEYWORDS:
        raise InvalidInput(f"at most {MAX_KEYWORDS} keywords, not {len(found)}")
    return tuple(found.values())


def _word_matches(keyword_word: str, word: str) -> bool:
    # "outage" finds "outages"; short words ("LS6", "4g") only whole.
    return word == keyword_word or (len(keyword_word) >= 4 and word.startswith(keyword_word))


def _contains(words: Sequence[str], keyword: str) -> bool:
    """Whether the words contain the keyword's words one after another."""
    wanted = words_of(keyword)
    if not wanted:
        return False
    for start in range(len(words) - len(wanted) + 1):
        if all(_word_matches(w, words[start + i]) for i, w in enumerate(wanted)):
            return True
    return False


def _text(name: str, value: object, *, limit: int, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"the {name} must be a text")
    value = value.strip()
    if not value and not empty:
        raise InvalidInput(f"the {name} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"the {name} is {len(value)} characters long; at most {limit} are allowed")
    if _CONTROL.search(value.replace("\n", "").replace("\t", "").replace("\r", "")) or _hidden(value):
        raise InvalidInput(f"the {name} may not contain control or invisible formatting characters")
    return value


def _hidden(value: str) -> bool:
    """Invisible formatting (bidi controls, zero-width characters): they would hide or reorder the text."""
    return any(unicodedata.category(char) == "Cf" and char != "\u200d" for char in value)


def _incident(row: Row[Any]) -> Incident:
    return Incident(
        id=row.id, title=row.title, state=row.state, status_note=row.status_note, keywords=tuple(row.keywords or ()),
        reply_template=row.reply_template, closing_template=row.closing_template, created_by=row.created_by,
        created_at=_utc(row.created_at), updated_at=_utc(row.updated_at), resolved_at=_utc_or_none(row.resolved_at),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- the service
class Incidents:
    def __init__(self, engine: Engine, *, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> Engine:
        return self._engine

    def _now(self) -> datetime:
        return _utc(self._clock())

    # ------------------------------------------------------------------ the incident itself
    def create(self, title: str, *, status_note: str = "", keywords: Iterable[str] | str = (), by: str) -> Incident:
        """Open an incident (audited)."""
        title = _text("title", title, limit=MAX_TITLE)
        status_note = _text("status note", status_note, limit=MAX_NOTE, empty=True)
        words = keyword_list(keywords)
        by = _text("actor", by, limit=64)
        now = self._now()
        with self._engine.begin() as conn:
            incident_id = conn.execute(
                insert(incidents).values(
                    title=title, state="open", status_note=status_note, keywords=list(words), created_by=by,
                    created_at=now, updated_at=now,
                ).returning(incidents.c.id)
            ).scalar_one()  # fmt: skip
            self._audit(conn, by, "incident_created", None, incident_id, {"title": title, "keywords": list(words)})
            return self._get(conn, incident_id)

    def get(self, incident_id: int) -> Incident:
        with self._engine.connect() as conn:
            return self._get(conn, incident_id)

    def overview(self, *, state: str | None = None, limit: int = 100) -> list[IncidentSummary]:
        """Incidents newest first (open ones first), with how many tickets each has and how many are open."""
        if state is not None and state not in ("open", "resolved"):
            raise InvalidInput(f"an incident is open or resolved, not {state!r}")
        counts = (
            select(
                incident_tickets.c.incident_id,
                func.count().label("linked"),
                func.count().filter(tickets.c.state.in_(sm.OPEN_STATES)).label("open"),
            )
            .join(tickets, tickets.c.id == incident_tickets.c.ticket_id)
            .group_by(incident_tickets.c.incident_id)
            .subquery()
        )
        query = select(incidents, func.coalesce(counts.c.linked, 0).label("linked"),
                       func.coalesce(counts.c.open, 0).label("open_linked")).select_from(
            incidents.outerjoin(counts, counts.c.incident_id == incidents.c.id)
        )  # fmt: skip
        if state is not None:
            query = query.where(incidents.c.state == state)
        query = query.order_by((incidents.c.state == "open").desc(), incidents.c.created_at.desc(), incidents.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(max(1, min(limit, 1000)))).all()
        return [IncidentSummary(_incident(row), int(row.linked), int(row.open_linked)) for row in rows]

    def edit(
        self, incident_id: int, *, by: str, status_note: str | None = None, keywords: Iterable[str] | str | None = None,
        title: str | None = None,
    ) -> Incident:  # fmt: skip
        """Change the status note, the keywords or the title; each change audited with before and after."""
        by = _text("actor", by, limit=64)
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = _text("title", title, limit=MAX_TITLE)
        if status_note is not None:
            values["status_note"] = _text("status note", status_note, limit=MAX_NOTE, empty=True)
        if keywords is not None:
            values["keywords"] = list(keyword_list(keywords))
        with self._engine.begin() as conn:
            row = self._row(conn, incident_id, lock=True)
            changed = {name: value for name, value in values.items() if getattr(row, name) != value}
            if not changed:
                return _incident(row)
            conn.execute(
                update(incidents).where(incidents.c.id == incident_id).values(**changed, updated_at=self._now())
            )
            for name, value in changed.items():
                action = {"status_note": "incident_note_changed", "keywords": "incident_keywords_changed",
                          "title": "incident_title_changed"}[name]  # fmt: skip
                self._audit(conn, by, action, None, incident_id, {"from": getattr(row, name), "to": value})
            return self._get(conn, incident_id)

    def record_template(self, incident_id: int, kind: str, template: str, *, by: str, tickets_sent: int) -> Incident:
        """Keep the update (kind "update") or closing (kind "closing") template just sent, audited with how many
        tickets it went to."""
        if kind not in ("update", "closing"):
            raise InvalidInput(f"a template is an update or a closing, not {kind!r}")
        template = _text("template", template, limit=MAX_TEMPLATE_CHARS)
        column = "reply_template" if kind == "update" else "closing_template"
        with self._engine.begin() as conn:
            self._row(conn, incident_id, lock=True)
            conn.execute(
                update(incidents)
                .where(incidents.c.id == incident_id)
                .values({column: template, "updated_at": self._now()})
            )
            action = "incident_update_sent" if kind == "update" else "incident_closing_sent"
            self._audit(conn, by, action, None, incident_id, {"template": template, "tickets": tickets_sent})
            return self._get(conn, incident_id)

    # ------------------------------------------------------------------ tickets
    def tickets(self, incident_id: int) -> list[LinkedTicket]:
        """The incident's tickets in the order they were linked, with the customer's latest message."""
        with self._engine.connect() as conn:
            self._row(conn, incident_id)
            rows = conn.execute(
                select(tickets, incident_tickets.c.linked_by, incident_tickets.c.linked_at)
                .join(incident_tickets, incident_tickets.c.ticket_id == tickets.c.id)
                .where(incident_tickets.c.incident_id == incident_id)
                .order_by(incident_tickets.c.linked_at, tickets.c.id)
            ).all()
            latest = self._latest_customer_texts(conn, [row.id for row in rows])
        return [LinkedTicket(_ticket(row), row.linked_by, _utc(row.linked_at), latest.get(row.id, "")) for row in rows]

    def open_ticket_ids(self, incident_id: int) -> list[int]:
        with self._engine.connect() as conn:
            self._row(conn, incident_id)
            return list(
                conn.execute(
                    select(tickets.c.id)
                    .join(incident_tickets, incident_tickets.c.ticket_id == tickets.c.id)
                    .where(incident_tickets.c.incident_id == incident_id, tickets.c.state.in_(sm.OPEN_STATES))
                    .order_by(incident_tickets.c.linked_at, tickets.c.id)
                ).scalars()
            )

    def incident_of(self, ticket_id: int) -> Incident | None:
        """The incident the ticket is linked to, if any."""
        with self._engine.connect() as conn:
            incident_id = conn.execute(
                select(incident_tickets.c.incident_id).where(incident_tickets.c.ticket_id == ticket_id)
            ).scalar()
            return None if incident_id is None else self._get(conn, incident_id)

    def link(self, incident_id: int, ticket_ids: Iterable[int], *, by: str) -> LinkResult:
        """Link open tickets from mentions to the open incident; each link audited on its ticket. A ticket that
        cannot be linked (closed, a DM or search hit, in another incident) is named with the reason."""
        by = _text("actor", by, limit=64)
        wanted = list(dict.fromkeys(ticket_ids))
        if len(wanted) > MAX_LINK:
            raise InvalidInput(f"at most {MAX_LINK} tickets at once, not {len(wanted)}")
        linked: list[int] = []
        refused: dict[int, str] = {}
        with self._engine.begin() as conn:
            incident = self._row(conn, incident_id, lock=True)
            if incident.state != "open":
                raise Conflict(f"Incident {incident_id} is resolved: it takes no more tickets.")
            for ticket_id in wanted:
                row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
                if row is None:
                    refused[ticket_id] = f"There is no ticket {ticket_id}."
                    continue
                reason = self._unlinkable(conn, row, incident_id)
                if reason:
                    refused[ticket_id] = reason
                    continue
                try:
                    with conn.begin_nested():  # a link racing ours must not undo the others
                        conn.execute(
                            insert(incident_tickets).values(
                                incident_id=incident_id, ticket_id=ticket_id, linked_by=by, linked_at=self._now()
                            )
                        )
                except IntegrityError:
                    refused[ticket_id] = f"Ticket {ticket_id} was linked to an incident by somebody else just now."
                    continue
                self._audit(conn, by, "incident_linked", ticket_id, incident_id, {"title": incident.title})
                linked.append(ticket_id)
            if linked:
                conn.execute(update(incidents).where(incidents.c.id == incident_id).values(updated_at=self._now()))
        return LinkResult(linked, refused)

    def _unlinkable(self, conn: Connection, row: Row[Any], incident_id: int) -> str | None:
        if row.state not in sm.OPEN_STATES:
            return f"Ticket {row.id} is {sm.STATE_WORDS[row.state]}: only open tickets join an incident."
        if row.source not in LINKABLE_SOURCES:
            where = "a direct message" if row.source == "dm" else "a keyword-search hit"
            return (f"Ticket {row.id} is {where}: incident replies go in public, only to tweets addressed to us. "
                    "Answer it on its own page.")  # fmt: skip
        other = conn.execute(
            select(incident_tickets.c.incident_id).where(incident_tickets.c.ticket_id == row.id)
        ).scalar()
        if other is not None:
            if other == incident_id:
                return f"Ticket {row.id} is in this incident already."
            return f"Ticket {row.id} is in incident {other} already: unlink it there first."
        return None

    def unlink(self, incident_id: int, ticket_id: int, *, by: str) -> None:
        """Take a ticket out of the incident (audited on the ticket); the ticket itself is unchanged."""
        by = _text("actor", by, limit=64)
        with self._engine.begin() as conn:
            incident = self._row(conn, incident_id, lock=True)
            if incident.state != "open":
                raise Conflict(f"Incident {incident_id} is resolved: its tickets stay with it.")
            gone = conn.execute(
                delete(incident_tickets).where(
                    incident_tickets.c.incident_id == incident_id, incident_tickets.c.ticket_id == ticket_id
                )
            ).rowcount
            if gone != 1:
                raise Conflict(f"Ticket {ticket_id} is not in incident {incident_id}.")
            self._audit(conn, by, "incident_unlinked", ticket_id, incident_id, {"title": incident.title})

    # ------------------------------------------------------------------ suggestions
    def shared_words(self, incident_id: int) -> tuple[str, ...]:
        """The words most of the linked tickets' customers used (at least two tickets and half of them), most
        common first, without the incident's own keywords and common words."""
        with self._engine.connect() as conn:
            incident = self._get(conn, incident_id)
            linked = list(
                conn.execute(
                    select(incident_tickets.c.ticket_id).where(incident_tickets.c.incident_id == incident_id)
                ).scalars()
            )
            texts = self._customer_texts(conn, linked)
        return self._shared(incident, texts)

    def _shared(self, incident: Incident, texts: dict[int, str]) -> tuple[str, ...]:
        if len(texts) < MIN_SHARED_TICKETS:
            return ()
        keyword_words = {w for keyword in incident.keywords for w in words_of(keyword)}
        counts: Counter[str] = Counter()
        for text in texts.values():
            counts.update({w for w in words_of(text) if len(w) >= 3 and w not in STOPWORDS and not w.isdigit()})
        needed = max(MIN_SHARED_TICKETS, int(len(texts) * SHARED_SHARE + 0.999))
        shared = [w for w, n in counts.most_common() if n >= needed and w not in keyword_words]
        return tuple(shared[:MAX_SHARED_WORDS])

    def suggestions(self, incident_id: int, *, limit: int = 200) -> list[Suggestion]:
        """Open tickets from mentions, in no incident, whose customer's words contain one of the incident's
        keywords, or two of the words its linked tickets share; best matches first, then newest."""
        with self._engine.connect() as conn:
            incident = self._get(conn, incident_id)
            if not incident.is_open:
                return []
            linked = list(
                conn.execute(
                    select(incident_tickets.c.ticket_id).where(incident_tickets.c.incident_id == incident_id)
                ).scalars()
            )
            shared = self._shared(incident, self._customer_texts(conn, linked))
            if not incident.keywords and not shared:
                return []
            in_any = select(incident_tickets.c.ticket_id)
            rows = conn.execute(
                select(tickets)
                .where(tickets.c.state.in_(sm.OPEN_STATES), tickets.c.source.in_(LINKABLE_SOURCES),
                       tickets.c.id.not_in(in_any))
                .order_by(tickets.c.created_at.desc(), tickets.c.id.desc())
                .limit(SUGGESTION_SCAN)
            ).all()  # fmt: skip
            texts = self._customer_texts(conn, [row.id for row in rows])
            latest = self._latest_customer_texts(conn, [row.id for row in rows])
        found = []
        for row in rows:
            words = words_of(texts.get(row.id, ""))
            keywords = tuple(k for k in incident.keywords if _contains(words, k))
            common = tuple(w for w in shared if _contains(words, w))
            if keywords or len(common) >= 2:
                found.append(Suggestion(_ticket(row), latest.get(row.id, ""), keywords, common))
        found.sort(key=lambda s: -s.score)  # stable: newest first among equals
        return found[:limit]

    # ------------------------------------------------------------------ replies and resolving (caller's transaction)
    def mark_replied(self, conn: Connection, incident_id: int, ticket_id: int, *, by: str) -> Ticket:
        """An incident update was queued for the linked open ticket: the customer no longer waits and the first
        response is set once; state and holder stay. In the caller's transaction, with the reply."""
        row = self._linked_row(conn, incident_id, ticket_id)
        if row.state not in sm.OPEN_STATES:
            raise Conflict(f"Ticket {ticket_id} is {sm.STATE_WORDS[row.state]}: it takes no incident update.")
        now = self._now()
        first = row.first_response_at if row.first_response_at is not None else now
        changed = conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket_id, tickets.c.version == row.version)
            .values(first_response_at=first, waiting_since=None, updated_at=now, version=row.version + 1)
        ).rowcount
        if changed != 1:
            raise Conflict(f"Ticket {ticket_id} was changed by somebody else just now; send the update again.")
        return _ticket(conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one())

    def resolve_ticket(
        self, conn: Connection, incident_id: int, ticket_id: int, *, by: str, agent_id: int | None = None
    ) -> Ticket:
        """Resolve the linked open ticket with its incident (from any open state, whoever holds it), in the caller's
        transaction with its closing reply. `agent_id`: the roster agent of who resolves it (kept as the closer of
        a ticket nobody held)."""
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
        if row is None:
            raise TicketNotFound(f"There is no ticket {ticket_id}.")
        to_state = sm.next_state("resolve_incident", row.state)
        if to_state is None:
            raise Conflict(sm.refusal("resolve_incident", row.state, ticket_id))
        self._linked_row(conn, incident_id, ticket_id)
        now = self._now()
        closer = row.agent_id if row.state in sm.HELD_STATES or agent_id is None else agent_id
        changed = conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket_id, tickets.c.version == row.version)
            .values(state=to_state, agent_id=closer, resolved_at=now, waiting_since=None, updated_at=now,
                    version=row.version + 1)
        ).rowcount  # fmt: skip
        if changed != 1:
            raise Conflict(f"Ticket {ticket_id} was changed by somebody else just now; resolve the incident again.")
        self._audit(conn, by, "resolved", ticket_id, incident_id, {"from": row.state, "to": to_state})
        return _ticket(conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one())

    def finish(self, incident_id: int, *, by: str) -> Incident:
        """Mark the incident resolved once none of its tickets is open (audited). Resolving it again changes
        nothing."""
        by = _text("actor", by, limit=64)
        with self._engine.begin() as conn:
            row = self._row(conn, incident_id, lock=True)
            if row.state == "resolved":
                return _incident(row)
            still_open = conn.execute(
                select(func.count())
                .select_from(incident_tickets.join(tickets, tickets.c.id == incident_tickets.c.ticket_id))
                .where(incident_tickets.c.incident_id == incident_id, tickets.c.state.in_(sm.OPEN_STATES))
            ).scalar_one()
            if still_open:
                raise Conflict(f"Incident {incident_id} still has {still_open} open ticket(s); it stays open.")
            now = self._now()
            conn.execute(
                update(incidents).where(incidents.c.id == incident_id).values(state="resolved", resolved_at=now,
                                                                              updated_at=now)
            )  # fmt: skip
            linked = conn.execute(
                select(func.count()).where(incident_tickets.c.incident_id == incident_id)
            ).scalar_one()
            self._audit(conn, by, "incident_resolved", None, incident_id, {"title": row.title, "tickets": linked})
            return self._get(conn, incident_id)

    def audit(self, incident_id: int, *, limit: int = 200) -> list[Any]:
        """The incident's audit events (its own and its tickets' links), newest first."""
        with self._engine.connect() as conn:
            self._row(conn, incident_id)
            rows = conn.execute(
                select(audit_events).where(audit_events.c.action.like("incident\\_%", escape="\\"))
                .order_by(audit_events.c.id.desc()).limit(5000)
            ).all()  # fmt: skip
        mine = [row for row in rows if (row.details or {}).get("incident_id") == incident_id]
        return mine[:limit]

    # ------------------------------------------------------------------ internals
    def _row(self, conn: Connection, incident_id: int, *, lock: bool = False) -> Row[Any]:
        query = select(incidents).where(incidents.c.id == incident_id)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise IncidentNotFound(f"There is no incident {incident_id}.")
        return row

    def _get(self, conn: Connection, incident_id: int) -> Incident:
        return _incident(self._row(conn, incident_id))

    def _linked_row(self, conn: Connection, incident_id: int, ticket_id: int) -> Row[Any]:
        row = conn.execute(
            select(tickets)
            .join(incident_tickets, incident_tickets.c.ticket_id == tickets.c.id)
            .where(incident_tickets.c.incident_id == incident_id, tickets.c.id == ticket_id)
        ).first()
        if row is None:
            self._row(conn, incident_id)
            raise Conflict(f"Ticket {ticket_id} is not in incident {incident_id}.")
        return row

    def _customer_texts(self, conn: Connection, ticket_ids: Sequence[int]) -> dict[int, str]:
        """Every customer message of each ticket, joined (bounded per ticket)."""
        found: dict[int, list[str]] = {}
        for chunk in _chunks(ticket_ids, 500):
            for ticket_id, text in conn.execute(
                select(messages.c.ticket_id, messages.c.text)
                .where(messages.c.ticket_id.in_(chunk), messages.c.direction == "in")
                .order_by(messages.c.id)
            ):
                found.setdefault(ticket_id, []).append(text[:1000])
        return {ticket_id: " ".join(texts[-10:]) for ticket_id, texts in found.items()}

    def _latest_customer_texts(self, conn: Connection, ticket_ids: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in _chunks(ticket_ids, 500):
            newest = (
                select(func.max(messages.c.id))
                .where(messages.c.ticket_id.in_(chunk), messages.c.direction == "in")
                .group_by(messages.c.ticket_id)
            )
            for ticket_id, text in conn.execute(
                select(messages.c.ticket_id, messages.c.text).where(messages.c.id.in_(newest))
            ):
                found[ticket_id] = text
        return found

    def _audit(
        self, conn: Connection, actor: str, action: str, ticket_id: int | None, incident_id: int,
        details: dict[str, Any],
    ) -> None:  # fmt: skip
        conn.execute(
            insert(audit_events).values(
                at=self._now(), actor=actor, action=action, ticket_id=ticket_id,
                details={"incident_id": incident_id, **details},
            )
        )  # fmt: skip


def _chunks(values: Sequence[int], size: int) -> Iterable[list[int]]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]
