"""The knowledge base with the real all-MiniLM-L6-v2 model and a migrated database (SQLite; PostgreSQL in CI):
the default FAQ imports, real tweets find their answers, and duplicate questions are caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from knowledge_base.embedding import Embedder, SentenceTransformerEmbedder
from knowledge_base.errors import EmbedderUnavailable, KbValidationError
from knowledge_base.io import read_file
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService

FAQ = Path(__file__).resolve().parents[2] / "training_data" / "faq.yml"

TWEETS = [
    ("@KestrelCare my hub light keeps flashing orange, what does that mean", "hub-lights-meaning"),
    ("how do i turn the router off and on properly", "restart-router"),
    ("forgot my wifi password, where is it written", "wifi-password-find"),
    ("paying for 150mb and getting 12 every evening 😤", "slow-broadband-speed"),
]


@pytest.fixture
def service(sessions: sessionmaker[Session], minilm: Embedder) -> KnowledgeBaseService:
    service = KnowledgeBaseService(sessions, minilm)
    report = service.import_entries(read_file(FAQ), author="test")
    assert report.published == 81
    return service


def test_the_vectors_are_normalised_minilm(minilm: Embedder) -> None:
    vectors = minilm.embed(["how do I reboot my hub", "reboot hub?", "what is the price of fibre 500"])
    assert vectors.shape == (3, 384) and vectors.dtype.name == "float32"
    assert abs(float((vectors**2).sum(axis=1).max()) - 1) < 1e-5
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.parametrize(("tweet", "slug"), TWEETS)
def test_real_tweets_find_their_entry(
    service: KnowledgeBaseService, sessions: sessionmaker[Session], minilm: Embedder,
    tweet: str, slug: str,
) -> None:  # fmt: skip
    result = FaqSearcher(sessions, minilm).search(tweet, k=3)
    assert result.hits[0].slug == slug, result.hits
    assert 0 < result.margin < 1 and result.hits[0].score > 0.5


def test_a_reworded_question_is_a_duplicate_and_names_the_entry(service: KnowledgeBaseService) -> None:
    service.create_draft(
        EntryContent(slug="reboot-hub", question="How can I restart my Kestrel Hub?", answer="Switch it off and on."),
        author="test",
    )
    with pytest.raises(KbValidationError, match="duplicates the published entry 'restart-router'"):
        service.publish("reboot-hub", author="test")
    service.edit("reboot-hub", author="test", question="Can I keep my Hub when I leave Kestrel?")
    assert service.publish("reboot-hub", author="test").version == 1


def test_publish_edit_rollback_and_search_follow_each_other(
    service: KnowledgeBaseService, sessions: sessionmaker[Session], minilm: Embedder
) -> None:
    searcher = FaqSearcher(sessions, minilm, refresh_interval_s=0)
    query = "does the kestrel hub work with a mesh kit from another brand"
    assert searcher.search(query).hits[0].text != query
    entry = service.get("restart-router")
    service.edit("restart-router", author="test", paraphrases=[*entry.content.paraphrases, query])
    service.publish("restart-router", author="test")
    hit = searcher.search(query).hits[0]
    assert (hit.slug, hit.text) == ("restart-router", query)
    service.rollback("restart-router", 1, author="test")
    assert searcher.search(query).hits[0].text != query
    assert [v.version for v in service.history("restart-router")] == [1, 2, 3]


def test_a_model_that_cannot_be_loaded_is_a_clear_error(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))
    with pytest.raises(EmbedderUnavailable, match="cannot load the embedding model"):
        embedder.embed(["hello"])


def test_one_embedding_thread_holds_torch_faiss_and_blas_to_one_thread(tmp_path: Path) -> None:
    """The worker embeds with threads=1 (CAREBOT_KB_EMBEDDING_THREADS): an idle BLAS or OpenMP thread left
    spinning after every small matrix product costs CPU per tweet, so every pool is held to one thread."""
    script = tmp_path / "threads.py"
    script.write_text(
        "import json, faiss, threadpoolctl, torch\n"
        "from knowledge_base.embedding import SentenceTransformerEmbedder\n"
        "before = {i['internal_api']: i['num_threads'] for i in threadpoolctl.threadpool_info()}\n"
        "SentenceTransformerEmbedder(threads=1).embed(['is my hub broken'])\n"
        "after = {i['internal_api']: i['num_threads'] for i in threadpoolctl.threadpool_info()}\n"
        "print(json.dumps({'before': before, 'after': after, 'torch': torch.get_num_threads(),\n"
        "                  'faiss': faiss.omp_get_max_threads()}))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["after"].get("openblas") == 1, found
    assert found["torch"] == 1 and found["faiss"] == 1, found
    if (os.cpu_count() or 1) > 1:
        assert found["before"].get("openblas", 1) > 1, found  # the limit, not the machine, made it one
