"""FAQ search: the nearest published entries to a text, each with its best-matching text, and the margin.

A searcher holds one FaqIndex in memory. Before searching it checks (at most every `refresh_interval_s`)
whether the database's KB version moved on, and catches up incrementally, so a publish in any process is
searchable here within about that interval. It starts from the index saved in `index_dir` when there is
one, catches up from there, and saves the result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from knowledge_base.embedding import Embedder
from knowledge_base.errors import KbError
from knowledge_base.index import FaqIndex


@dataclass(frozen=True)
class Hit:
    entry_id: int
    slug: str
    score: float  # cosine similarity of the best-matching text of this entry
    text: str  # that text: the question or one of the paraphrases

    def to_dict(self) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "slug": self.slug, "score": round(self.score, 4), "text": self.text}


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]  # one per entry, best first
    margin: float  # top score minus the second entry's score (minus 0 when there is only one entry)
    kb_version: int

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": [hit.to_dict() for hit in self.hits],
            "margin": round(self.margin, 4),
            "kb_version": self.kb_version,
        }


class FaqSearcher:
    def __init__(
        self,
        session_factory: Callable[[], Session],
        embedder: Embedder,
        *,
        index_dir: Path | None = None,
        refresh_interval_s: float = 0.2,
        exact_limit: int = 20_000,
        ef_search: int = 128,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self.embedder = embedder
        self.index_dir = index_dir
        self.refresh_interval_s = refresh_interval_s
        self._index_options: dict[str, Any] = {"exact_limit": exact_limit, "ef_search": ef_search}
        self._clock = clock
        self._index: FaqIndex | None = None
        self._checked_at = float("-inf")
        self._saved_version: int | None = None
        self._lock = threading.RLock()

    @property
    def index(self) -> FaqIndex:
        with self._lock:
            if self._index is None:
                self._index = self._open()
            return self._index

    def _open(self) -> FaqIndex:
        dimension = self.embedder.dimension
        index = None
        if self.index_dir is not None:
            index = FaqIndex.load(self.index_dir, model=self.embedder.name, dimension=dimension, **self._index_options)
        if index is None:
            index = FaqIndex(dimension, self.embedder.name, **self._index_options)
        with self._session_factory() as session:
            changed = index.catch_up(session)
        self._checked_at = self._clock()
        if changed and self.index_dir is not None and index.save(self.index_dir):
            self._saved_version = index.kb_version
        return index

    def refresh(self) -> int:
        """Catch up with the database now. Returns how many entries changed."""
        with self._lock:
            index = self.index
            with self._session_factory() as session:
                changed = index.catch_up(session)
            self._checked_at = self._clock()
            return changed

    def _refresh_if_due(self) -> None:
        if self._clock() - self._checked_at >= self.refresh_interval_s:
            self.refresh()

    def save(self) -> bool:
        """Persist the index in index_dir (if configured). Returns whether it wrote."""
        if self.index_dir is None:
            return False
        with self._lock:
            index = self.index
            if self._saved_version == index.kb_version or not index.save(self.index_dir):
                return False
            self._saved_version = index.kb_version
            return True

    def live_entries(self) -> tuple[int, dict[int, tuple[str, np.ndarray]]]:
        """The KB version the index reflects (after catching up when due), and every live entry's vectors."""
        with self._lock:
            self._refresh_if_due()
            index = self.index
            return index.kb_version, index.live_entries()

    def kb_version(self) -> int:
        """The KB version the index reflects, after catching up when due."""
        with self._lock:
            self._refresh_if_due()
            return self.index.kb_version

    def search(self, text: str, k: int = 5) -> SearchResult:
        """The k nearest entries to `text`."""
        if not text.strip():
            raise KbError("cannot search for an empty text")
        return self.search_vector(self.embedder.embed([text])[0], k)

    def search_vector(self, query: np.ndarray, k: int = 5) -> SearchResult:
        """The k nearest entries to an embedded query (one unit vector)."""
        if k < 1:
            raise KbError("k must be at least 1")
        with self._lock:
            self._refresh_if_due()
            index = self.index
            wanted = max(k, 2)  # two distinct entries for the margin
            fetch = max(8 * wanted, 32)
            while True:
                pairs = index.search(query, fetch)[0]
                best: dict[int, Hit] = {}
                for vector_id, score in pairs:
                    indexed = index.text(vector_id)
                    if indexed.entry_id not in best:
                        best[indexed.entry_id] = Hit(indexed.entry_id, indexed.slug, score, indexed.text)
                if len(best) >= wanted or fetch >= len(index):
                    break
                fetch *= 4
            version = index.kb_version
        hits = list(best.values())  # faiss returns the best first, so so does this
        margin = 0.0 if not hits else hits[0].score - (hits[1].score if len(hits) > 1 else 0.0)
        return SearchResult(hits[:k], margin, version)
