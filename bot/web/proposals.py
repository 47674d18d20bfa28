"""Proposed paraphrases: the FAQ learns from the drafts agents approved.

A customer's tweet whose FAQ draft an agent approved unchanged or edited, or whose suggestion an agent inserted and
sent, is evidence that the entry answers that wording; it is proposed to editors as a new paraphrase of that entry.
The tweets come from the labels (handoff/labels.py), stored without mentions, links or personal data; they are
cleaned again as questions for the FAQ (bot/web/unanswered.py), and a tweet that still carries a placeholder for
personal data ("[phone]") is left out, as the training export leaves such tweets out. Dropped too: texts of fewer
than MIN_WORDS words, repeats (counted as evidence of the first), texts at least NEAR_DUPLICATE close (the
editor's near-duplicate bar) to the entry's question or a paraphrase of its working copy, or to a proposal with
more evidence, and the proposals an editor dismissed. A proposal closer to another live entry than to its own is
flagged with that entry: adding it would teach the bot to confuse the two.

Adding a proposal puts it in the entry's working copy, as an editor's edit would: it is live only once someone
publishes the entry, as a new version. A dismissal is remembered as an audit event (paraphrase_dismissed), and an
added proposal is audited too (paraphrase_added).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select

from bot.decision.personal_data import redact
from bot.web.editor import NEAR_DUPLICATE, EditorError, EditorService, NotFound
from bot.web.unanswered import clean_question
from handoff.models import audit_events, labels
from knowledge_base.errors import KbError
from knowledge_base.service import Entry

APPROVING = ("approved", "edited", "suggestion_sent")  # the labels that say the entry answered the tweet
MIN_WORDS = 3
MAX_CHARS = 280
MAX_CACHED = 50_000  # embeddings kept between page views
DISMISSED = "paraphrase_dismissed"
ADDED = "paraphrase_added"
_PLACEHOLDER = re.compile(r"\[[a-z -]+\]")  # what redact() puts in place of personal data
_WORD = re.compile(r"\w+")


class ProposalNotFound(EditorError):
    """No such proposal now (added, dismissed, or no longer proposed)."""


def normalised(text: str) -> str:
    """What makes two wordings the same proposal: their words, lower-cased."""
    return " ".join(_WORD.findall(text.casefold()))


def proposal_key(entry_id: int, text: str) -> str:
    return hashlib.sha256(f"{entry_id}\0{normalised(text)}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Proposal:
    key: str
    entry_id: int
    slug: str
    text: str  # the paraphrase as it would be added
    approvals: int  # labels behind it: approved, edited or sent suggestions of this wording
    by_label: dict[str, int]
    example: str  # one of the tweets, as stored in the labels
    last_at: datetime
    similarity: float  # the closest cosine to the entry's own question or paraphrases
    closer_to: tuple[str, float] | None  # another live entry it is closer to, and how close

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "entry_id": self.entry_id, "slug": self.slug, "text": self.text,
            "approvals": self.approvals, "by_label": dict(self.by_label), "example": self.example,
            "last_at": self.last_at.isoformat(), "similarity": round(self.similarity, 3),
            "closer_to": {"slug": self.closer_to[0], "score": round(self.closer_to[1], 3)} if self.closer_to else None,
        }  # fmt: skip


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def candidate_text(stored: str) -> str | None:
    """A label's stored tweet as a paraphrase, or None when it is not one (too short, personal data left)."""
    text = clean_question(redact(stored))
    if not text or len(text) > MAX_CHARS or _PLACEHOLDER.search(text):
        return None
    if len(_WORD.findall(text)) < MIN_WORDS:
        return None
    return text


class ParaphraseProposals:
    def __init__(
        self, engine: Engine, editor: EditorService, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.engine = engine
        self.editor = editor
        self.clock = clock
        self._vectors: dict[str, np.ndarray] = {}  # text → its embedding (a text's embedding never changes)

    def _embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            if len(self._vectors) > MAX_CACHED:
                self._vectors.clear()
            embedded = self.editor.kb.searcher.embedder.embed(missing)
            for text, vector in zip(missing, embedded, strict=True):
                self._vectors[text] = np.asarray(vector, dtype=np.float64)
        return np.stack([self._vectors[t] for t in texts])

    def dismissed(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_events.c.details).where(audit_events.c.action == DISMISSED))
            return {str(details.get("key")) for (details,) in rows if isinstance(details, dict)}

    def proposals(self, slug: str | None = None) -> list[Proposal]:
        """Every entry's proposals (or one entry's), most evidence first."""
        entries = {e.id: e for e in self.editor.entries() if e.status != "archived"}
        if slug is not None:
            wanted = self.editor.entry(slug)
            entries = {wanted.id: wanted} if wanted.id in entries else {}
        if not entries:
            return []
        query = (
            select(labels.c.faq_entry_id, labels.c.label, labels.c.text, labels.c.at)
            .where(labels.c.label.in_(APPROVING), labels.c.faq_entry_id.in_(list(entries)))
            .order_by(labels.c.id)
        )  # fmt: skip
        grouped: dict[tuple[int, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                text = candidate_text(row.text)
                if text is None:
                    continue
                found = grouped.setdefault(
                    (row.faq_entry_id, normalised(text)),
                    {"text": text, "example": row.text, "labels": {}, "last_at": _utc(row.at)},
                )
                found["labels"][row.label] = found["labels"].get(row.label, 0) + 1
                found["last_at"] = max(found["last_at"], _utc(row.at))
        dismissed = self.dismissed()
        result: list[Proposal] = []
        for entry_id, entry in entries.items():
            mine = [
                (key, found) for (owner, key), found in grouped.items()
                if owner == entry_id and proposal_key(entry_id, found["text"]) not in dismissed
            ]  # fmt: skip
            if mine:
                result += self._for_entry(entry, [found for _, found in mine])
        result.sort(key=lambda p: (-p.approvals, p.slug, p.text))
        return result

    def _for_entry(self, entry: Entry, found: list[dict[str, Any]]) -> list[Proposal]:
        kb = self.editor.kb
        own_texts = [t for t in entry.content.texts if t.strip()]
        own = self._embed(own_texts) if own_texts else np.zeros((0, 1))
        found.sort(key=lambda f: (-sum(f["labels"].values()), f["text"]))
        vectors = self._embed([f["text"] for f in found])
        similarity = (vectors @ own.T).max(axis=1) if len(own) else np.zeros(len(found))
        kept: list[int] = []
        proposals = []
        for i, item in enumerate(found):
            if similarity[i] >= NEAR_DUPLICATE:
                continue  # the entry says this already
            if any(float(vectors[i] @ vectors[j]) >= NEAR_DUPLICATE for j in kept):
                continue  # a proposal with more evidence says this already
            kept.append(i)
            closer = None
            try:
                hits = kb.searcher.search_vector(vectors[i].astype(np.float32), k=3).hits
            except KbError:
                hits = []
            others = [h for h in hits if h.entry_id != entry.id]
            if others and others[0].score > similarity[i]:
                closer = (others[0].slug, float(others[0].score))
            proposals.append(
                Proposal(
                    key=proposal_key(entry.id, item["text"]), entry_id=entry.id, slug=entry.slug, text=item["text"],
                    approvals=sum(item["labels"].values()), by_label=dict(sorted(item["labels"].items())),
                    example=item["example"], last_at=item["last_at"], similarity=float(similarity[i]),
                    closer_to=closer,
                )
            )  # fmt: skip
        return proposals

    def _find(self, slug: str, key: str) -> Proposal:
        proposal = next((p for p in self.proposals(slug) if p.key == key), None)
        if proposal is None:
            raise ProposalNotFound(
                f"That paraphrase is no longer proposed for {slug!r}: it was added or dismissed, or the entry "
                "already says it."
            )
        return proposal

    def add(self, slug: str, key: str, *, author: str) -> Entry:
        """Put the proposal in the entry's working copy (live only when the entry is next published)."""
        proposal = self._find(slug, key)
        entry = self.editor.entry(slug)
        content = entry.content
        changed = type(content)(
            slug=content.slug, question=content.question, answer=content.answer,
            paraphrases=(*content.paraphrases, proposal.text), tags=content.tags, language=content.language,
        )  # fmt: skip
        saved = self.editor.save(slug, changed, author=author)
        self._audit(ADDED, author, proposal)
        return saved

    def dismiss(self, slug: str, key: str, *, author: str) -> Proposal:
        proposal = self._find(slug, key)
        self._audit(DISMISSED, author, proposal)
        return proposal

    def _audit(self, action: str, actor: str, proposal: Proposal) -> None:
        details = {"key": proposal.key, "entry_id": proposal.entry_id, "slug": proposal.slug, "text": proposal.text,
                   "approvals": proposal.approvals}  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(
                insert(audit_events).values(
                    at=_utc(self.clock()), actor=actor, action=action, ticket_id=None, details=details
                )
            )


__all__ = [
    "NEAR_DUPLICATE",
    "NotFound",
    "ParaphraseProposals",
    "Proposal",
    "ProposalNotFound",
    "candidate_text",
    "proposal_key",
]
