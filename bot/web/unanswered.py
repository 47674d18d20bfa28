"""Unanswered questions and training examples: what the FAQ editor learns from the tweets people had to answer.

Unanswered questions are stored tweets that went to people (band human or approve) while no FAQ entry was close
enough, of a kind of message the FAQ may answer (not complaints, outage reports, spam and the like, which the
policy never answers from the FAQ): the answer score (bot/decision/answer_score.py; the top FAQ cosine for tweets
decided before it existed) below the policy's bar for an automatic answer, or no hit at all. They are grouped by
meaning (their embeddings, clustered around the densest tweets), largest group first, each with examples, the
replies agents gave, and a suggested draft. The training export turns agents' resolutions (resolved tickets with a kind
of message or an FAQ answer) into examples in Rasa's NLU YAML, cleaned of mentions and links; a tweet with any
personal data (bot/decision/personal_data.py) is left out of it. In the groups, every piece of personal data in
the questions, examples, agents' replies, slugs and draft links is replaced by a placeholder such as "[name]".
A draft link's fields start with no =, +, -, @ or white space: customer text that a spreadsheet would run as a
formula does not become the start of an FAQ question or answer (the CSV export neutralises such cells too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np
from sqlalchemy import Engine, select

from bot.channel.models import inbound_tweets
from bot.db import as_utc
from bot.decision.personal_data import find_personal_data, redact
from bot.decision.policy import Policy
from bot.decision.tone import ToneGuide
from bot.nlu.text import InvalidText, clean_for_nlu
from handoff.models import messages, tickets

MAX_QUESTION_CHARS = 2000
GROUP_SIMILARITY = 0.55  # tweets at least this similar to a group's centre tweet join its group
ESCALATED_BANDS = ("human", "approve")
_MENTION = re.compile(r"(?<!\w)@\w{1,15}")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_SLUG_WORD = re.compile(r"[a-z0-9]+")
_PLACEHOLDER = re.compile(r"\[[a-z -]+\]")  # what redact() puts in place of personal data
_FORMULA_START = re.compile(r"^[=+\-@\s]+")  # how a spreadsheet formula starts (OWASP), white space too
_STOP_WORDS = frozenset(
    "a an the i my me we our you your is are am be to of in on for and or do does did how can could would what "
    "when where why it its this that there with please hi hello hey just".split()
)


def clean_question(text: str) -> str:
    """A customer's tweet as a question for the FAQ: cleaned as for the NLU (bot/nlu/text.py: no control,
    bidi or zero-width characters, NFC), without @mentions or links, on one line."""
    try:
        text = clean_for_nlu(text, MAX_QUESTION_CHARS)[0]
    except InvalidText:
        return ""
    text = _URL.sub(" ", _MENTION.sub(" ", text))
    return " ".join(text.split()).strip(" ,;:-")


def draft_field(text: str) -> str:
    """Text for a prefilled draft field, without what would make a spreadsheet take it for a formula."""
    return _FORMULA_START.sub("", text)


def suggested_slug(question: str) -> str:
    words = [w for w in _SLUG_WORD.findall(_PLACEHOLDER.sub(" ", question.lower())) if w not in _STOP_WORDS]
    slug = "-".join(words[:5]) or "new-question"
    return slug[:60].strip("-")


# ---------------------------------------------------------------- grouping


def group_by_meaning(vectors: np.ndarray, threshold: float = GROUP_SIMILARITY) -> list[list[int]]:
    """Groups of row indices of unit vectors, largest first; each group's first index is its centre.

    Repeatedly, the tweet with the most not-yet-grouped neighbours (similarity ≥ threshold) becomes a centre and
    takes those neighbours: a paraphrase joins the question it paraphrases, not a chain of loosely related tweets.
    """
    count = len(vectors)
    if count == 0:
        return []
    close = (vectors @ vectors.T) >= threshold
    np.fill_diagonal(close, True)
    neighbours = close.sum(axis=1).astype(np.int64)  # not-yet-grouped neighbours of each tweet, itself included
    free = np.ones(count, dtype=bool)
    groups: list[list[int]] = []
    while free.any():
        centre = int(np.where(free, neighbours, -1).argmax())
        taken = np.flatnonzero(close[centre] & free)
        groups.append([centre, *(int(i) for i in taken if i != centre)])
        free[taken] = False
        neighbours -= close[:, taken].sum(axis=1)
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


# ---------------------------------------------------------------- view objects


@dataclass(frozen=True)
class UnansweredTweet:
    tweet_id: str
    text: str
    author: str | None
    created_at: datetime | None
    ticket_id: int | None
    band: str
    top_score: float | None
    top_slug: str | None


@dataclass(frozen=True)
class AgentReply:
    author: str  # the agent's initials
    text: str
    ticket_id: int


@dataclass(frozen=True)
class QuestionGroup:
    size: int  # tweets in the group
    tweets: list[UnansweredTweet]  # examples, the centre tweet first
    replies: list[AgentReply]
    question: str  # the centre tweet, cleaned: a starting point for the entry's question
    paraphrases: list[str]  # other members, cleaned and distinct
    answer: str  # the first agent reply without its signature: a starting point for the answer
    slug: str

    @property
    def draft_link(self) -> str:
        """The new-entry form filled in from this group."""
        query = [("slug", self.slug), ("question", draft_field(self.question)[:500])]
        query += [("answer", draft_field(self.answer)[:1000])]
        query += [("paraphrase", draft_field(p)[:500]) for p in self.paraphrases]
        return "/faq/new?" + urlencode(query)

    @property
    def nearest(self) -> tuple[str, float] | None:
        scored = [(t.top_slug, t.top_score) for t in self.tweets if t.top_slug and t.top_score is not None]
        if not scored:
            return None
        slug, score = max(scored, key=lambda pair: pair[1])
        return str(slug), float(score)


@dataclass(frozen=True)
class TrainingExample:
    intent: str
    text: str
    ticket_id: int
    faq_slug: str | None


# ---------------------------------------------------------------- the service


class UnansweredQuestions:
    def __init__(
        self,
        engine: Engine,
        knowledge_base: Callable[[], Any],
        policy: Policy,
        guide: ToneGuide,
        *,
        threshold: float = GROUP_SIMILARITY,
        days: int = 30,
        limit: int = 2000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self._knowledge_base = knowledge_base
        self.policy = policy
        self.guide = guide
        self.threshold = threshold
        self.days = days
        self.limit = limit
        self.clock = clock
        self._vectors: dict[str, np.ndarray] = {}  # tweet id → embedding of its cleaned text (tweets never change)

    @property
    def score_limit(self) -> float:
        """Below this answer score no entry was close enough for an automatic answer."""
        return float(self.policy.auto.min_score)

    def tweets(self) -> list[UnansweredTweet]:
        """Escalated tweets of the last `days` no FAQ entry was close to, newest first."""
        since = self.clock() - timedelta(days=self.days)
        query = (
            select(inbound_tweets)
            .where(inbound_tweets.c.band.in_(ESCALATED_BANDS), inbound_tweets.c.fetched_at >= since)
            .order_by(inbound_tweets.c.fetched_at.desc())
            .limit(self.limit)
        )
        found = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                stored = row.decision if isinstance(row.decision, dict) else {}
                hits = stored.get("faq_hits") or []
                decision = stored.get("decision") or {}
                kind = decision.get("intent")
                if kind and self.policy.intent(kind).faq == "never":
                    continue  # a complaint, an outage report, spam…: no FAQ entry is what it needs
                answer = decision.get("answer") or {}
                top = answer.get("score", stored.get("faq_top_score"))
                if top is not None and float(top) >= self.score_limit:
                    continue
                found.append(
                    UnansweredTweet(
                        tweet_id=row.tweet_id, text=row.text, author=row.author_username,
                        created_at=as_utc(row.created_at or row.fetched_at), ticket_id=row.ticket_id, band=row.band,
                        top_score=float(top) if top is not None else None,
                        top_slug=hits[0].get("slug") if hits and isinstance(hits[0], dict) else None,
                    )  # fmt: skip
                )
        return found

    def _embed(self, tweets: Sequence[UnansweredTweet]) -> np.ndarray:
        missing = [t for t in tweets if t.tweet_id not in self._vectors]
        if missing:
            embedder = self._knowledge_base().searcher.embedder
            texts = [clean_question(t.text) or t.text for t in missing]
            for tweet, vector in zip(missing, embedder.embed(texts), strict=True):
                self._vectors[tweet.tweet_id] = np.asarray(vector, dtype=np.float32)
        return np.stack([self._vectors[t.tweet_id] for t in tweets])

    def groups(self, *, examples: int = 6) -> list[QuestionGroup]:
        """The unanswered tweets grouped by meaning, largest group first."""
        tweets = [t for t in self.tweets() if clean_question(t.text)]
        if not tweets:
            return []
        replies = self._agent_replies({t.ticket_id for t in tweets if t.ticket_id is not None})
        result = []
        for members in group_by_meaning(self._embed(tweets), self.threshold):
            group = [tweets[i] for i in members]
            texts = list(dict.fromkeys(redact(clean_question(t.text)) for t in group))
            seen = {text.casefold() for text in texts[:1]}
            paraphrases: list[str] = []
            for text in texts[1:]:
                if text.casefold() not in seen and len(paraphrases) < 8:
                    seen.add(text.casefold())
                    paraphrases.append(text)
            given = [
                replace(reply, text=redact(reply.text))
                for t in group
                if t.ticket_id is not None
                for reply in replies.get(t.ticket_id, [])
            ]
            distinct = list({reply.text: reply for reply in given}.values())
            answer = self.guide.signature_pattern.sub("", distinct[0].text).strip() if distinct else ""
            result.append(
                QuestionGroup(
                    size=len(group), tweets=[replace(t, text=redact(t.text)) for t in group[:examples]],
                    replies=distinct[:3], question=texts[0],
                    paraphrases=paraphrases, answer=answer, slug=suggested_slug(texts[0]),
                )  # fmt: skip
            )
        return result

    def _agent_replies(self, ticket_ids: Iterable[int]) -> dict[int, list[AgentReply]]:
        ids = list(ticket_ids)
        if not ids:
            return {}
        found: dict[int, list[AgentReply]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(messages.c.ticket_id, messages.c.author, messages.c.text)
                .where(messages.c.ticket_id.in_(ids), messages.c.direction == "out", messages.c.author != "bot")
                .order_by(messages.c.id)
            )
            for row in rows:
                found.setdefault(row.ticket_id, []).append(AgentReply(row.author, row.text, row.ticket_id))
        return found

    # ------------------------------------------------ training examples

    def training_examples(self) -> list[TrainingExample]:
        """The first customer tweet of every resolved ticket with a kind of message (intent) or an FAQ answer an
        agent sent, without mentions, links or personal data. An FAQ-answered tweet of unknown kind counts as a
        product question (the FAQ's home ground in the policy)."""
        kb = self._knowledge_base()
        answers = {
            " ".join(e.content.answer.split()).casefold(): e.slug
            for e in kb.service.list_entries(status="published")
        }
        with self.engine.connect() as conn:
            resolved = conn.execute(
                select(tickets.c.id, tickets.c.intent).where(tickets.c.state == "resolved").order_by(tickets.c.id)
            ).all()
            ids = [row.id for row in resolved]
            thread = conn.execute(
                select(messages.c.ticket_id, messages.c.direction, messages.c.author, messages.c.text)
                .where(messages.c.ticket_id.in_(ids))
                .order_by(messages.c.id)
            ).all() if ids else []  # fmt: skip
        first_in: dict[int, str] = {}
        agent_out: dict[int, list[str]] = {}
        for message in thread:
            if message.direction == "in":
                first_in.setdefault(message.ticket_id, message.text)
            elif message.author != "bot":
                agent_out.setdefault(message.ticket_id, []).append(" ".join(message.text.split()).casefold())
        examples = []
        seen: set[tuple[str, str]] = set()
        for row in resolved:
            text = first_in.get(row.id)
            if not text:
                continue
            slug = next(
                (s for answer, s in answers.items() for reply in agent_out.get(row.id, []) if answer in reply), None
            )
            intent = row.intent or ("product_question" if slug else None)
            cleaned = clean_question(text).replace("[", "(").replace("]", ")")
            if not intent or not cleaned or find_personal_data(cleaned):
                continue
            key = (intent, cleaned.casefold())
            if key in seen:
                continue
            seen.add(key)
            examples.append(TrainingExample(intent, cleaned, row.id, slug))
        return examples


def nlu_yaml(examples: Sequence[TrainingExample], *, generated_at: datetime) -> str:
    """Rasa 3 NLU training data (version "3.1"), one block per intent, intents in name order."""
    lines = [
        'version: "3.1"',
        f"# Training examples from agents' resolutions, exported by carebot at {generated_at:%Y-%m-%d %H:%M} UTC.",
        "# Review them before adding them to training_data/nlu/.",
        "nlu:",
    ]
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(example.text)
    for intent in sorted(by_intent):
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {text}" for text in by_intent[intent])
    if not by_intent:
        lines[-1] = "nlu: []"
    return "\n".join(lines) + "\n"
