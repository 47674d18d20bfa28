"""The care desk's question "what would carebot do with this tweet?": NLU parse, FAQ search, triage, reply.

`Desk` composes the NLU client, the knowledge base, the policy and the tone guide. The NLU or the FAQ
search being unavailable is not an error here: the decision then says so, and nothing is auto-answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.ask import ask_result
from bot.kb import KnowledgeBase, open_knowledge_base
from bot.nlu.client import NluClient, NluError, NluInputError, NluResult
from bot.policy import Policy, load_policy
from bot.settings import Settings
from bot.tone import ToneGuide
from bot.triage import Context, FaqEntry
from knowledge_base.errors import KbError
from knowledge_base.io import read_file
from knowledge_base.search import SearchResult


def nlu_client(settings: Settings) -> NluClient:
    return NluClient(
        settings.effective_nlu_url, settings.effective_nlu_token, timeout_s=settings.nlu_timeout_s,
        retries=settings.nlu_retries, max_chars=settings.nlu_max_chars,
    )  # fmt: skip


class Desk:
    def __init__(self, nlu: NluClient, kb: KnowledgeBase, policy: Policy, guide: ToneGuide) -> None:
        self.nlu = nlu
        self.kb = kb
        self.policy = policy
        self.guide = guide

    def faq_entries(self, search: SearchResult) -> dict[int, FaqEntry]:
        published = self.kb.service.published([hit.entry_id for hit in search.hits])
        return {
            entry_id: FaqEntry(entry_id, version.content.slug, version.content.answer, tuple(version.content.tags))
            for entry_id, version in published.items()
        }

    def ask(self, text: str, context: Context | None = None) -> dict[str, Any]:
        """The decision, its reasons and the reply for one tweet, as `carebot ask --json` prints it."""
        nlu: NluResult | None = None
        nlu_error = search_error = no_parse_reason = None
        try:
            nlu = self.nlu.parse(text)
        except NluInputError as exc:
            nlu_error = str(exc)
            no_parse_reason = "The tweet has no words to classify (empty once cleaned), so a person looks at it."
        except NluError as exc:
            nlu_error = str(exc)
        search: SearchResult | None = None
        faq: dict[int, FaqEntry] = {}
        query = nlu.text if nlu else text.strip()
        if query:
            try:
                search = self.kb.searcher.search(query)
                faq = self.faq_entries(search)
            except KbError as exc:
                search_error = str(exc)
        return ask_result(
            text, nlu, search, self.policy, faq=faq, nlu_error=nlu_error, no_parse_reason=no_parse_reason,
            search_error=search_error, context=context, guide=self.guide,
        )  # fmt: skip


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
        yield Desk(nlu, kb, policy, guide)
