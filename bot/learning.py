"""The bot learns from its agents: labels from the work agents already do and from customers' follow-ups
(handoff/labels.py stores them), the precision they measure per kind of message and per FAQ entry with a one-sided
95% Clopper-Pearson lower bound, and shadow mode (switch to automatic only on that evidence; back to shadow with an
alert when live precision falls).

The decision a label is about is read from the stored tweet (its triage result): the FAQ entry, its score, the
kind of message. Personal data is stripped with bot/decision/personal_data.py, as in the exports.

Rejected drafts are negatives for the answer model: `rejected_tweets` gives, per FAQ entry, the tweets agents
rejected its draft for (never approved, edited or sent for it as well), and `negative_vectors` embeds them for
bot/decision/answer_score.fit_answer_model's `negatives`, where they join that fit's out-of-scope examples. (The
FAQ's other lesson, approved tweets as proposed paraphrases, is bot/web/proposals.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import Row

from bot.channel.models import inbound_tweets, outbox
from bot.channel.store import add_alert
from bot.decision.calibration import PostCandidate, leak_upper_bound
from bot.decision.personal_data import redact
from handoff.labels import CORRECT, LabelledDecision, Labels, Mode, Tally
from handoff.models import labels as label_rows

if TYPE_CHECKING:
    from bot.ask import Assessment

CONFIDENCE = 0.95
MIN_LIVE_LABELS = 10  # an automatic kind or entry is judged on at least this many labels since it was switched


def label_store(engine: Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Labels:
    return Labels(engine, redact=redact, clock=clock)


# ---------------------------------------------------------------- the decision a label is about


def _from_row(row: Row[Any]) -> LabelledDecision:
    stored = row.decision if isinstance(row.decision, dict) else {}
    decision = stored.get("decision") or {}
    faq = decision.get("faq") or {}
    answer = decision.get("answer") or {}
    entry = faq.get("entry_id", answer.get("entry_id"))
    score = faq.get("score", answer.get("score"))
    return LabelledDecision(
        text=row.text, tweet_id=row.tweet_id, ticket_id=row.ticket_id,
        faq_entry_id=int(entry) if isinstance(entry, int) else None,
        score=float(score) if isinstance(score, (int, float)) else None,
        kind=decision.get("intent") or stored.get("intent"),
    )  # fmt: skip


def decision_of_tweet(conn: Connection, tweet_id: str) -> LabelledDecision | None:
    row = conn.execute(select(inbound_tweets).where(inbound_tweets.c.tweet_id == tweet_id)).first()
    return None if row is None else _from_row(row)


def decision_of_ticket(conn: Connection, ticket_id: int) -> LabelledDecision | None:
    """The latest decided tweet of the ticket: the decision its draft and its suggestions answer."""
    row = conn.execute(
        select(inbound_tweets).where(inbound_tweets.c.ticket_id == ticket_id, inbound_tweets.c.decision.is_not(None))
        .order_by(inbound_tweets.c.fetched_at.desc(), inbound_tweets.c.tweet_id.desc()).limit(1)
    ).first()  # fmt: skip
    return None if row is None else _from_row(row)


def label_follow_up(conn: Connection, labels: Labels, row: Row[Any], decision: Any) -> str | None:
    """A customer's reply under the bot's automatic FAQ answer is a label for that answer's decision: thanks (a
    closing thank-you) or didnt_help (anything that goes to a person). Returns the label, or None."""
    if decision.position != "after_bot_answer" or row.in_reply_to_tweet_id is None:
        return None
    if decision.ignore_reason == "closing_thanks":
        label = "thanks"
    elif decision.band in ("human", "approve"):
        label = "didnt_help"
    else:
        return None
    answered = conn.execute(
        select(outbox.c.target_tweet_id).where(
            outbox.c.posted_tweet_id == row.in_reply_to_tweet_id, outbox.c.author == "bot",
            outbox.c.kind == "faq_answer",
        )
    ).scalar()  # fmt: skip
    if answered is None:
        return None
    answer = decision_of_tweet(conn, answered)
    if answer is None:
        return None
    labels.record(conn, label, answer, actor="customer")
    return label


# ---------------------------------------------------------------- negatives for the answer model


def rejected_tweets(engine: Engine) -> dict[int, list[str]]:
    """Per FAQ entry, the distinct tweets (as stored: no mentions, links or personal data) agents rejected its
    draft for, oldest first; a tweet also approved, edited or sent for the same entry is not a negative."""
    found: dict[int, dict[str, str]] = {}
    confirmed: set[tuple[int, str]] = set()
    query = (
        select(label_rows.c.faq_entry_id, label_rows.c.label, label_rows.c.text)
        .where(label_rows.c.faq_entry_id.is_not(None), label_rows.c.label.in_(("rejected", "approved", "edited",
                                                                                 "suggestion_sent")))
        .order_by(label_rows.c.id)
    )  # fmt: skip
    with engine.connect() as conn:
        for entry_id, label, text in conn.execute(query):
            key = " ".join(str(text).casefold().split())
            if not key:
                continue
            if label == "rejected":
                found.setdefault(int(entry_id), {}).setdefault(key, str(text))
            else:
                confirmed.add((int(entry_id), key))
    result = {}
    for entry_id, texts in found.items():
        kept = [text for key, text in texts.items() if (entry_id, key) not in confirmed]
        if kept:
            result[entry_id] = kept
    return result


def negative_vectors(rejected: dict[int, list[str]], embedder: Any) -> dict[int, np.ndarray]:
    """The rejected tweets embedded, for fit_answer_model(negatives=…)."""
    return {
        entry_id: np.asarray(embedder.embed(texts), dtype=np.float32) for entry_id, texts in rejected.items() if texts
    }


# ---------------------------------------------------------------- evidence and shadow mode


def precision_lower_bound(correct: int, total: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson lower bound on precision: 1 - the upper bound on the rate of wrong answers."""
    if total <= 0:
        return 0.0
    return 1.0 - leak_upper_bound(total - correct, total, confidence)


def precision_upper_bound(correct: int, total: int, confidence: float = CONFIDENCE) -> float:
    if total <= 0:
        return 1.0
    return leak_upper_bound(correct, total, confidence)


@dataclass(frozen=True)
class Evidence:
    """One row of the lead's view: a kind of message or an FAQ entry, what its labels measure, and its mode."""

    tally: Tally
    lower_bound: float
    target: float
    mode: str  # shadow | automatic | policy (no switch yet: as the policy says)
    changed: Mode | None

    @property
    def can_switch_to_automatic(self) -> bool:
        return self.mode != "automatic" and self.lower_bound >= self.target


def evidence(labels: Labels, target: float) -> list[Evidence]:
    """Per kind and per entry: count, measured precision, its lower bound, the target and the mode."""
    modes = labels.modes()
    tallies = labels.tallies()
    labelled = {(t.scope, t.key) for t in tallies}
    tallies += [Tally(scope, key, 0, 0, 0) for scope, key in sorted(modes) if (scope, key) not in labelled]
    rows = []
    for tally in tallies:
        mode = modes.get((tally.scope, tally.key))
        rows.append(Evidence(
            tally=tally, lower_bound=precision_lower_bound(tally.correct, tally.count), target=target,
            mode=mode.mode if mode else "policy", changed=mode,
        ))  # fmt: skip
    return rows


class SwitchRefused(ValueError):
    """The labels do not show the precision the switch needs."""


def switch_to_automatic(labels: Labels, scope: str, key: str, *, target: float, by: str) -> None:
    """Let the bot answer this kind or entry itself: only when the labels' lower bound reaches the target."""
    found = next((e for e in evidence(labels, target) if (e.tally.scope, e.tally.key) == (scope, key)), None)
    if found is None:
        raise SwitchRefused(f"There are no labels for {scope} {key!r} yet.")
    if found.lower_bound < target:
        raise SwitchRefused(
            f"{scope} {key!r}: the precision's lower bound is {found.lower_bound:.3f} on {found.tally.count} labels, "
            f"below the target {target:.2f}."
        )
    reason = f"lower bound {found.lower_bound:.3f} ≥ target {target:.2f} on {found.tally.count} labels"
    labels.switch(scope, key, "automatic", by=by, reason=reason)


def switch_to_shadow(labels: Labels, scope: str, key: str, *, by: str) -> None:
    labels.switch(scope, key, "shadow", by=by, reason="put in shadow by a lead")


def watch(engine: Engine, labels: Labels, target: float) -> list[tuple[str, str]]:
    """Back to shadow, with an alert, every automatic kind or entry whose live precision has fallen: since it was
    switched, at least MIN_LIVE_LABELS labels and their precision's upper bound below the target. Returns them."""
    fallen = []
    for (scope, key), mode in labels.modes().items():
        if mode.mode != "automatic":
            continue
        live = next(
            (t for t in labels.tallies(since=mode.changed_at) if (t.scope, t.key) == (scope, key)), None
        )
        if live is None or live.count < MIN_LIVE_LABELS:
            continue
        upper = precision_upper_bound(live.correct, live.count)
        if upper >= target:
            continue
        reason = (
            f"live precision {live.correct}/{live.count} (upper bound {upper:.3f}) below the target {target:.2f}; "
            f"{live.complaints} didn't help or rejected"
        )
        with engine.begin() as conn:
            if labels.switch(scope, key, "shadow", by="bot", reason=reason, conn=conn):
                message = f"{scope} {key} is back in shadow: {reason}"
                add_alert(conn, "precision_fell", message, {"scope": scope, "key": key})
                fallen.append((scope, key))
    return fallen


SHADOW_REASON = "Shadow mode: the bot would answer this itself; an agent checks its draft, and that measures it."


def shadowed(conn: Connection, labels: Labels, result: Assessment) -> Assessment:
    """The triage result as carried out: an automatic FAQ answer of a kind or entry in shadow becomes a draft for
    an agent (band approve) instead of a post."""
    decision = result.decision
    if not (result.bot_posts and decision.band == "auto" and decision.reply == "faq_answer" and decision.faq):
        return result
    if not labels.in_shadow(conn, kind=decision.intent, entry_id=decision.faq.entry_id):
        return result
    drafted = replace(decision, band="approve", reasons=(*decision.reasons, SHADOW_REASON))
    return replace(result, decision=drafted, reply_status="agent_sends")


# ---------------------------------------------------------------- refitting the thresholds on the labels


def label_candidates(engine: Engine, *, since: datetime | None = None) -> list[PostCandidate]:
    """One calibration candidate per labelled decision (a tweet, or a ticket's decision, and the FAQ entry it was
    about) with its kind and its answer score: right when an approved or edited draft, a sent suggestion or a
    thanks says so, else wrong (a rejected draft, an agent's own reply while the entry was the top suggestion, a
    "didn't help"). A decision labelled both ways counts as right, as the agent's confirmation wins in
    `rejected_tweets`. Labels without a kind, an entry or a score say nothing about a bar and are left out;
    `since` keeps the labels given from then on."""
    query = select(
        label_rows.c.id, label_rows.c.label, label_rows.c.tweet_id, label_rows.c.ticket_id, label_rows.c.faq_entry_id,
        label_rows.c.score, label_rows.c.kind,
    ).where(
        label_rows.c.faq_entry_id.is_not(None), label_rows.c.score.is_not(None), label_rows.c.kind.is_not(None)
    ).order_by(label_rows.c.id)  # fmt: skip
    if since is not None:
        query = query.where(label_rows.c.at >= since)
    decisions: dict[tuple[str, int], PostCandidate] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            if row.tweet_id is not None:
                about = f"tweet:{row.tweet_id}"
            else:
                about = f"ticket:{row.ticket_id}" if row.ticket_id is not None else f"label:{row.id}"
            key = (about, int(row.faq_entry_id))
            right = CORRECT.get(str(row.label), False)
            seen = decisions.get(key)
            if seen is None or (right and not seen.right):
                decisions[key] = PostCandidate(
                    kind="faq", intent=str(row.kind), score=float(row.score), right=right, wanted=True
                )
    return list(decisions.values())
