"""Labelled conversations for `carebot eval traffic` and `carebot triage calibrate`: the JSONL file, and the
figures of a replay's decisions against the labels. Pure: reading a file, then arithmetic.

One conversation per line:
    {"conversation": "c1", "channel": "mention"|"dm", "turns": [{"id": "t1", "author": "customer"|"bot"|"agent"|
     "other", "text": "…", "expected": {"action": "answer"|"person"|"silence"|"social", "slug": "…"}}]}
Turns are in order, each a reply to the one before. `expected` is optional, and only customer turns have one.

A public post by the bot is right when it is what the label asks for: an FAQ answer with the labelled entry
(action answer), a greeting or thank-you where a social reply is right (social), an acknowledgement or DM
hand-over where a person must take over (person). "Wrongly silenced" counts turns that needed an answer or a
person but were ignored: a customer problem dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.decision.calibration import PostCandidate

AUTHORS = ("customer", "bot", "agent", "other")
ACTIONS = ("answer", "person", "silence", "social")
CHANNELS = ("mention", "dm")
MAX_TEXT = 10_000
SOCIAL_KINDS = ("greeting", "thanks")


class TrafficFileError(ValueError):
    """The conversations file is malformed (the message names the line)."""


@dataclass(frozen=True)
class Expected:
    action: str
    slug: str | None = None


@dataclass(frozen=True)
class Turn:
    id: str
    author: str
    text: str
    expected: Expected | None = None


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[Turn, ...]
    channel: str = "mention"
    line: int = 0


@dataclass(frozen=True)
class TurnOutcome:
    """What the replay decided for one customer turn: a line of the decisions file."""

    conversation: str
    id: str
    band: str
    faq_slug: str | None
    reply_kind: str | None
    reply: str | None
    position: str = "opener"
    intent: str | None = None
    confidence: float = 0.0
    ignore_reason: str | None = None
    reasons: tuple[str, ...] = ()
    answer: dict[str, Any] | None = None
    expected: Expected | None = None

    @property
    def action(self) -> str:
        """What happened, in the labels' words."""
        if self.band == "ignore":
            return "silence"
        if self.band == "auto" and self.reply_kind == "faq":
            return "answer"
        if self.band == "auto" and self.reply_kind in SOCIAL_KINDS:
            return "social"
        return "person"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "conversation": self.conversation, "id": self.id, "band": self.band, "faq_slug": self.faq_slug,
            "reply_kind": self.reply_kind, "reply": self.reply, "position": self.position, "intent": self.intent,
            "confidence": self.confidence, "ignore_reason": self.ignore_reason, "reasons": list(self.reasons),
        }  # fmt: skip
        if self.answer is not None:
            data["answer"] = self.answer
        if self.expected is not None:
            data["expected"] = {"action": self.expected.action, "slug": self.expected.slug}
        return data


def _text(where: str, value: Any, *, limit: int = 200) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TrafficFileError(f"{where} must be a non-empty string")
    if len(value) > limit:
        raise TrafficFileError(f"{where} is longer than {limit} characters")
    return value


def _expected(where: str, value: Any) -> Expected | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TrafficFileError(f"{where} must be an object like {{\"action\": \"answer\", \"slug\": \"…\"}}")
    unknown = sorted(set(value) - {"action", "slug"})
    if unknown:
        raise TrafficFileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    action = value.get("action")
    if action not in ACTIONS:
        raise TrafficFileError(f"{where}.action must be one of {', '.join(ACTIONS)}, not {action!r}")
    slug = value.get("slug")
    if action == "answer":
        slug = _text(f"{where}.slug (an answer names its FAQ entry)", slug, limit=100)
    elif slug is not None:
        raise TrafficFileError(f"{where}.slug belongs only to action answer")
    return Expected(action, slug)


def parse_conversation(line: str, number: int) -> Conversation:
    """One line of the file; raises TrafficFileError naming the line and the problem."""
    where = f"line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrafficFileError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise TrafficFileError(f"{where}: nested too deeply to be a conversation") from exc
    if not isinstance(data, dict):
        raise TrafficFileError(f"{where}: a conversation must be a JSON object")
    unknown = sorted(set(data) - {"conversation", "channel", "turns"})
    if unknown:
        raise TrafficFileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    conversation = _text(f"{where}: conversation", data.get("conversation"))
    channel = data.get("channel", "mention")
    if channel not in CHANNELS:
        raise TrafficFileError(f"{where}: channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise TrafficFileError(f"{where}: turns must be a non-empty list")
    turns = []
    for index, raw in enumerate(raw_turns, 1):
        at = f"{where}: turn {index}"
        if not isinstance(raw, dict):
            raise TrafficFileError(f"{at} must be an object")
        extra = sorted(set(raw) - {"id", "author", "text", "expected"})
        if extra:
            raise TrafficFileError(f"{at}: unknown key(s) {', '.join(extra)}")
        author = raw.get("author")
        if author not in AUTHORS:
            raise TrafficFileError(f"{at}: author must be one of {', '.join(AUTHORS)}, not {author!r}")
        expected = _expected(f"{at}: expected", raw.get("expected"))
        if expected is not None and author != "customer":
            raise TrafficFileError(f"{at}: only customer turns carry `expected`")
        turns.append(Turn(_text(f"{at}: id", raw.get("id")), author, _text(f"{at}: text", raw.get("text"),
                                                                            limit=MAX_TEXT), expected))  # fmt: skip
    ids = [turn.id for turn in turns]
    if len(set(ids)) != len(ids):
        raise TrafficFileError(f"{where}: turn ids repeat within the conversation")
    return Conversation(conversation, tuple(turns), channel, number)


def read_conversations(path: Path) -> list[Conversation]:
    """Every conversation of a JSONL file (blank lines skipped); one TrafficFileError for the first problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrafficFileError(f"{path}: cannot read: {exc}") from exc
    conversations = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        conversation = parse_conversation(line, number)
        if conversation.id in seen:
            raise TrafficFileError(f"line {number}: conversation {conversation.id!r} appears twice")
        seen.add(conversation.id)
        conversations.append(conversation)
    if not conversations:
        raise TrafficFileError(f"{path}: no conversations")
    return conversations


# ---------------------------------------------------------------- figures


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def post_is_right(outcome: TurnOutcome) -> bool | None:
    """Whether the bot's public post fits the label (None: no post, or no label)."""
    expected = outcome.expected
    if expected is None or outcome.reply_kind is None:
        return None
    if outcome.reply_kind == "faq":
        return expected.action == "answer" and expected.slug == outcome.faq_slug
    if outcome.reply_kind in SOCIAL_KINDS:
        return expected.action == "social"
    return expected.action == "person"  # an acknowledgement or a DM hand-over: a person takes over


@dataclass
class _Tally:
    posts: int = 0
    right: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    wrong_kinds: Counter[str] = field(default_factory=Counter)


def figures(outcomes: Iterable[TurnOutcome]) -> dict[str, Any]:
    """Precision of the bot's public posts, answer coverage, wrongly silenced turns and social replies, overall,
    per reply kind, per position in the conversation and per NLU kind."""
    labelled = [outcome for outcome in outcomes if outcome.expected is not None]
    tally = _Tally()
    for outcome in labelled:
        right = post_is_right(outcome)
        if right is None:
            continue
        tally.posts += 1
        tally.right += right
        tally.kinds[outcome.reply_kind or "?"] += 1
        if not right:
            tally.wrong_kinds[outcome.reply_kind or "?"] += 1
    answerable = [o for o in labelled if o.expected and o.expected.action == "answer"]
    answered_right = [o for o in answerable if _answered_right(o)]
    drafted_right = [o for o in answerable if o.band == "approve" and o.expected and o.faq_slug == o.expected.slug]
    needs_someone = [o for o in labelled if o.expected and o.expected.action in ("answer", "person")]
    silenced = [o for o in needs_someone if o.band == "ignore"]
    social_expected = [o for o in labelled if o.expected and o.expected.action == "social"]
    social_posts = [o for o in labelled if o.reply_kind in SOCIAL_KINDS]
    confusion: dict[str, Counter[str]] = {action: Counter() for action in ACTIONS}
    for outcome in labelled:
        confusion[outcome.expected.action][outcome.action] += 1  # type: ignore[union-attr]
    return {
        "customer_turns": len(labelled),
        "automatic_posts": tally.posts,
        "automatic_posts_right": tally.right,
        "post_precision": _ratio(tally.right, tally.posts),
        "posts_by_kind": {
            kind: {"posts": count, "wrong": tally.wrong_kinds[kind],
                   "precision": _ratio(count - tally.wrong_kinds[kind], count)}
            for kind, count in sorted(tally.kinds.items())
        },  # fmt: skip
        "answerable": len(answerable),
        "answered_right": len(answered_right),
        "answer_coverage": _ratio(len(answered_right), len(answerable)),
        "drafted_right": len(drafted_right),
        "needs_a_reply_or_person": len(needs_someone),
        "wrongly_silenced": len(silenced),
        "wrongly_silenced_turns": [f"{o.conversation}/{o.id}" for o in silenced],
        "social_expected": len(social_expected),
        "social_replies": len(social_posts),
        "social_replies_right": sum(1 for o in social_posts if post_is_right(o)),
        "social_replies_wrong": sum(1 for o in social_posts if post_is_right(o) is False),
        "expected_vs_outcome": {action: dict(counts) for action, counts in confusion.items() if counts},
        "by_position": _grouped(labelled, lambda o: o.position),
        "by_intent": _grouped(labelled, lambda o: o.intent or "unclear"),
    }


def _answered_right(outcome: TurnOutcome) -> bool:
    expected = outcome.expected
    return expected is not None and outcome.reply_kind == "faq" and outcome.faq_slug == expected.slug


def _grouped(outcomes: Sequence[TurnOutcome], key: Any) -> dict[str, Any]:
    groups: dict[str, list[TurnOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(key(outcome), []).append(outcome)
    report = {}
    for name, members in sorted(groups.items()):
        posts = [o for o in members if post_is_right(o) is not None]
        answerable = [o for o in members if o.expected and o.expected.action == "answer"]
        report[name] = {
            "turns": len(members),
            "posts": len(posts),
            "post_precision": _ratio(sum(1 for o in posts if post_is_right(o)), len(posts)),
            "answer_coverage": _ratio(
                sum(1 for o in answerable if _answered_right(o)),
                len(answerable),
            ),
            "wrongly_silenced": sum(
                1 for o in members if o.band == "ignore" and o.expected and o.expected.action in ("answer", "person")
            ),
        }
    return report


def post_candidates(outcomes: Iterable[TurnOutcome]) -> list[PostCandidate]:
    """The labelled public posts of a replay (run with every bar at its lowest: `calibration.permissive`), as
    candidates for fitting the bars. A DM hand-over is a hard rule, not a bar, and is left out."""
    candidates = []
    for outcome in outcomes:
        right = post_is_right(outcome)
        if right is None or outcome.expected is None:
            continue
        if outcome.reply_kind == "faq":
            score = float((outcome.answer or {}).get("score", -1.0))
            candidates.append(PostCandidate("faq", outcome.intent, score, right, outcome.expected.action == "answer"))
        elif outcome.reply_kind in SOCIAL_KINDS:
            candidates.append(PostCandidate("social", outcome.intent, outcome.confidence, right, right))
        elif outcome.reply_kind in ("outage_ack", "handoff_ack"):
            candidates.append(PostCandidate("ack", outcome.intent, outcome.confidence, right, right))
    return candidates


def conversations_from_examples(examples: Iterable[tuple[str, str | None]]) -> list[Conversation]:
    """Single tweets labelled with the FAQ entry that answers them (None: none does) as one-turn conversations:
    the entry's answer is expected, or a person."""
    conversations = []
    for number, (text, slug) in enumerate(examples, 1):
        expected = Expected("answer", slug) if slug else Expected("person")
        conversations.append(Conversation(f"v{number}", (Turn(f"v{number}", "customer", text, expected),), line=number))
    return conversations
