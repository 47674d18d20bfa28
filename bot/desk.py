"""The care desk's question "what would carebot do with this tweet?": NLU parse, FAQ search, triage, reply.

`Desk` composes the NLU client, the knowledge base, the policy and the tone guide. The NLU or the FAQ
search being unavailable is not an error here: the decision then says so, and nothing is auto-answered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.ask import Assessment, ask_result
from bot.decision.answer_score import AnswerEvidence, AnswerModel, fit_answer_model
from bot.decision.policy import Policy
from bot.decision.tone import RecentReplies, ToneGuide
from bot.decision.triage import Context, FaqEntry
from bot.kb import KnowledgeBase, cached_in, kb_config, open_knowledge_base
from bot.nlu.client import NluClient, NluError, NluInputError, NluResult
from bot.nlu.evaluation import TrainingDataError, load_examples
from bot.nlu.text import InvalidText, clean_for_nlu
from bot.settings import Settings
from bot.yaml_files import read_yaml
from knowledge_base.errors import KbError
from knowledge_base.io import read_file
from knowledge_base.search import FaqSearcher, SearchResult


def nlu_client(settings: Settings) -> NluClient:
    return NluClient(
        settings.effective_nlu_urls, settings.effective_nlu_token, timeout_s=settings.nlu_timeout_s,
        retries=settings.nlu_retries, max_chars=settings.nlu_max_chars,
    )  # fmt: skip


_log = logging.getLogger(__name__)


class LiveAnswerModel:
    """The answer model of the live FAQ: fitted on first use and again whenever the knowledge base's version has
    moved on (a publish, unpublish or rollback in any process), from the index's own vectors and the
    out-of-scope examples (embedded once, cached on disk).

    `negatives`, when given, returns the vectors of the tweets agents rejected each entry's draft for (bot.learning);
    each fit takes them as that entry's counter-examples, so a rejection counts from the next publish (or the
    next start). Reading them may fail (the database gone for a moment): the fit then goes on without them."""

    def __init__(
        self, searcher: FaqSearcher, out_of_scope: Sequence[str], cache_dir: Path | None = None,
        negatives: Callable[[], Mapping[int, np.ndarray]] | None = None,
    ) -> None:  # fmt: skip
        self.searcher = searcher
        self.out_of_scope = tuple(out_of_scope)
        self.cache_dir = cache_dir
        self.negatives = negatives
        self._model: AnswerModel | None = None
        self._draft: tuple[tuple[Any, ...], AnswerModel] | None = None  # the last draft preview's model
        self._oos: np.ndarray | None = None
        self._lock = threading.Lock()
        self.fit_seconds: list[float] = []  # how long each fit took

    def out_of_scope_vectors(self) -> np.ndarray:
        if self._oos is None:
            embedder = self.searcher.embedder
            if self.cache_dir is not None:
                embedder = cached_in(embedder, self.cache_dir)
            self._oos = np.asarray(embedder.embed(list(self.out_of_scope)), dtype=np.float32)
        return self._oos

    def _negatives(self) -> Mapping[int, np.ndarray] | None:
        if self.negatives is None:
            return None
        try:
            return self.negatives()
        except Exception as exc:  # noqa: BLE001 - the answer model must not wait for the labels
            _log.warning("answer model fitted without the rejected drafts: %s", exc)
            return None

    def current(self) -> AnswerModel:
        with self._lock:
            version = self.searcher.kb_version()
            if self._model is None or self._model.kb_version != version:
                version, entries = self.searcher.live_entries()
                self._model = fit_answer_model(
                    entries, self.out_of_scope_vectors(), kb_version=version, previous=self._model,
                    head_cache=self.cache_dir, negatives=self._negatives(),
                )  # fmt: skip
                self.fit_seconds.append(self._model.fit_seconds)
            return self._model

    def with_entry(self, entry_id: int, slug: str, vectors: np.ndarray) -> AnswerModel:
        """A model of the live FAQ with one entry's texts replaced (the editor's preview of a draft). The last one
        is kept: an editor previews several tweets against the same draft, and a fit takes about a second."""
        vectors = np.asarray(vectors, dtype=np.float32)
        version, entries = self.searcher.live_entries()
        key = (version, entry_id, slug, vectors.tobytes())
        with self._lock:
            if self._draft is not None and self._draft[0] == key:
                return self._draft[1]
        entries[entry_id] = (slug, vectors)
        model = fit_answer_model(entries, self.out_of_scope_vectors(), kb_version=version, previous=self._model)
        with self._lock:
            self._draft = (key, model)
        return model


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


def _decided_without_parse(question: Question) -> bool:
    """Whether the tweet's decision cannot depend on the NLU's parse, so Rasa is not asked: one of our own tweets
    (triage ignores it before it reads anything else). Not an explicit opt-out or an exact repeat: their decisions
    carry Rasa's reading (the kind of message, its confidence and the reason that says so), a repeat Rasa reads as
    an opt-out goes to a person, and in a thread a person holds the kind sets the priority."""
    return question.context is not None and question.context.from_our_account


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
        out_of_scope: Sequence[str] = (),
        out_of_scope_cache: Path | None = None,
        negatives: Callable[[], Mapping[int, np.ndarray]] | None = None,
    ) -> None:
        self.nlu = nlu
        self.kb = kb
        self.policy = policy
        self.guide = guide
        self.parse_threads = parse_threads
        self.max_chars = max_chars  # as the NLU client cuts texts (CAREBOT_NLU_MAX_CHARS)
        self.answers = LiveAnswerModel(kb.searcher, out_of_scope, out_of_scope_cache, negatives)

    def answer_model(self) -> AnswerModel:
        """The answer model of the live FAQ (refitted after a publish)."""
        return self.answers.current()

    def faq_entries(self, search: SearchResult, also: Sequence[int] = ()) -> dict[int, FaqEntry]:
        published = self.kb.service.published([*{hit.entry_id for hit in search.hits}, *also])
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

    def ask(self, text: str, context: Context | None = None) -> Assessment:
        """The decision, its reasons and the reply for one tweet."""
        return self.ask_many([Question(text, context)])[0]

    def ask_many(
        self, questions: Sequence[Question], *, use_nlu: bool = True, recent: RecentReplies | None = None
    ) -> list[Assessment]:
        """`ask` for several tweets at once. The NLU parses run in parallel threads while the FAQ search embeds
        all the tweets in one batch, so Rasa and the embedding model work at the same time. The NLU or the FAQ
        search being down is no error: each result says so and nothing is auto-answered. A result's
        "nlu_unavailable" is true when the NLU could not be asked at all (also when `use_nlu` is False: the
        caller knows it is down). A tweet whose decision cannot depend on the parse (one of our own) is decided
        without asking the NLU, even while it is down. `recent` holds the wordings not to repeat; every reply
        composed here is added to it, so replies within the batch differ too."""
        if not questions:
            return []
        recent = recent if recent is not None else RecentReplies(guide=self.guide)
        # Rasa is not asked where the decision cannot depend on its parse (nor waited for while it is down).
        to_parse = [q for q in questions if not _decided_without_parse(q)]
        pool: ThreadPoolExecutor | None = None
        pending: Any = None
        if not use_nlu:
            parsed = [_Parsed(nlu_error="the NLU server is unavailable (not asked while it recovers)")] * len(to_parse)
        else:
            nlu_down = threading.Event()
            if len(to_parse) > 1 and self.parse_threads > 1:
                pool = ThreadPoolExecutor(max_workers=min(self.parse_threads, len(to_parse)))
                pending = pool.map(lambda q: self._parse(q.text, nlu_down), to_parse)
        try:
            queries = [self._search_text(q.text) for q in questions]
            searches, search_errors, answers = self._search_all(queries)
            if use_nlu:
                parsed = list(pending) if pending is not None else [self._parse(q.text, nlu_down) for q in to_parse]
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        parses = iter(parsed)
        parsed = [_Parsed() if _decided_without_parse(q) else next(parses) for q in questions]
        results = []
        rows = zip(questions, parsed, searches, search_errors, answers, strict=True)
        for question, parse, search, search_error, answer in rows:
            faq: dict[int, FaqEntry] = {}
            if search is not None:
                try:
                    faq = self.faq_entries(search, [answer.entry_id] if answer else [])
                except KbError as exc:
                    search, search_error = None, str(exc)
            for text in question.recent_replies:
                recent.add(text)
            result = ask_result(
                question.text, parse.nlu, search, self.policy, faq=faq, nlu_error=parse.nlu_error,
                no_parse_reason=parse.no_parse_reason, search_error=search_error, context=question.context,
                guide=self.guide, variant_seed=question.variant_seed, recent_replies=recent, answer=answer,
            )  # fmt: skip
            if result.reply:
                recent.add(result.reply)
            results.append(result)
        return results

    def _search_text(self, text: str) -> str:
        """What the FAQ search looks for: the text as the NLU sees it (bot/nlu/text.py), or nothing."""
        try:
            return clean_for_nlu(text, self.max_chars)[0]
        except InvalidText:
            return ""

    def _search_all(
        self, queries: Sequence[str]
    ) -> tuple[list[SearchResult | None], list[str | None], list[AnswerEvidence | None]]:
        """The FAQ search and the answer model's best entry for each query (None where there is no query)."""
        searches: list[SearchResult | None] = [None] * len(queries)
        errors: list[str | None] = [None] * len(queries)
        answers: list[AnswerEvidence | None] = [None] * len(queries)
        wanted = [i for i, query in enumerate(queries) if query]
        if not wanted:
            return searches, errors, answers
        try:
            vectors = self.kb.searcher.embedder.embed([queries[i] for i in wanted])
            model = self.answer_model()
        except (KbError, RuntimeError, ValueError) as exc:
            failed = [f"the FAQ search failed: {exc}" if queries[i] else None for i in range(len(queries))]
            return searches, failed, answers
        for i, vector, evidence in zip(wanted, vectors, model.assess(vectors), strict=True):
            try:
                searches[i] = self.kb.searcher.search_vector(vector)
                answers[i] = evidence
            except KbError as exc:
                errors[i] = str(exc)
        return searches, errors, answers


def load_default_faq(kb: KnowledgeBase, faq_file: Path, author: str = "carebot") -> int:
    """Import the default FAQ content when the knowledge base has no entries yet; returns how many."""
    if kb.service.list_entries():
        return 0
    records = read_file(faq_file)
    kb.service.import_entries(records, author=author, source=str(faq_file))
    kb.searcher.save()
    return len(records)


def out_of_scope_texts(training_data_dir: Path, policy: Policy) -> list[str]:
    """Texts no FAQ entry answers, for the answer model's out_of_scope class: the NLU examples of every kind the
    policy never answers from the FAQ (complaints, outage reports, chit-chat, …) and training_data/out_of_scope.yml
    (account problems and near misses: on an FAQ topic, but the FAQ answer would not help)."""
    never = {name for name, rules in policy.intents.items() if rules.faq == "never" or rules.reply}
    texts: list[str] = []
    for path in sorted((training_data_dir / "nlu").glob("*.yml")):
        try:
            examples = load_examples(path)
        except TrainingDataError:
            continue  # a file without intent examples (entities, lookup tables)
        texts += [example.text for example in examples if example.intent in never]
    extra = training_data_dir / "out_of_scope.yml"
    if extra.exists():
        data = read_yaml(extra, "out-of-scope file", ValueError)
        texts += [str(text) for text in (data or {}).get("examples", []) if str(text).strip()]
    return list(dict.fromkeys(texts))


@contextmanager
def open_desk(settings: Settings, *, policy: Policy | None = None) -> Iterator[Desk]:
    """The desk on carebot's database; a knowledge base without entries gets the default FAQ first. Its answer
    model takes the tweets agents rejected an entry's draft for as that entry's counter-examples."""
    from bot.db import make_engine
    from bot.learning import negative_vectors, rejected_tweets
    from bot.policy_versions import live_policy

    # The live policy: its newest version in the database, else the policy file.
    policy = policy or live_policy(settings.effective_database_url, settings.training_data_dir / "policy.yml")
    guide = ToneGuide.load(settings.training_data_dir / "tone.yml")
    cache_dir = kb_config(settings).embedding_cache_dir
    engine = make_engine(settings.effective_database_url)
    try:
        with open_knowledge_base(settings) as kb, nlu_client(settings) as nlu:
            load_default_faq(kb, settings.training_data_dir / "faq.yml")
            embedder = cached_in(kb.searcher.embedder, cache_dir)
            yield Desk(
                nlu, kb, policy, guide, max_chars=settings.nlu_max_chars,
                out_of_scope=out_of_scope_texts(settings.training_data_dir, policy), out_of_scope_cache=cache_dir,
                negatives=lambda: negative_vectors(rejected_tweets(engine), embedder),
            )  # fmt: skip
    finally:
        engine.dispose()
