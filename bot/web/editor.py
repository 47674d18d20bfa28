"""The FAQ editor's service layer: what the editor pages call to list, write, check, publish and preview entries.

It composes the knowledge base (bot.kb: the editor service and the searcher), the triage policy, the tone guide and
the NLU client. "What would the bot do with this tweet?" runs the same decision as the worker (bot.ask.ask_result)
over the published entries, optionally with one entry's working copy standing in for its live version, so an
editor sees the effect of a draft before anyone else does.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.ask import ask_result
from bot.decision.policy import Policy
from bot.decision.tone import BOT, ToneError, ToneGuide, check, compose_reply
from bot.decision.triage import FaqEntry
from bot.nlu.client import NluError, NluInputError, NluResult
from bot.web.console import ConsoleError
from bot.web.console import NotFound as ConsoleNotFound
from knowledge_base.errors import EntryNotFound, KbError, KbValidationError
from knowledge_base.search import Hit, SearchResult
from knowledge_base.service import Entry, EntryContent, EntryVersion, render_content
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

MAX_TWEET_CHARS = 2000  # a preview tweet longer than this is refused (a tweet is 280)
NEAR_DUPLICATE = 0.75  # other entries at least this close to a question are shown as near-duplicates


class EditorError(ConsoleError):
    """The FAQ change cannot be made; the message (and `problems`) say why, in words an editor reads."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class NotFound(EditorError, ConsoleNotFound):
    """There is no such FAQ entry."""


class Parser(Protocol):
    def parse(self, text: str) -> NluResult: ...


# ---------------------------------------------------------------- view objects


@dataclass(frozen=True)
class NearEntry:
    slug: str
    text: str  # the question or paraphrase it is close to
    score: float


@dataclass(frozen=True)
class EntryCheck:
    """Live feedback on an entry being written: the rules it breaks, its length as X counts, the bot's reply."""

    problems: list[str]
    length: int  # the answer with the bot's signature, weighted as X counts
    limit: int
    signature: str
    reply: str | None  # the reply the bot would post with this answer (one of its wordings)
    tone: list[str]  # tone-guide findings on that reply
    near: list[NearEntry]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.tone

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "problems": self.problems, "length": self.length, "limit": self.limit,
            "signature": self.signature, "reply": self.reply, "tone": self.tone,
            "near": [{"slug": n.slug, "text": n.text, "score": round(n.score, 3)} for n in self.near],
        }  # fmt: skip


@dataclass(frozen=True)
class PreviewHit:
    slug: str
    score: float
    text: str
    is_draft: bool  # the working copy under preview, not a published version


@dataclass(frozen=True)
class Preview:
    """What the bot would do with a tweet: the band, its reasons and the exact reply."""

    text: str
    band: str
    reasons: list[str]
    reply: str | None
    reply_status: str | None  # bot_posts | agent_sends
    intent: str | None
    confidence: float
    faq_slug: str | None  # the entry the reply answers with
    hits: list[PreviewHit]
    nlu_error: str | None
    tone: list[str] = field(default_factory=list)
    draft_slug: str | None = None

    @property
    def answers_with_draft(self) -> bool:
        return self.draft_slug is not None and self.faq_slug == self.draft_slug


@dataclass(frozen=True)
class DiffLine:
    kind: str  # hunk | add | remove | same
    text: str


# ---------------------------------------------------------------- the service


class EditorService:
    def __init__(
        self,
        knowledge_base: Callable[[], Any],
        policy: Policy,
        guide: ToneGuide,
        *,
        answers: Callable[[], Any],
        nlu: Callable[[], Parser | None] | None = None,
    ) -> None:
        self._knowledge_base = knowledge_base  # () -> bot.kb.KnowledgeBase, opened on first use
        self.policy = policy
        self.guide = guide
        self._nlu = nlu
        self._answers = answers  # () -> bot.desk.LiveAnswerModel of the same knowledge base

    @property
    def kb(self) -> Any:
        return self._knowledge_base()

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except EntryNotFound as exc:
            raise NotFound(str(exc)) from exc
        except KbValidationError as exc:
            raise EditorError("The entry breaks the rules: " + "; ".join(exc.problems) + ".", exc.problems) from exc
        except KbError as exc:
            raise EditorError(str(exc)[:1].upper() + str(exc)[1:] + ".") from exc

    # ------------------------------------------------ reading

    def entries(self, *, query: str = "", status: str | None = None, tag: str | None = None) -> list[Entry]:
        """Entries whose slug, question, paraphrases, answer or tags contain every word of `query`."""
        found: list[Entry] = self._call(lambda: self.kb.service.list_entries(status=status or None, tag=tag or None))
        words = query.casefold().split()
        if not words:
            return found
        return [entry for entry in found if all(word in _haystack(entry.content) for word in words)]

    def tags(self) -> list[str]:
        return sorted({tag for entry in self.entries() for tag in entry.content.tags})

    def entry(self, slug: str) -> Entry:
        entry: Entry = self._call(lambda: self.kb.service.get(slug))
        return entry

    def history(self, slug: str) -> list[EntryVersion]:
        versions: list[EntryVersion] = self._call(lambda: self.kb.service.history(slug))
        return versions

    def diff(self, slug: str, old: int, new: int | None) -> list[DiffLine]:
        """A readable diff between two versions (`new=None`: the working copy), line by line."""
        service = self.kb.service
        before = self._call(lambda: service.get_version(slug, old)).content
        after = self.entry(slug).content if new is None else self._call(lambda: service.get_version(slug, new)).content
        lines = []
        for line in difflib.unified_diff(render_content(before), render_content(after), lineterm="", n=20):
            if line.startswith(("---", "+++")):
                continue
            kind = {"@": "hunk", "+": "add", "-": "remove"}.get(line[:1], "same")
            lines.append(DiffLine(kind, line[1:] if kind != "hunk" else ""))
        return lines

    # ------------------------------------------------ writing

    def create(self, content: EntryContent, *, author: str) -> Entry:
        entry: Entry = self._call(lambda: self.kb.service.create_draft(content, author=author))
        return entry

    def save(self, slug: str, content: EntryContent, *, author: str) -> Entry:
        entry: Entry = self._call(
            lambda: self.kb.service.edit(
                slug,
                author=author,
                question=content.question,
                answer=content.answer,
                paraphrases=content.paraphrases,
                tags=content.tags,
                language=content.language,
            )  # fmt: skip
        )
        return entry

    def publish(self, slug: str, *, author: str) -> Entry:
        """Make the working copy live; searchers everywhere catch up within the refresh interval.

        Refused while the bot's reply with the answer breaks the tone guide: the outbox would refuse every such
        reply, so the entry would be live and never posted."""
        working: Entry = self._call(lambda: self.kb.service.get(slug))
        self._refuse_tone_findings(working.content, "published")
        entry: Entry = self._call(lambda: self.kb.service.publish(slug, author=author))
        self._refresh_search()
        return entry

    def unpublish(self, slug: str, *, author: str) -> Entry:
        entry: Entry = self._call(lambda: self.kb.service.unpublish(slug, author=author))
        self._refresh_search()
        return entry

    def rollback(self, slug: str, version: int, *, author: str) -> Entry:
        """Make an earlier version live again, unless the tone guide (as it is now) refuses its answer."""
        earlier: EntryVersion = self._call(lambda: self.kb.service.get_version(slug, version))
        self._refuse_tone_findings(earlier.content, "rolled back to")
        entry: Entry = self._call(lambda: self.kb.service.rollback(slug, version, author=author))
        self._refresh_search()
        return entry

    def _refresh_search(self) -> None:
        try:
            self.kb.searcher.refresh()
        except KbError:
            pass  # the searcher catches up on its next search anyway

    def _refuse_tone_findings(self, content: EntryContent, done: str) -> None:
        findings = self._tone_findings(content.cleaned())[1]
        if findings:
            raise EditorError(
                f"The entry cannot be {done}: the bot's reply with this answer breaks the tone guide: "
                + "; ".join(findings),
                findings,
            )

    def _tone_findings(self, content: EntryContent) -> tuple[str | None, list[str]]:
        """The reply the bot would post with the answer (one of its wordings) and the tone guide's findings on it."""
        if not content.answer:
            return None, []
        try:
            reply = compose_reply("faq_answer", BOT, variant_seed=content.slug or "preview",
                                  answer=content.answer, guide=self.guide)  # fmt: skip
        except ToneError as exc:
            return None, [str(exc)]
        return reply, [v.message for v in check(reply, BOT, guide=self.guide)]

    # ------------------------------------------------ live feedback

    def check(self, content: EntryContent) -> EntryCheck:
        """Everything an editor should know while writing: rules broken, length with the signature, the bot's
        reply and its tone findings, and the published entries whose texts are close to the question."""
        content = content.cleaned()
        kb = self.kb
        signature = self.guide.signature(BOT)
        problems: list[str] = self._call(lambda: kb.service.check(content))
        reply, tone = self._tone_findings(content)
        near: list[NearEntry] = []
        if content.question:
            try:
                result = kb.searcher.search(content.question, k=4)
            except KbError:
                result = None
            for hit in result.hits if result else []:
                if hit.slug != content.slug and hit.score >= NEAR_DUPLICATE:
                    near.append(NearEntry(hit.slug, hit.text, float(hit.score)))
        return EntryCheck(
            problems=problems, length=weighted_length(f"{content.answer} {signature}") if content.answer else 0,
            limit=MAX_WEIGHTED_LENGTH, signature=signature, reply=reply, tone=tone, near=near,
        )  # fmt: skip

    # ------------------------------------------------ what would the bot do

    def _parse(self, text: str) -> tuple[NluResult | None, str | None, str | None]:
        """(parse, error, no-parse reason) as the worker's desk gets them."""
        parser = self._nlu() if self._nlu else None
        if parser is None:
            return None, "the NLU server is not configured", None
        try:
            return parser.parse(text), None, None
        except NluInputError as exc:
            reason = "The tweet has no words to classify (empty once cleaned), so a person looks at it."
            return None, str(exc), reason
        except NluError as exc:
            return None, str(exc), None

    def preview(self, text: str, *, draft: str | None = None) -> Preview:
        """The decision for `text` against the published FAQ, or with the entry `draft`'s working copy standing in
        for its live version (a draft never published competes as a new entry)."""
        if not text.strip():
            raise EditorError("Type a tweet to see what the bot would do with it.")
        if len(text) > MAX_TWEET_CHARS:
            raise EditorError(f"The tweet is longer than {MAX_TWEET_CHARS} characters; a tweet has 280.")
        kb = self.kb
        nlu, nlu_error, no_parse_reason = self._parse(text)
        query = nlu.text if nlu is not None and nlu.text.strip() else text.strip()
        search: SearchResult | None = None
        search_error: str | None = None
        faq: dict[int, FaqEntry] = {}
        draft_entry = self.entry(draft) if draft else None
        try:
            vector = kb.searcher.embedder.embed([query])[0]
            search = kb.searcher.search_vector(vector, k=5)
            published = kb.service.published([hit.entry_id for hit in search.hits])
            faq = {
                entry_id: FaqEntry(entry_id, v.content.slug, v.content.answer, tuple(v.content.tags))
                for entry_id, v in published.items()
            }
            if draft_entry is not None:
                search = self._with_draft(search, draft_entry, vector, kb)
                faq[draft_entry.id] = FaqEntry(
                    draft_entry.id, draft_entry.slug, draft_entry.content.answer, tuple(draft_entry.content.tags)
                )
        except KbError as exc:
            search, search_error = None, str(exc)
        answer = None
        if search is not None:
            try:
                answers = self._answers()
                if draft_entry is not None:
                    texts = draft_entry.content.texts
                    model = answers.with_entry(draft_entry.id, draft_entry.slug, kb.searcher.embedder.embed(texts))
                else:
                    model = answers.current()
                answer = model.assess(vector[None, :])[0]
                if answer is not None and answer.entry_id not in faq:
                    extra = kb.service.published([answer.entry_id]).get(answer.entry_id)
                    if extra is not None:
                        c = extra.content
                        faq[answer.entry_id] = FaqEntry(answer.entry_id, c.slug, c.answer, tuple(c.tags))
            except (KbError, RuntimeError, ValueError) as exc:
                search, search_error = None, f"the answer model failed: {exc}"
        assessment = ask_result(
            text, nlu, search, self.policy, faq=faq, nlu_error=nlu_error, no_parse_reason=no_parse_reason,
            search_error=search_error, guide=self.guide, variant_seed=text, answer=answer,
        )  # fmt: skip
        result = assessment.to_dict()
        decision = result["decision"]
        hits = [
            PreviewHit(h.slug, float(h.score), h.text, draft_entry is not None and h.entry_id == draft_entry.id)
            for h in (search.hits if search else [])
        ]
        return Preview(
            text=text, band=decision["band"], reasons=list(decision["reasons"]), reply=result["reply"],
            reply_status=result["reply_status"], intent=decision.get("intent"),
            confidence=float(decision.get("confidence") or 0.0), faq_slug=(decision.get("faq") or {}).get("slug"),
            hits=hits, nlu_error=nlu_error, tone=[v["message"] for v in result["tone_violations"]],
            draft_slug=draft_entry.slug if draft_entry else None,
        )  # fmt: skip

    @staticmethod
    def _with_draft(search: SearchResult, entry: Entry, vector: Any, kb: Any) -> SearchResult:
        """The search result with the entry's working copy scored like a published entry would be."""
        texts = entry.content.texts
        scores = kb.searcher.embedder.embed(texts) @ vector
        best = int(scores.argmax())
        draft_hit = Hit(entry.id, entry.slug, float(scores[best]), texts[best])
        hits = sorted([h for h in search.hits if h.entry_id != entry.id] + [draft_hit], key=lambda h: -h.score)[:5]
        margin = hits[0].score - (hits[1].score if len(hits) > 1 else 0.0)
        return SearchResult(hits, margin, search.kb_version)


def _haystack(content: EntryContent) -> str:
    return " ".join([content.slug, content.question, content.answer, *content.paraphrases, *content.tags]).casefold()


def content_from_form(
    slug: str, question: str, answer: str, paraphrases: str, tags: str, language: str = "en"
) -> EntryContent:
    """An entry from the editor's form: one paraphrase per line, tags separated by commas."""
    return EntryContent(
        slug=slug.strip(), question=question, answer=answer,
        paraphrases=tuple(line for line in paraphrases.splitlines() if line.strip()),
        tags=tuple(tag.strip() for tag in tags.replace("\n", ",").split(",") if tag.strip()),
        language=language.strip() or "en",
    ).cleaned()  # fmt: skip
