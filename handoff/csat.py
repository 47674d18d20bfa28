"""Storage for customer satisfaction (CSAT) surveys (handoff_csat) and the desk's run-time settings that a lead
changes (handoff_desk_settings): plain reads and conditional writes on the caller's Connection, no decisions.

Who is asked, how a reply is read and what the question says are decided in bot/csat.py; this module only keeps
the outcome. A survey moves pending → asked → answered | expired, or is `skipped` (never asked); each ticket and
each conversation has one survey row at most (unique columns), so a survey is never sent twice.

The settings are rows of name → JSON value. Unset names read as their defaults (CSAT on, every resolved ticket
asked, the public close after a DM resolution on). A change is one audit event (action `desk_settings`) naming
what changed from what to what, like the lead's other changes.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from handoff.errors import InvalidInput
from handoff.models import audit_events, csat_surveys, desk_settings, messages, tickets

SURVEY_STATES = ("pending", "asked", "answered", "expired", "skipped")
MAX_COMMENT_CHARS = 500  # a customer's comment is kept to this many characters

# handoff_desk_settings names (a row each; absent: the default below)
CSAT_ENABLED = "csat_enabled"
CSAT_SAMPLE_PERCENT = "csat_sample_percent"
PUBLIC_CLOSE_ENABLED = "dm_public_close_enabled"


@dataclass(frozen=True)
class CsatSettings:
    """What a lead decides about surveys and the public close after a DM resolution."""

    enabled: bool = True  # send CSAT questions at all
    sample_percent: int = 100  # of the eligible resolved tickets, this share is asked (0-100)
    public_close: bool = True  # post "We've sorted this in DM" under the public thread

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NAMES = {CSAT_ENABLED: "enabled", CSAT_SAMPLE_PERCENT: "sample_percent", PUBLIC_CLOSE_ENABLED: "public_close"}


def check_settings(settings: CsatSettings) -> CsatSettings:
    """The settings, or InvalidInput saying which value is wrong."""
    for name in ("enabled", "public_close"):
        if not isinstance(getattr(settings, name), bool):
            raise InvalidInput(f"{name} must be true or false")
    percent = settings.sample_percent
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise InvalidInput(f"the sample rate must be a whole number from 0 to 100, not {percent!r}")
    return settings


def read_settings(conn: Connection) -> CsatSettings:
    """The stored settings; a name never set, or a stored value of the wrong type, reads as its default."""
    rows = conn.execute(select(desk_settings.c.name, desk_settings.c.value).where(desk_settings.c.name.in_(_NAMES)))
    found = CsatSettings()
    for name, value in rows:
        candidate = replace(found, **{_NAMES[name]: value})
        try:
            found = check_settings(candidate)
        except InvalidInput:
            continue
    return found


def write_settings(conn: Connection, settings: CsatSettings, *, by: str, now: datetime) -> CsatSettings:
    """Store the settings a lead chose (in the caller's transaction) and audit what changed. Returns them."""
    check_settings(settings)
    before = read_settings(conn)
    changes: dict[str, Any] = {}
    for name, field in _NAMES.items():
        old, new = getattr(before, field), getattr(settings, field)
        stored = conn.execute(select(desk_settings.c.name).where(desk_settings.c.name == name)).first()
        if stored is not None:
            conn.execute(
                update(desk_settings)
                .where(desk_settings.c.name == name)
                .values(value=new, updated_at=now, updated_by=by[:64])
            )
        else:
            savepoint = conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()
            try:
                with savepoint:
                    conn.execute(insert(desk_settings).values(name=name, value=new, updated_at=now, updated_by=by[:64]))
            except IntegrityError:  # another lead stored it at this moment: ours is the later word
                conn.execute(
                    update(desk_settings)
                    .where(desk_settings.c.name == name)
                    .values(value=new, updated_at=now, updated_by=by[:64])
                )
        if old != new:
            changes[field] = {"from": old, "to": new}
    if changes:
        audit(conn, by, "desk_settings", None, changes, now)
    return settings


def audit(
    conn: Connection, actor: str, action: str, ticket_id: int | None, details: dict[str, Any], at: datetime
) -> None:
    conn.execute(
        insert(audit_events).values(at=at, actor=actor[:64], action=action[:32], ticket_id=ticket_id, details=details)
    )


# ---------------------------------------------------------------------------------------------- surveys
RESOLVED_ACTION = "resolved"  # the audit action of every resolution (handoff.service's resolve, incidents)


def resolved_since(since: datetime) -> Any:
    """The ids of tickets resolved at or after `since`, from the audit log (its (action, at) index keeps this cheap
    on a year of tickets; every resolution is audited, whoever made it)."""
    return select(audit_events.c.ticket_id).where(
        audit_events.c.action == RESOLVED_ACTION, audit_events.c.at >= since, audit_events.c.ticket_id.is_not(None)
    )


def resolved_without_survey(conn: Connection, *, since: datetime, limit: int = 50) -> list[Row[Any]]:
    """Tickets resolved at or after `since` and resolved still, that have no survey row, and whose conversation has
    none either: oldest resolution first."""
    return list(
        conn.execute(
            select(tickets)
            .where(
                tickets.c.id.in_(resolved_since(since)),
                tickets.c.state == "resolved",
                tickets.c.resolved_at >= since,
                ~exists().where(csat_surveys.c.ticket_id == tickets.c.id),
                ~exists().where(csat_surveys.c.conversation_id == tickets.c.conversation_id),
            )
            .order_by(tickets.c.resolved_at, tickets.c.id)
            .limit(limit)
        ).all()
    )


def delivered_replies(conn: Connection, ticket_id: int) -> int:
    """How many replies of ours (bot or agent) on the ticket reached the customer."""
    return len(
        conn.execute(
            select(messages.c.id).where(
                messages.c.ticket_id == ticket_id, messages.c.direction == "out", messages.c.delivery == "sent"
            )
        ).all()
    )


def add_survey(
    conn: Connection,
    *,
    ticket_id: int,
    conversation_id: str,
    customer_id: str,
    agent_id: int | None,
    state: str,
    now: datetime,
) -> int | None:
    """A survey row for the ticket; None when the ticket or its conversation has one already (another worker)."""
    if state not in SURVEY_STATES:
        raise InvalidInput(f"a survey's state is one of {', '.join(SURVEY_STATES)}, not {state!r}")
    savepoint = conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext()
    try:
        with savepoint:
            return int(
                conn.execute(
                    insert(csat_surveys)
                    .values(
                        ticket_id=ticket_id,
                        conversation_id=conversation_id,
                        customer_id=customer_id,
                        agent_id=agent_id,
                        state=state,
                        created_at=now,
                    )  # fmt: skip
                    .returning(csat_surveys.c.id)
                ).scalar_one()
            )
    except IntegrityError:
        return None


def mark_asked(conn: Connection, survey_id: int, outbox_id: int, now: datetime) -> None:
    conn.execute(
        update(csat_surveys)
        .where(csat_surveys.c.id == survey_id, csat_surveys.c.state == "pending")
        .values(state="asked", outbox_id=outbox_id, asked_at=now)
    )


def asked_since(conn: Connection, customer_id: str, since: datetime) -> bool:
    """Whether the customer was sent a question at or after `since`."""
    return (
        conn.execute(
            select(csat_surveys.c.id).where(
                csat_surveys.c.customer_id == customer_id,
                csat_surveys.c.state.in_(("asked", "answered", "expired")),
                csat_surveys.c.asked_at >= since,
            )
        ).first()
        is not None
    )


def open_survey(conn: Connection, customer_id: str, since: datetime) -> Row[Any] | None:
    """The customer's newest survey still waiting for an answer, asked at or after `since`."""
    return conn.execute(
        select(csat_surveys)
        .where(
            csat_surveys.c.customer_id == customer_id,
            csat_surveys.c.state == "asked",
            csat_surveys.c.asked_at >= since,
        )
        .order_by(csat_surveys.c.asked_at.desc(), csat_surveys.c.id.desc())
        .limit(1)
    ).first()


def record_answer(conn: Connection, survey_id: int, score: int, comment: str | None, now: datetime) -> bool:
    """Store the customer's score (1-5) and comment; False when the survey was no longer waiting for one."""
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise InvalidInput(f"a score is a whole number from 1 to 5, not {score!r}")
    kept = comment[:MAX_COMMENT_CHARS] if comment else None
    return (
        conn.execute(
            update(csat_surveys)
            .where(csat_surveys.c.id == survey_id, csat_surveys.c.state == "asked")
            .values(state="answered", score=score, comment=kept, answered_at=now)
        ).rowcount
        == 1
    )


def expire(conn: Connection, survey_id: int) -> bool:
    """The survey waits for no answer any more (the customer opted out)."""
    return (
        conn.execute(
            update(csat_surveys)
            .where(csat_surveys.c.id == survey_id, csat_surveys.c.state == "asked")
            .values(state="expired")
        ).rowcount
        == 1
    )


def expire_unanswered(conn: Connection, *, asked_before: datetime) -> int:
    """Surveys asked before `asked_before` and never answered are expired. Returns how many."""
    return int(
        conn.execute(
            update(csat_surveys)
            .where(and_(csat_surveys.c.state == "asked", csat_surveys.c.asked_at < asked_before))
            .values(state="expired")
        ).rowcount
    )


def survey_of_ticket(conn: Connection, ticket_id: int) -> Row[Any] | None:
    return conn.execute(select(csat_surveys).where(csat_surveys.c.ticket_id == ticket_id)).first()
