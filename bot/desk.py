"""The care desk's question "what would carebot do with this tweet?": NLU parse, FAQ search, triage, reply.

`Desk` composes the NLU client, the knowledge base, the policy and the tone guide. The NLU or the FAQ
search being unavailable is not an error here: the decision then says so, and nothing is auto-answered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.ask import ask_result
from bot.decision.policy import Policy, load_policy
from bot.decision.tone import RecentReplies, ToneGuide
from bot.decision.triage import Context, FaqEntry
from bot.kb import KnowledgeBase, open_knowledge_base
from bot.nlu.client import NluClient, NluError, NluInputError, NluResult
from bot.nlu.text import InvalidText, clean_for_nlu
from bot.settings import Settings
from knowledge_base.errors import KbError
from knowledge_base.io import read_file
from knowledge_base.search import SearchResult


def nlu_client(settings: Settings) -> NluClient:
    return NluClient(
        settings.effective_nlu_url, settings.effective_nlu_token, timeout_s=settings.nlu_timeout_s,
        retries=settings.nlu_retries, max_chars=settings.nlu_max_chars,
    )  # fmt: skip


@dataclass(frozen=True)
class Question:
    """One tweet for `Desk.ask_many`: its text, what intake knows of its conversation, and how to word a reply."""

    text: str
    context: Context | None = None
    variant_seed: int | str | None = None  # the tweet id: replies to different tweets are worded differently
    recent_replies: tuple[str, ...] = ()  # recent wordings X would reject as duplicates


@dataclass(frozen=True)
class _Parsed:
    nlu: NluResult | None = None
    nlu_error: str | None = None
    no_parse_reason: str | None = None


class Desk:
    def __init__(
        self,
        nlu: NluClient,
        kb: KnowledgeBase,
        policy: Policy,
        guide: ToneGuide,
        *,
        parse_threads: int = 4,
        max_chars: int = 2000,
    ) -> None:
        self.nlu = nlu
        self.kb = kb
        self.policy = policy
        self.guide = guide
        self.parse_threads = parse_threads
        self.max_chars = max_chars  # as the NLU client cuts texts (CAREBOT_NLU_MAX_CHARS)

    def faq_entries(self, search: SearchResult) -> dict[int, FaqEntry]:
        published = self.kb.service.published([hit.entry_id for hit in search.hits])
        return {
            entry_id: FaqEntry(entry_id, version.content.slug, version.content.answer, tuple(version.content.tags))
            for entry_id, version in published.items()
        }

    def _parse(self, text: str, nlu_down: threading.Event | None = None) -> _Parsed:
        """The NLU's parse; once one parse of a batch found the NLU down, the rest are not asked."""
        if nlu_down is not None and nlu_down.is_set():
            return _Parsed(nlu_error="the NLU server is unavailable (an earlier tweet of this batch found it down)")
        try:
            return _Parsed(nlu=self.nlu.parse(text))
        except NluInputError as exc:
            reason = "The tweet has no words to classify (empty once cleaned), so a person looks at it."
            return _Parsed(nlu_error=str(exc), no_parse_reason=reason)
        except NluError as exc:
            if nlu_down is not None:
                nlu_down.set()
            return _Parsed(nlu_error=str(exc))

    def ask(self, text: str, context: Context | None = None) -> dict[str, Any]:
        """The decision, its reasons and the reply for one tweet, as `carebot ask --json` prints it."""
        return self.ask_many([Question(text, context)])[0]

    def ask_many(
        self, questions: Sequence[Question], *, use_nlu: bool = True, recent: RecentReplies | None = None
    ) -> list[dict[str, Any]]:
        """`ask` for several tweets at once. The NLU parses run in parallel threads while the FAQ search embeds
        all the tweets in one batch, so Rasa and the embedding model work at the same time. The NLU or the FAQ
        search being down is no error: each result says so and nothing is auto-answered. A result's
        "nlu_unavailable" is true when the NLU could not be asked at all (also when `use_nlu` is False: the
        caller knows it is down). `recent` holds the wordings not to repeat; every reply composed here is added
        to it, so replies within the batch differ too."""
        if not questions:
            return []
        recent = recent if recent is not None else RecentReplies(guide=self.guide)
        pool: ThreadPoolExecutor | None = None
        pending: Any = None
        if not use_nlu:
            parsed = [_Parsed(nlu_error="the NLU server is unavailable (not asked while it recovers)")] * len(questions)
        else:
            nlu_down = threading.Event()
            if len(questions) > 1 and self.parse_threads > 1:
                pool = ThreadPoolExecutor(max_workers=min(self.parse_threads, len(questions)))
                pending = pool.map(lambda q: self._parse(q.text, nlu_down), questions)
        try:
            queries = [self._search_text(q.text) for q in questions]
            searches, search_errors = self._search_all(queries)
            if use_nlu:
                parsed = list(pending) if pending is not None else [self._parse(q.text, nlu_down) for q in questions]
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        results = []
        for question, parse, search, search_error in zip(questions, parsed, searches, search_errors, strict=True):
            faq: dict[int, FaqEntry] = {}
            if search is not None:
                try:
                    faq = self.faq_entries(search)
                except KbError as exc:
                    search, search_error = None, str(exc)
            for text in question.recent_replies:
                recent.add(text)
            result = ask_result(
                question.text, parse.nlu, search, self.policy, faq=faq, nlu_error=parse.nlu_error,
                no_parse_reason=parse.no_parse_reason, search_error=search_error, context=question.context,
                guide=self.guide, variant_seed=question.variant_seed, recent_replies=recent,
            )  # fmt: skip
            if result["reply"]:
                recent.add(result["reply"])
            results.append(result)
        return results

    def _search_text(self, text: str) -> str:
        """What the FAQ search looks for: the text as the NLU sees it (bot/nlu/text.py), or nothing."""
        try:
            return clean_for_nlu(text, self.max_chars)[0]
        except InvalidText:
            return ""

    def _search_all(self, queries: Sequence[str]) -> tuple[list[SearchResult | None], list[str | None]]:
        searches: list[SearchResult | None] = [None] * len(queries)
        errors: list[str | None] = [None] * len(queries)
        wanted = [i for i, query in enumerate(queries) if query]
        if not wanted:
            return searches, errors
        try:
            vectors = self.kb.searcher.embedder.embed([queries[i] for i in wanted])
        except (KbError, RuntimeError, ValueError) as exc:
            return searches, [f"the FAQ search failed: {exc}" if queries[i] else None for i in range(len(queries))]
        for i, vector in zip(wanted, vectors, strict=True):
            try:
                searches[i] = self.kb.searcher.search_vector(vector)
            except KbError as exc:
                errors[i] = str(exc)
        return searches, errors


def load_default_faq(kb: KnowledgeBase, faq_file: Path, author: str = "carebot") -> int:
    """Import the default FAQ content when the knowledge base has no entries yet; returns how many."""
    if kb.service.list_entries():
        return 0
    records = read_file(faq_file)
    kb.service.import_entries(records, author=author, source=str(faq_file))
    kb.searcher.save()
    return len(records)


@contextmanager
def open_desk(settings: Settings) -> Iterator[Desk]:
    """The desk on carebot's database; a knowledge base without entries gets the default FAQ first."""
    policy = load_policy(settings.training_data_dir / "policy.yml")
    guide = ToneGuide.load(settings.training_data_dir / "tone.yml")
    with open_knowledge_base(settings) as kb, nlu_client(settings) as nlu:
        load_default_faq(kb, settings.training_data_dir / "faq.yml")
        yield Desk(nlu, kb, policy, guide, max_chars=settings.nlu_max_chars)
