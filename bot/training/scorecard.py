"""A training session's scorecard per trainee, read from the session's own database (the handoff audit log, its
tickets and messages, the knowledge base) and the scenario's references: first-response times against the SLA,
tone-check refusals, personal data echoed in public or not moved to DM, the FAQ entry used against the
reference, and the lead's review of each reply (good, or needs work, with a comment: `carebot training review`).
Printed by `carebot training report`, exported as CSV.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from bot.decision.personal_data import personal_data_kinds
from handoff.models import agents, audit_events, messages, tickets
from knowledge_base.io import neutral_cell
from knowledge_base.models import entries, entry_versions

MATCH_THRESHOLD = 0.5  # share of an FAQ answer's words a reply must contain to count as using that entry
_WORD = re.compile(r"[a-z0-9£€$%]+(?:'[a-z]+)?")
_SIGNATURE = re.compile(r"\^[A-Z]{2,3}\b|\^bot\b")
_COMMON = frozenset(
    "a an and are as at be by can do for from have hi i if in is it its me my of on or our please so that the "
    "this to we with you your thanks thank".split()
)


@dataclass(frozen=True)
class Review:
    """A lead's verdict on a trainee's reply: good, or needs_work, with a comment."""

    verdict: str
    comment: str
    by: str


@dataclass(frozen=True)
class ReplyCheck:
    """One ticket a trainee answered first, against the scenario's reference where it has one."""

    ticket_id: int
    scenario_key: str | None
    first_response_s: float
    within_sla: bool
    reference_faq: str | None
    used_faq: str | None  # the FAQ entry whose answer the trainee's reply contains, if any
    reference_similarity: float | None  # word overlap with the reference reply, 0…1
    reply: str = ""  # the trainee's first reply
    reference_reply: str | None = None
    review: Review | None = None  # the lead's newest review of it
    refused: tuple[str, ...] = ()  # the tone-check rules of this trainee's replies refused on this ticket

    @property
    def right_faq(self) -> bool | None:
        return None if self.reference_faq is None else self.used_faq == self.reference_faq


@dataclass(frozen=True)
class RefusedOnly:
    """A ticket where the tone check refused a trainee's reply and the trainee did not answer it first."""

    ticket_id: int
    scenario_key: str | None
    codes: tuple[str, ...]


@dataclass
class TraineeScore:
    username: str
    initials: str
    replies: int = 0
    first_responses: list[float] = field(default_factory=list)  # seconds, one per ticket answered first
    within_sla: int = 0
    tone_refusals: Counter[str] = field(default_factory=Counter)  # violation code → attempts
    personal_data_echoed: int = 0  # public replies sent that carry personal data
    personal_data_attempts: int = 0  # public replies refused for personal data
    not_moved_to_dm: int = 0  # tickets with personal data in public answered in public, never moved to DM
    checks: list[ReplyCheck] = field(default_factory=list)
    refused_only: list[RefusedOnly] = field(default_factory=list)  # refused there, and not their first reply

    @property
    def tickets_answered(self) -> int:
        return len(self.first_responses)

    @property
    def median_first_response_s(self) -> float | None:
        return statistics.median(self.first_responses) if self.first_responses else None

    @property
    def with_reference(self) -> int:
        return sum(1 for check in self.checks if check.reference_faq is not None)

    @property
    def right_faq(self) -> int:
        return sum(1 for check in self.checks if check.right_faq)

    @property
    def reviewed(self) -> int:
        return sum(1 for check in self.checks if check.review is not None)

    @property
    def flagged(self) -> int:
        """Replies the lead marked as needing work."""
        return sum(1 for check in self.checks if check.review is not None and check.review.verdict == "needs_work")


@dataclass
class Scorecard:
    session: str
    sla_minutes: int
    trainees: list[TraineeScore]
    unanswered: int  # tickets no trainee answered


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(_SIGNATURE.sub(" ", text).lower()) if w not in _COMMON}


def overlap(reply: str, answer: str) -> float:
    """The share of the answer's words that the reply contains (0…1)."""
    wanted = _words(answer)
    return len(_words(reply) & wanted) / len(wanted) if wanted else 0.0


def used_entry(reply: str, answers: Mapping[str, str]) -> str | None:
    """The FAQ entry (slug) whose published answer the reply contains most, if it contains enough of it."""
    best = max(answers, key=lambda slug: overlap(reply, answers[slug]), default=None)
    return best if best is not None and overlap(reply, answers[best]) >= MATCH_THRESHOLD else None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def build_scorecard(
    engine: Engine,
    *,
    session: str,
    sla_minutes: int,
    trainees: list[str] | None = None,
    references: Mapping[str, Mapping[str, Any]] | None = None,
    posted: Mapping[str, str] | None = None,
) -> Scorecard:
    """The scorecard of the session whose database `engine` opens. `references`: scenario key → {"faq", "reply"};
    `posted`: scenario key → the tweet id it was posted as (to find each ticket's scenario line)."""
    references = references or {}
    key_of = {tweet_id: key for key, tweet_id in (posted or {}).items()}
    with engine.connect() as conn:
        roster = conn.execute(select(agents.c.username, agents.c.initials).order_by(agents.c.id)).all()
        events = conn.execute(
            select(audit_events).where(audit_events.c.action.in_(["replied", "reply_refused", "reply_reviewed"]))
            .order_by(audit_events.c.id)
        ).all()  # fmt: skip
        ticket_rows = {row.id: row for row in conn.execute(select(tickets))}
        first_in: dict[int, str | None] = {}
        inbound = select(messages.c.ticket_id, messages.c.tweet_id).where(messages.c.direction == "in")
        for row in conn.execute(inbound.order_by(messages.c.id)):
            first_in.setdefault(row.ticket_id, row.tweet_id)
        answers = {
            row.slug: row.answer for row in conn.execute(
                select(entry_versions.c.slug, entry_versions.c.answer)
                .join(entries, entries.c.id == entry_versions.c.entry_id)
                .where(entry_versions.c.version == entries.c.published_version)
            )
        }  # fmt: skip
    wanted = set(trainees) if trainees is not None else None
    scores = {u: TraineeScore(u, i) for u, i in roster if wanted is None or u in wanted}
    by_initials = {score.initials: score for score in scores.values()}
    first_reply: dict[int, Any] = {}  # ticket → its first agent reply event
    moved: set[int] = set()  # tickets moved to DM, or answered by DM
    public_by: dict[int, set[str]] = {}  # ticket → trainees who answered it in public
    reviews: dict[int, Review] = {}  # ticket → the newest review
    refused_on: dict[tuple[int, str], list[str]] = {}  # (ticket, trainee) → the rules of each refused reply
    for event in events:
        details = event.details or {}
        if event.action == "reply_reviewed":
            if event.ticket_id is not None:
                reviews[event.ticket_id] = Review(str(details.get("verdict")), str(details.get("comment", "")),
                                                  event.actor)  # fmt: skip
            continue
        if event.action == "reply_refused":
            score = scores.get(event.actor)
            if score is not None:
                codes = [str(code) for code in details.get("violations", [])]
                score.tone_refusals.update(codes)
                if event.ticket_id is not None:
                    refused_on.setdefault((event.ticket_id, score.username), []).extend(codes)
                if "personal_data" in codes and details.get("channel", "public") == "public":
                    score.personal_data_attempts += 1
            continue
        channel = details.get("channel") or "public"
        if event.ticket_id is not None and (details.get("kind") == "dm_handover" or channel == "dm"):
            moved.add(event.ticket_id)  # by a trainee or by the bot: the customer was asked to continue by DM
        score = by_initials.get(str(details.get("author")))
        if score is None or event.ticket_id is None:
            continue  # the bot's replies, and people outside the session's trainees
        score.replies += 1
        if channel == "public" and details.get("kind") != "dm_handover":
            public_by.setdefault(event.ticket_id, set()).add(score.username)
            if personal_data_kinds(str(details.get("text", ""))):
                score.personal_data_echoed += 1
        first_reply.setdefault(event.ticket_id, event)
    for ticket_id, event in first_reply.items():
        ticket = ticket_rows.get(ticket_id)
        score = by_initials[str(event.details.get("author"))]
        if ticket is None:
            continue
        at, created = _utc(event.at), _utc(ticket.created_at)
        seconds = max(0.0, (at - created).total_seconds())
        within = at <= _utc(ticket.sla_due_at)
        score.first_responses.append(seconds)
        score.within_sla += within
        key = key_of.get(first_in.get(ticket_id) or "")
        reference = references.get(key or "") or {}
        text = str(event.details.get("text", ""))
        reference_reply = str(reference["reply"]) if reference.get("reply") else None
        score.checks.append(ReplyCheck(
            ticket_id, key, seconds, within, reference.get("faq"), used_entry(text, answers),
            overlap(text, reference_reply) if reference_reply else None, text, reference_reply, reviews.get(ticket_id),
            tuple(dict.fromkeys(refused_on.get((ticket_id, score.username), []))),
        ))  # fmt: skip
    for (ticket_id, username), codes in refused_on.items():
        first = first_reply.get(ticket_id)
        if first is None or by_initials.get(str(first.details.get("author"))) is not scores[username]:
            key = key_of.get(first_in.get(ticket_id) or "")
            scores[username].refused_only.append(RefusedOnly(ticket_id, key, tuple(dict.fromkeys(codes))))
    for ticket_id, usernames in public_by.items():
        ticket = ticket_rows.get(ticket_id)
        if ticket is not None and ticket.dm_handover and ticket_id not in moved:
            for username in usernames:
                scores[username].not_moved_to_dm += 1
    unanswered = sum(1 for ticket_id in ticket_rows if ticket_id not in first_reply)
    return Scorecard(session, sla_minutes, list(scores.values()), unanswered)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def render_text(card: Scorecard) -> str:
    """The scorecard for a terminal: a block per trainee, a line per ticket with a reference."""
    out = [f"Training session {card.session} (first-response SLA {card.sla_minutes} min); "
           f"{card.unanswered} ticket(s) no trainee answered."]  # fmt: skip
    for s in card.trainees:
        refusals = ", ".join(f"{code} {n}" for code, n in sorted(s.tone_refusals.items())) or "none"
        out += [
            "",
            f"{s.username} (^{s.initials}): {s.tickets_answered} ticket(s) answered first, {s.replies} replies",
            f"  first response: median {_duration(s.median_first_response_s)}, "
            f"slowest {_duration(max(s.first_responses, default=None))}, "
            f"{s.within_sla}/{s.tickets_answered} within the SLA",
            f"  tone check refused: {sum(s.tone_refusals.values())} ({refusals})",
            f"  personal data: {s.personal_data_echoed} echoed in public, {s.personal_data_attempts} echo(es) "
            f"refused, {s.not_moved_to_dm} ticket(s) not moved to DM",
            f"  FAQ entry against the reference: {s.right_faq}/{s.with_reference} right",
            f"  the lead's review: {s.reviewed}/{len(s.checks)} replies reviewed, {s.flagged} flagged as needing work",
        ]
        for check in s.checks:
            if check.reference_faq is None and check.reference_similarity is None and check.review is None:
                continue
            verdict = {True: "right", False: "wrong", None: "-"}[check.right_faq]
            similar = "-" if check.reference_similarity is None else f"{check.reference_similarity:.0%}"
            line = (
                f"    #{check.ticket_id} ({check.scenario_key}): reference {check.reference_faq or '-'}, "
                f"used {check.used_faq or 'no FAQ entry'} ({verdict}); like the reference reply: {similar}"
            )
            if check.review is not None:
                mark = "good" if check.review.verdict == "good" else "NEEDS WORK"
                line += f"; reviewed {mark} by {check.review.by}: {one_line(check.review.comment)}"
            out.append(line)
    return "\n".join(out) + "\n"


CSV_COLUMNS = (
    "session", "trainee", "initials", "tickets_answered", "replies", "median_first_response_s",
    "slowest_first_response_s", "within_sla", "tone_refusals", "tone_refusal_codes", "personal_data_echoed",
    "personal_data_refused", "not_moved_to_dm", "with_reference", "right_faq", "reviewed", "flagged_by_lead",
)  # fmt: skip


def one_line(text: str, limit: int = 200) -> str:
    """Text for one terminal line: control characters (customer and trainee text is untrusted) and line breaks
    become spaces, and it is cut at `limit` characters."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_review(card: Scorecard) -> str:
    """Every trainee's first reply beside the reference reply, with the lead's review: what `carebot training
    review SESSION` prints for the lead to go through."""
    out = [f"Training session {card.session}: replies to review"]
    for s in card.trainees:
        for check in s.checks:
            review = "not reviewed" if check.review is None else (
                f"{'good' if check.review.verdict == 'good' else 'NEEDS WORK'} ({check.review.by}): "
                f"{one_line(check.review.comment)}"
            )  # fmt: skip
            out += [
                "",
                f"#{check.ticket_id}  {s.username} (^{s.initials})  scenario line {check.scenario_key or '-'}",
                f"  reply:     {one_line(check.reply)}",
                f"  reference: {one_line(check.reference_reply) if check.reference_reply else '-'}"
                f"  (FAQ {check.reference_faq or '-'}; used {check.used_faq or 'none'})",
                f"  review:    {review}",
            ]
        for refused in s.refused_only:
            out += ["", f"#{refused.ticket_id}  {s.username} (^{s.initials})  scenario line "
                        f"{refused.scenario_key or '-'}: refused by the tone check ({', '.join(refused.codes)}), "
                        "not answered by them"]  # fmt: skip
    if len(out) == 1:
        out.append("No trainee has answered a ticket yet.")
    return "\n".join(out) + "\n"


def render_csv(card: Scorecard) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in card.trainees:
        median = s.median_first_response_s
        slowest = max(s.first_responses, default=None)
        writer.writerow([
            neutral_cell(card.session), neutral_cell(s.username), s.initials, s.tickets_answered, s.replies,
            "" if median is None else round(median, 1), "" if slowest is None else round(slowest, 1), s.within_sla,
            sum(s.tone_refusals.values()), " ".join(f"{c}:{n}" for c, n in sorted(s.tone_refusals.items())),
            s.personal_data_echoed, s.personal_data_attempts, s.not_moved_to_dm, s.with_reference, s.right_faq,
            s.reviewed, s.flagged,
        ])  # fmt: skip
    return buffer.getvalue()
