"""Rejected drafts are negatives for the answer model's intent head: a tweet agents rejected an entry's draft for
joins the out-of-scope examples of the fit, so the head's probability of that entry for the tweet drops; without
any rejected tweet the fit is exactly the one of today. The rejected (tweet, entry) pairs come from the labels, on
SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from web_support import WebDesk, web_desk

from bot.decision.answer_score import AnswerModel, fit_answer_model
from bot.learning import label_store, negative_vectors, rejected_tweets
from handoff.labels import LabelledDecision
from knowledge_base.testing import FakeEmbedder

_tweets = itertools.count(1_991_000_000_000_000_000)

OUT_OF_SCOPE = ["my bill is wrong again", "the engineer never came", "worst service ever, cancelling", "thanks bye"]
REJECTED = "reset my hub 4 router line from your end"


def _probability(model: AnswerModel, vector: np.ndarray, entry_id: int) -> float:
    column = model.head.labels.index(str(entry_id))
    return float(model.head.probabilities(vector[None, :])[0, column])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _label(desk: WebDesk, kind: str, text: str, entry_id: int) -> None:
    decision = LabelledDecision(text=text, tweet_id=str(next(_tweets)), faq_entry_id=entry_id, score=0.9)
    with desk.engine.begin() as conn:
        label_store(desk.engine).record(conn, kind, decision, actor="ann")


def test_a_rejected_tweet_scores_lower_for_its_entry_once_it_is_a_negative(desk: WebDesk) -> None:
    hub = desk.kb.service.get("reset-hub").id
    bill = desk.kb.service.get("pay-bill").id
    _label(desk, "rejected", f"@KestrelCare {REJECTED} https://t.co/x", hub)
    _label(desk, "rejected", REJECTED, hub)  # the same tweet twice counts once
    _label(desk, "approved", "how do I reset my hub to factory settings", hub)
    _label(desk, "rejected", "can I pay by cheque at the post office", bill)
    _label(desk, "rejected", "ways to pay my bill by phone", bill)
    _label(desk, "edited", "ways to pay my bill by phone", bill)  # rejected once, then approved: not a negative
    rejected = rejected_tweets(desk.engine)
    assert rejected == {hub: [REJECTED], bill: ["can I pay by cheque at the post office"]}

    embedder = desk.kb.searcher.embedder
    _, entries = desk.kb.searcher.live_entries()
    out_of_scope = np.asarray(embedder.embed(OUT_OF_SCOPE), dtype=np.float32)
    before = fit_answer_model(entries, out_of_scope)
    after = fit_answer_model(entries, out_of_scope, negatives=negative_vectors(rejected, embedder))
    tweet = np.asarray(embedder.embed([REJECTED])[0], dtype=np.float64)
    assert _probability(before, tweet, hub) > 0.8  # today it scores high for the entry
    assert _probability(after, tweet, hub) < _probability(before, tweet, hub) - 0.2
    question = np.asarray(embedder.embed(["How do I reset my Hub 4 router?"])[0], dtype=np.float64)
    assert after.assess(question[None, :])[0].entry_id == hub  # type: ignore[union-attr]
    assert _probability(after, question, hub) > 0.5


def _toy() -> tuple[dict[int, tuple[str, np.ndarray]], np.ndarray, np.ndarray]:
    embedder = FakeEmbedder()
    entries = {
        1: ("reset-hub", embedder.embed(["how do I reset my hub", "hub factory reset", "restart the router"])),
        2: ("pay-bill", embedder.embed(["how can I pay my bill", "pay the bill online", "ways to pay"])),
    }
    return entries, embedder.embed(OUT_OF_SCOPE), embedder.embed([REJECTED])


def test_without_rejected_tweets_the_fit_is_exactly_todays(tmp_path: Path) -> None:
    entries, out_of_scope, tweet = _toy()
    today = fit_answer_model(entries, out_of_scope)
    for negatives in (None, {}, {1: np.zeros((0, tweet.shape[1]))}, {99: tweet}):  # 99: no live entry
        same = fit_answer_model(entries, out_of_scope, negatives=negatives)
        assert same.head.labels == today.head.labels
        assert np.array_equal(same.head.weights, today.head.weights) and np.array_equal(same.head.bias, today.head.bias)
    cached = fit_answer_model(entries, out_of_scope, head_cache=tmp_path)
    with_negative = fit_answer_model(entries, out_of_scope, head_cache=tmp_path, negatives={1: tweet})
    assert not np.array_equal(cached.head.weights, with_negative.head.weights)  # not taken from the cache
    assert len(list(tmp_path.glob("intent-head-*.npz"))) == 2
    assert _probability(with_negative, tweet[0].astype(np.float64), 1) < _probability(
        cached, tweet[0].astype(np.float64), 1
    )


def test_a_negative_without_any_out_of_scope_examples_still_lowers_its_entry() -> None:
    entries, _, tweet = _toy()
    empty = np.zeros((0, tweet.shape[1]), dtype=np.float32)
    plain = fit_answer_model(entries, empty)
    taught = fit_answer_model(entries, empty, negatives={1: tweet})
    assert "out_of_scope" not in plain.head.labels and "out_of_scope" in taught.head.labels
    vector = tweet[0].astype(np.float64)
    assert _probability(taught, vector, 1) < _probability(plain, vector, 1)


def test_the_live_answer_model_takes_the_rejected_drafts_and_fits_without_them_when_they_cannot_be_read(
    desk: WebDesk, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.desk import LiveAnswerModel

    hub = desk.kb.service.get("reset-hub").id
    _label(desk, "rejected", REJECTED, hub)
    embedder = desk.kb.searcher.embedder
    vector = np.asarray(embedder.embed([REJECTED]), dtype=np.float32)[0]

    plain = LiveAnswerModel(desk.kb.searcher, OUT_OF_SCOPE).current()
    learning = LiveAnswerModel(
        desk.kb.searcher, OUT_OF_SCOPE, negatives=lambda: negative_vectors(rejected_tweets(desk.engine), embedder)
    ).current()
    assert _probability(learning, vector, hub) < _probability(plain, vector, hub) - 0.1

    def unreadable() -> dict[int, np.ndarray]:
        raise RuntimeError("the database is gone for a moment")

    fallback = LiveAnswerModel(desk.kb.searcher, OUT_OF_SCOPE, negatives=unreadable).current()
    np.testing.assert_array_equal(fallback.head.weights, plain.head.weights)
    assert "without the rejected drafts" in caplog.text
