"""The faiss index: stable ids, per-entry updates, the switch to HNSW, persistence and incremental catch-up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kb_support import ScratchKb, content

from knowledge_base.errors import IndexMismatch
from knowledge_base.index import SIDECAR, FaqIndex, IndexedText, saved_kb_version
from knowledge_base.testing import FakeEmbedder


def unit_vectors(count: int, dimension: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def filled(count: int, exact_limit: int = 1000, per_entry: int = 5) -> tuple[FaqIndex, np.ndarray]:
    index = FaqIndex(16, "test", exact_limit=exact_limit, ef_search=64)
    vectors = unit_vectors(count)
    ids = list(range(100, 100 + count))
    index.add(ids, vectors, [IndexedText(i // per_entry, f"e{i // per_entry}", f"t{i}") for i in range(count)])
    return index, vectors


def test_search_finds_the_exact_vector_by_its_stable_id() -> None:
    index, vectors = filled(50)
    assert index.kind == "flat"
    [[(best_id, score), *_]] = index.search(vectors[7], 3)
    assert best_id == 107 and score == pytest.approx(1.0, abs=1e-5)
    assert index.text(best_id) == IndexedText(1, "e1", "t7")


def test_removing_an_entry_removes_only_its_vectors() -> None:
    index, vectors = filled(50)
    assert index.remove_entry(1) == 5
    assert len(index) == 45
    found = [vector_id for vector_id, _ in index.search(vectors[7], 50)[0]]
    assert not set(found) & set(range(105, 110)) and len(found) == 45
    assert index.remove_entry(1) == 0


def test_growing_past_the_exact_limit_switches_to_hnsw_and_removal_still_works() -> None:
    index, vectors = filled(40, exact_limit=30)
    assert index.kind == "hnsw"
    index.remove_entry(1)  # HNSW cannot delete: the ids are filtered out
    found = [vector_id for vector_id, _ in index.search(vectors[7], 10)[0]]
    assert not set(found) & set(range(105, 110))
    index.remove_entry(2)
    index.remove_entry(3)  # more than a tenth removed: compacted
    assert len(index) == 25 and index._index.ntotal == 25
    assert index.search(vectors[30], 1)[0][0][0] == 130


def test_hnsw_recall_at_1_is_high_on_random_data() -> None:
    index, vectors = filled(3000, exact_limit=100)
    queries = unit_vectors(200, seed=1)
    exact = np.argmax(queries @ vectors.T, axis=1) + 100
    approximate = [index.search(q, 1)[0][0][0] for q in queries]
    assert np.mean(exact == np.array(approximate)) >= 0.99


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index, vectors = filled(40, exact_limit=30)
    index.remove_entry(1)
    index.kb_version = 12
    assert index.save(tmp_path)
    loaded = FaqIndex.load(tmp_path, model="test", dimension=16, exact_limit=30)
    assert loaded is not None and loaded.kb_version == 12 and len(loaded) == 35 and loaded.kind == "hnsw"
    assert loaded.search(vectors[7], 5) == index.search(vectors[7], 5)
    sidecar = json.loads((tmp_path / SIDECAR).read_text())
    assert (tmp_path / sidecar["index_file"]).is_file() and saved_kb_version(tmp_path) == 12


def test_load_refuses_another_model_or_a_missing_file(tmp_path: Path) -> None:
    index, _ = filled(10)
    index.save(tmp_path)
    assert FaqIndex.load(tmp_path, model="other", dimension=16) is None
    assert FaqIndex.load(tmp_path, model="test", dimension=32) is None
    sidecar = json.loads((tmp_path / SIDECAR).read_text())
    (tmp_path / sidecar["index_file"]).unlink()
    assert FaqIndex.load(tmp_path, model="test", dimension=16) is None
    assert FaqIndex.load(tmp_path / "nothing-here", model="test", dimension=16) is None


def test_an_older_index_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    newer, _ = filled(10)
    newer.kb_version = 5
    older, _ = filled(10)
    older.kb_version = 4
    assert newer.save(tmp_path)
    assert not older.save(tmp_path)
    assert saved_kb_version(tmp_path) == 5


def published(kb: ScratchKb, *slugs: str) -> None:
    for n, slug in enumerate(slugs):
        kb.service.create_draft(content(slug, question=f"question number {n} about {slug}"), author="ed")
        kb.service.publish(slug, author="ed")


def test_catch_up_reloads_only_the_changed_entries(kb: ScratchKb) -> None:
    published(kb, "alpha", "beta", "gamma")
    index = FaqIndex(kb.embedder.dimension, kb.embedder.name)
    with kb.sessions() as session:
        assert index.catch_up(session) == 3 and index.kb_version == 3 and len(index) == 9
    untouched = set(index._by_entry[1])
    kb.service.edit("beta", author="ed", paraphrases=["only one paraphrase"])
    kb.service.publish("beta", author="ed")
    kb.service.unpublish("gamma", author="ed")
    with kb.sessions() as session:
        assert index.catch_up(session) == 2  # beta and gamma, not alpha
        assert index.catch_up(session) == 0
    assert index.kb_version == 5 and len(index) == 5
    assert index._by_entry[1] == untouched  # alpha's vectors kept their ids
    assert {index.text(i).text for i in index._by_entry[2]} == {"question number 1 about beta", "only one paraphrase"}
    assert 3 not in index._by_entry


def test_catch_up_after_a_reindex_or_a_reset_database_rebuilds(kb: ScratchKb, tmp_path: Path) -> None:
    published(kb, "alpha")
    index = FaqIndex(kb.embedder.dimension, kb.embedder.name)
    with kb.sessions() as session:
        index.catch_up(session)
    kb.service.reindex(author="ed")
    with kb.sessions() as session:
        index.catch_up(session)
    assert index.kb_version == 2 and len(index) == 3
    index.kb_version = 99  # as if the index came from another, newer database
    with kb.sessions() as session:
        index.catch_up(session)
    assert index.kb_version == 2 and len(index) == 3


def test_vectors_of_another_model_are_refused(kb: ScratchKb) -> None:
    published(kb, "alpha")
    other = FakeEmbedder(name="another-model")
    index = FaqIndex(other.dimension, other.name)
    with kb.sessions() as session, pytest.raises(IndexMismatch, match="carebot kb reindex"):
        index.catch_up(session)
