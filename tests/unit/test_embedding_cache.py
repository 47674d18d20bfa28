"""The cache of FAQ texts' vectors on disk (knowledge_base.embedding.CachedEmbedder): a second process embeds only
what the first did not, vectors come back in the texts' order, models never share vectors, and a damaged or
unwritable cache costs time, never a wrong vector or an error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from knowledge_base import embedding
from knowledge_base.embedding import CachedEmbedder
from knowledge_base.testing import FakeEmbedder

TEXTS = ["how do i restart my hub", "where is my bill", "how do i restart my hub", "PUK code please 🙏"]


def test_a_second_embedder_on_the_same_file_embeds_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "embeddings.sqlite3"
    first, second = FakeEmbedder(), FakeEmbedder()
    vectors = CachedEmbedder(first, path).embed(TEXTS)
    assert first.texts_embedded == 3  # the repeated text once
    again = CachedEmbedder(second, path).embed(TEXTS[::-1])
    assert second.texts_embedded == 0
    np.testing.assert_array_equal(again, vectors[::-1])
    np.testing.assert_allclose(vectors, FakeEmbedder().embed(TEXTS), atol=1e-6)
    assert vectors.dtype == np.float32 and vectors.flags["C_CONTIGUOUS"]


def test_only_the_new_texts_are_embedded(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    CachedEmbedder(FakeEmbedder(), path).embed(TEXTS[:2])
    inner = FakeEmbedder()
    vectors = CachedEmbedder(inner, path).embed(["a brand new question", *TEXTS[:2]])
    assert inner.texts_embedded == 1
    np.testing.assert_allclose(vectors, FakeEmbedder().embed(["a brand new question", *TEXTS[:2]]), atol=1e-6)


def test_another_model_does_not_take_the_vectors_of_the_first(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    CachedEmbedder(FakeEmbedder(name="model-a"), path).embed(TEXTS)
    other = FakeEmbedder(dimension=32, name="model-b")
    vectors = CachedEmbedder(other, path).embed(TEXTS)
    assert other.texts_embedded == 3 and vectors.shape == (4, 32)


def test_a_damaged_cache_file_is_replaced_and_the_vectors_are_still_right(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    inner = FakeEmbedder()
    vectors = CachedEmbedder(inner, path).embed(TEXTS)
    np.testing.assert_allclose(vectors, FakeEmbedder().embed(TEXTS), atol=1e-6)
    later = FakeEmbedder()
    CachedEmbedder(later, path).embed(TEXTS)
    assert later.texts_embedded == 0  # the damaged file was replaced by a working cache


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    inner = FakeEmbedder()
    vectors = CachedEmbedder(inner, blocked / "embeddings.sqlite3").embed(TEXTS)  # its directory cannot exist
    np.testing.assert_allclose(vectors, FakeEmbedder().embed(TEXTS), atol=1e-6)
    assert CachedEmbedder(FakeEmbedder(), blocked / "x.sqlite3").embed([]).shape == (0, 64)


class _NoDimension(FakeEmbedder):
    """A model whose size is only known once it is loaded: asking for it is what a full cache hit avoids."""

    @property
    def dimension(self) -> int:
        raise AssertionError("the model was loaded for its dimension")


def test_a_full_cache_hit_does_not_load_the_model(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    CachedEmbedder(FakeEmbedder(), path).embed(TEXTS)
    inner = _NoDimension()
    vectors = CachedEmbedder(inner, path).embed(TEXTS)
    assert inner.texts_embedded == 0 and vectors.shape == (4, 64)


def test_a_damaged_vector_is_embedded_again(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    cache = CachedEmbedder(FakeEmbedder(), path)
    cache.embed(TEXTS)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE vectors SET vector = ? WHERE key = ?", (b"\x00" * 12, cache._key(TEXTS[0])))
        connection.execute("UPDATE vectors SET vector = ? WHERE key = ?", (b"\x01" * 7, cache._key(TEXTS[1])))
    connection.close()
    inner = FakeEmbedder()
    vectors = CachedEmbedder(inner, path).embed(TEXTS)
    assert inner.texts_embedded == 2
    np.testing.assert_allclose(vectors, FakeEmbedder().embed(TEXTS), atol=1e-6)


def test_vectors_unused_for_the_keep_days_go_when_new_texts_are_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "embeddings.sqlite3"
    monkeypatch.setattr(embedding, "_today", lambda: 20_000)
    CachedEmbedder(FakeEmbedder(), path, keep_days=90).embed(["an edited-away paraphrase", "a text still in use"])
    monkeypatch.setattr(embedding, "_today", lambda: 20_080)
    CachedEmbedder(FakeEmbedder(), path, keep_days=90).embed(["a text still in use"])  # looked up: its day moves
    monkeypatch.setattr(embedding, "_today", lambda: 20_095)
    inner = FakeEmbedder()
    CachedEmbedder(inner, path, keep_days=90).embed(["a new question"])  # a store prunes
    assert inner.texts_embedded == 1
    with sqlite3.connect(path) as connection:
        days = sorted(day for (day,) in connection.execute("SELECT used_day FROM vectors"))
    assert days == [20_080, 20_095]  # the paraphrase unused since day 20,000 is gone
    later = FakeEmbedder()
    CachedEmbedder(later, path).embed(["a text still in use", "a new question"])
    assert later.texts_embedded == 0
    again = FakeEmbedder()
    CachedEmbedder(again, path).embed(["an edited-away paraphrase"])
    assert again.texts_embedded == 1  # embedded afresh, with the same vector as before
    np.testing.assert_allclose(CachedEmbedder(FakeEmbedder(), path).embed(["an edited-away paraphrase"]),
                               FakeEmbedder().embed(["an edited-away paraphrase"]), atol=1e-6)  # fmt: skip


def test_a_cache_file_from_before_the_last_use_day_is_kept_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    vector = FakeEmbedder().embed(["where is my bill"])[0]
    key = CachedEmbedder(FakeEmbedder(), path)._key("where is my bill")
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        connection.execute("INSERT INTO vectors VALUES (?, ?)", (key, vector.astype(np.float32).tobytes()))
    inner = FakeEmbedder()
    CachedEmbedder(inner, path).embed(["where is my bill", "a new question"])
    assert inner.texts_embedded == 1  # the old row still serves
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT COUNT(*) FROM vectors WHERE used_day = ?", (embedding._today(),))
        assert rows.fetchone() == (2,)
