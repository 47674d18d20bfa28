"""Labels: what agents and customers do with the bot's decisions, kept as evidence of how often it is right, and
shadow mode per kind of message and per FAQ entry.

A label is stored per decision (the customer's tweet, the FAQ entry the bot chose or suggested, its score, the
kind of message) with who gave it and when: a draft approved unchanged, edited (with the edit distance) or
rejected; a suggestion inserted and sent; a reply an agent wrote themselves while the top suggestion was another
entry; a customer's "that didn't help" or thanks after an automatic answer. The customer's text is stored without
mentions and links and with the personal data the caller's `redact` finds replaced, as in the exports.

Shadow mode: a kind or an entry in shadow has its automatic answers drafted for agents instead of posted; every
switch between shadow and automatic is an audit event. Which switch is allowed (the evidence) is the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, select, update

from handoff.errors import InvalidInput
from handoff.models import AUTOMATION_MODES, AUTOMATION_SCOPES, LABELS, audit_events, automation, labels

# Whether the action says the bot's entry was the right answer.
CORRECT = {
    "approved": True, "edited": True, "rejected": False, "suggestion_sent": True, "own_reply": False,
    "didnt_help": False, "thanks": True,
}  # fmt: skip
MAX_TEXT = 2000
_MENTION = re.compile(r"(?<!\w)@\w{1,15}")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)

Redact = Callable[[str], str]


@dataclass(frozen=True)
class LabelledDecision:
    """The decision a label is about."""

    text: str  # the customer's tweet, as written (stripped before it is stored)
    tweet_id: str | None = None
    ticket_id: int | None = None
    faq_entry_id: int | None = None
    score: float | None = None
    kind: str | None = None  # the kind of message (intent)


@dataclass(frozen=True)
class Label:
    id: int
    at: datetime
    actor: str
    label: str
    correct: bool
    tweet_id: str | None
    ticket_id: int | None
    faq_entry_id: int | None
    score: float | None
    kind: str | None
    text: str
    edit_distance: int | None


@dataclass(frozen=True)
class Tally:
    """The labels of one kind or one entry: how many, how many said the bot was right, and those that said it
    was wrong after an automatic answer or a rejected draft (the live signals)."""

    scope: str  # kind | entry
    key: str
    count: int
    correct: int
    complaints: int  # didn't help + rejected

    @property
    def precision(self) -> float | None:
        return self.correct / self.count if self.count else None


@dataclass(frozen=True)
class Mode:
    scope: str
    key: str
    mode: str  # shadow | automatic
    changed_at: datetime
    changed_by: str
    reason: str


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters (insertions, deletions, substitutions)."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    a, b = a[start:], b[start:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _label(row: Any) -> Label:
    return Label(
        id=row.id, at=_utc(row.at), actor=row.actor, label=row.label, correct=bool(row.correct),
        tweet_id=row.tweet_id, ticket_id=row.ticket_id, faq_entry_id=row.faq_entry_id, score=row.score,
        kind=row.kind, text=row.text, edit_distance=row.edit_distance,
    )  # fmt: skip


class Labels:
    def __init__(
        self, engine: Engine, *, redact: Redact, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._engine = engine
        self._redact = redact
        self._clock = clock

    def clean(self, text: str) -> str:
        """The customer's text as stored: no mentions, links or personal data, on one line."""
        text = _URL.sub(" ", _MENTION.sub(" ", text[:MAX_TEXT]))
        return self._redact(" ".join(text.split()))

    def record(
        self, conn: Connection, label: str, decision: LabelledDecision, *, actor: str,
        edit_distance: int | None = None,
    ) -> int:  # fmt: skip
        """Store one label in the caller's transaction; returns its id."""
        if label not in LABELS:
            raise InvalidInput(f"label must be one of {', '.join(LABELS)}, not {label!r}")
        if not isinstance(actor, str) or not actor.strip() or len(actor) > 64:
            raise InvalidInput("actor must be a non-empty text of at most 64 characters")
        values = {
            "at": _utc(self._clock()), "actor": actor, "label": label, "correct": CORRECT[label],
            "tweet_id": decision.tweet_id, "ticket_id": decision.ticket_id, "faq_entry_id": decision.faq_entry_id,
            "score": None if decision.score is None else float(decision.score),
            "kind": None if decision.kind is None else decision.kind[:64],
            "text": self.clean(decision.text or ""), "edit_distance": edit_distance,
        }  # fmt: skip
        return int(conn.execute(insert(labels).values(values).returning(labels.c.id)).scalar_one())

    def recent(self, *, limit: int = 100, ticket_id: int | None = None) -> list[Label]:
        """The newest labels first (of one ticket, or all)."""
        query = select(labels)
        if ticket_id is not None:
            query = query.where(labels.c.ticket_id == ticket_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(labels.c.id.desc()).limit(limit)).all()
        return [_label(row) for row in rows]

    def tallies(self, *, since: datetime | None = None) -> list[Tally]:
        """Per kind of message and per FAQ entry: the labels' count, how many said right, and the complaints
        (didn't help, rejected); kinds first, then entries, each by key. Labels of no kind or no entry count
        only where they have one."""
        complaint = case((labels.c.label.in_(("didnt_help", "rejected")), 1), else_=0)
        right = case((labels.c.correct.is_(True), 1), else_=0)
        result: list[Tally] = []
        with self._engine.connect() as conn:
            for scope, column in (("kind", labels.c.kind), ("entry", labels.c.faq_entry_id)):
                query = (
                    select(column.label("key"), func.count(), func.sum(right), func.sum(complaint))
                    .where(column.is_not(None)).group_by(column).order_by(column)
                )  # fmt: skip
                if since is not None:
                    query = query.where(labels.c.at >= since)
                for key, count, correct, complaints in conn.execute(query):
                    result.append(Tally(scope, str(key), int(count), int(correct or 0), int(complaints or 0)))
        return result

    # ------------------------------------------------------------------ shadow mode
    def modes(self, conn: Connection | None = None) -> dict[tuple[str, str], Mode]:
        """Every kind and entry a lead (or the desk) put in shadow or automatic; the others follow the policy."""
        if conn is None:
            with self._engine.connect() as own:
                return self.modes(own)
        return {
            (row.scope, row.key): Mode(row.scope, row.key, row.mode, _utc(row.changed_at), row.changed_by, row.reason)
            for row in conn.execute(select(automation))
        }

    def in_shadow(self, conn: Connection, *, kind: str | None, entry_id: int | None) -> bool:
        """Whether an automatic answer of this kind with this entry is drafted for an agent instead of posted:
        the entry's own mode when it has one, else its kind's."""
        wanted = [("entry", str(entry_id))] if entry_id is not None else []
        wanted += [("kind", kind)] if kind else []
        if not wanted:
            return False
        rows = {
            (row.scope, row.key): row.mode
            for row in conn.execute(
                select(automation.c.scope, automation.c.key, automation.c.mode).where(
                    automation.c.key.in_([key for _, key in wanted])
                )
            )
        }
        for scope_key in wanted:
            if scope_key in rows:
                return rows[scope_key] == "shadow"
        return False

    def switch(self, scope: str, key: str, mode: str, *, by: str, reason: str, conn: Connection | None = None) -> bool:
        """Put a kind or entry in shadow or automatic, audited (automation_switched); False when it already was."""
        if scope not in AUTOMATION_SCOPES:
            raise InvalidInput(f"scope must be one of {', '.join(AUTOMATION_SCOPES)}, not {scope!r}")
        if mode not in AUTOMATION_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(AUTOMATION_MODES)}, not {mode!r}")
        if not isinstance(key, str) or not key.strip() or len(key) > 64:
            raise InvalidInput("key must be a non-empty text of at most 64 characters")
        if not isinstance(by, str) or not by.strip() or len(by) > 64:
            raise InvalidInput("by must be a non-empty text of at most 64 characters")
        if conn is None:
            with self._engine.begin() as own:
                return self.switch(scope, key, mode, by=by, reason=reason, conn=own)
        now = _utc(self._clock())
        before = conn.execute(
            select(automation.c.mode).where(automation.c.scope == scope, automation.c.key == key)
        ).scalar()
        if before == mode:
            return False
        values = {"mode": mode, "changed_at": now, "changed_by": by, "reason": reason}
        if before is None:
            conn.execute(insert(automation).values(scope=scope, key=key, **values))
        else:
            conn.execute(update(automation).where(automation.c.scope == scope, automation.c.key == key).values(values))
        details = {"scope": scope, "key": key, "from": before or "policy", "to": mode, "reason": reason}
        conn.execute(
            insert(audit_events).values(at=now, actor=by, action="automation_switched", ticket_id=None, details=details)
        )
        return True
