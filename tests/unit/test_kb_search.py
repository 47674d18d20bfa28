"""Search: one hit per entry, the margin between the first two entries, and freshness across searchers."""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_support import ScratchKb, content

from knowledge_base.errors import KbError
from knowledge_base.index import FaqIndex, saved_kb_version
from knowledge_base.search import FaqSearcher


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def publish(kb: ScratchKb, slug: str, question: str, *paraphrases: str) -> None:
    kb.service.create_draft(content(slug, question=question, paraphrases=paraphrases), author="ed")
    kb.service.publish(slug, author="ed")


@pytest.fixture
def faq(kb: ScratchKb) -> ScratchKb:
    publish(kb, "restart-router", "How do I restart my router?", "reboot router", "router restart please")
    publish(kb, "wifi-password", "Where is my wifi password?", "forgot wifi password")
    publish(kb, "pay-bill", "How do I pay my bill?", "bill payment")
    return kb


def test_hits_are_one_per_entry_with_the_best_text(faq: ScratchKb) -> None:
    result = FaqSearcher(faq.sessions, faq.embedder).search("reboot router", k=3)
    assert [hit.slug for hit in result.hits][0] == "restart-router"
    assert len({hit.entry_id for hit in result.hits}) == len(result.hits) == 3
    top = result.hits[0]
    assert top.text == "reboot router" and top.score == pytest.approx(1.0, abs=1e-5)
    assert result.margin == pytest.approx(top.score - result.hits[1].score)
    assert result.kb_version == 3


def test_the_margin_skips_other_texts_of_the_same_entry(faq: ScratchKb) -> None:
    result = FaqSearcher(faq.sessions, faq.embedder).search("router", k=1)
    assert len(result.hits) == 1  # k=1, but the margin still needs the second entry
    second_best_other_entry = FaqSearcher(faq.sessions, faq.embedder).search("router", k=2).hits[1]
    assert second_best_other_entry.slug != "restart-router"
    assert result.margin == pytest.approx(result.hits[0].score - second_best_other_entry.score)


def test_more_entries_asked_than_exist(faq: ScratchKb) -> None:
    result = FaqSearcher(faq.sessions, faq.embedder).search("bill", k=10)
    assert len(result.hits) == 3


def test_an_empty_knowledge_base(kb: ScratchKb) -> None:
    result = FaqSearcher(kb.sessions, kb.embedder).search("anything")
    assert result.hits == [] and result.margin == 0.0 and result.top is None


def test_a_single_entry_has_its_score_as_margin(kb: ScratchKb) -> None:
    publish(kb, "only-one", "How do I pay my bill?")
    result = FaqSearcher(kb.sessions, kb.embedder).search("pay bill")
    assert result.margin == pytest.approx(result.hits[0].score)


def test_empty_text_and_bad_k(faq: ScratchKb) -> None:
    searcher = FaqSearcher(faq.sessions, faq.embedder)
    with pytest.raises(KbError, match="empty"):
        searcher.search("  ")
    with pytest.raises(KbError, match="k must be"):
        searcher.search("bill", k=0)


def test_a_publish_is_seen_once_the_refresh_interval_has_passed(faq: ScratchKb) -> None:
    clock = Clock()
    searcher = FaqSearcher(faq.sessions, faq.embedder, refresh_interval_s=0.2, clock=clock)
    assert searcher.search("parcel tracking").hits[0].slug != "track-parcel"
    publish(faq, "track-parcel", "Where is my parcel?", "parcel tracking")
    clock.now += 0.1
    assert searcher.search("parcel tracking").kb_version == 3  # not checked yet
    clock.now += 0.1
    result = searcher.search("parcel tracking")
    assert result.kb_version == 4 and result.hits[0].slug == "track-parcel"
    faq.service.unpublish("track-parcel", author="ed")
    clock.now += 0.2
    assert "track-parcel" not in [hit.slug for hit in searcher.search("parcel tracking").hits]


def test_a_new_searcher_starts_from_the_saved_index_and_catches_up(
    faq: ScratchKb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "index"
    first = FaqSearcher(faq.sessions, faq.embedder, index_dir=index_dir)
    first.search("bill")
    assert saved_kb_version(index_dir) == 3  # saved when it was built
    publish(faq, "track-parcel", "Where is my parcel?")

    def no_rebuild(self: FaqIndex, session: object) -> int:
        raise AssertionError("a saved index must be caught up, not rebuilt")

    monkeypatch.setattr(FaqIndex, "rebuild", no_rebuild)
    second = FaqSearcher(faq.sessions, faq.embedder, index_dir=index_dir)
    assert second.search("Where is my parcel?").hits[0].slug == "track-parcel"
    assert second.index.kb_version == 4 and saved_kb_version(index_dir) == 4
    assert not second.save()  # nothing new to write
