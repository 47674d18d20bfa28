"""The search index of live FAQ texts: faiss with stable ids, updated per entry, persisted with its KB version.

Vector ids are the ids of kb_vectors rows, so every process agrees on them. Up to `exact_limit` vectors the
index is exact (IndexFlatIP); above it, HNSW. HNSW cannot delete, so removed ids are filtered out at search
time and the graph is rebuilt from its own vectors once a tenth of it is removed.

`catch_up(session)` reads the changes made since the index's KB version and, for each changed entry, drops
its vectors and adds the ones stored now: no re-embedding, no full rebuild. `save`/`load` persist the
index: a faiss file plus a sidecar JSON (KB version, model, the text behind every id) that is replaced
atomically and names the faiss file, so a reader never sees one without the other.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knowledge_base.errors import IndexMismatch
from knowledge_base.models import changes, entries, kb_state, vectors

SIDECAR = "faq-index.json"
_FORMAT = 1
_COMPACT_FRACTION = 0.1
_CHUNK = 500


@dataclass(frozen=True)
class IndexedText:
    """What a vector id stands for."""

    entry_id: int
    slug: str
    text: str


def embedding_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def embedding_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


class FaqIndex:
    def __init__(
        self, dimension: int, model: str, *, exact_limit: int = 20_000, hnsw_m: int = 16,
        ef_construction: int = 80, ef_search: int = 128,
    ) -> None:  # fmt: skip
        self.dimension = dimension
        self.model = model
        self.exact_limit = exact_limit
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.kb_version = 0
        self._texts: dict[int, IndexedText] = {}
        self._by_entry: dict[int, set[int]] = {}
        self._deleted: set[int] = set()  # HNSW only: ids still in the graph, filtered out of results
        self._index: Any = self._new_index(0)

    # ---------------------------------------------------------------- structure
    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSWFlat) else "flat"

    def __len__(self) -> int:
        return len(self._texts)

    def vector_ids(self) -> set[int]:
        """The ids of the vectors the index holds (the database's vector ids)."""
        return set(self._texts)

    def live_entries(self) -> dict[int, tuple[str, np.ndarray]]:
        """Every entry's live vectors: entry id → (slug, its text vectors), for models fitted on the live FAQ."""
        ids, stored = self._stored()
        rows: dict[int, list[np.ndarray]] = {}
        for vector_id, vector in zip(ids.tolist(), stored, strict=True):
            indexed = self._texts.get(int(vector_id))
            if indexed is not None and int(vector_id) not in self._deleted:
                rows.setdefault(indexed.entry_id, []).append(vector)
        slugs = {text.entry_id: text.slug for text in self._texts.values()}
        return {entry_id: (slugs[entry_id], np.vstack(vectors)) for entry_id, vectors in rows.items()}

    def _new_index(self, size: int) -> Any:
        if size <= self.exact_limit:
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        hnsw = faiss.IndexHNSWFlat(self.dimension, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.ef_construction
        return faiss.IndexIDMap2(hnsw)

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (id, vector) faiss holds, including HNSW's removed ones."""
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        stored = self._index.index.reconstruct_n(0, self._index.ntotal) if len(ids) else np.zeros((0, self.dimension))
        return ids, np.asarray(stored, dtype=np.float32)

    def _compact(self, extra: int = 0) -> None:
        """Rebuild faiss from its own live vectors, choosing flat or HNSW for the size it will have."""
        ids, stored = self._stored()
        keep = np.array([int(i) not in self._deleted for i in ids], dtype=bool)
        ids, stored = ids[keep], stored[keep]
        self._index = self._new_index(len(ids) + extra)
        self._deleted = set()
        if len(ids):
            self._index.add_with_ids(stored, ids)

    # ---------------------------------------------------------------- changes
    def add(self, ids: Sequence[int], embeddings: np.ndarray, texts: Sequence[IndexedText]) -> None:
        if not len(ids):
            return
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(ids), self.dimension)
        if self.kind == "flat" and len(self) + len(ids) > self.exact_limit:
            self._compact(extra=len(ids))  # grows past the exact limit: switch to HNSW once
        self._index.add_with_ids(embeddings, np.asarray(ids, dtype=np.int64))
        for vector_id, text in zip(ids, texts, strict=True):
            self._texts[int(vector_id)] = text
            self._by_entry.setdefault(text.entry_id, set()).add(int(vector_id))

    def remove_entry(self, entry_id: int) -> int:
        """Drop every vector of an entry; returns how many."""
        ids = self._by_entry.pop(entry_id, set())
        if not ids:
            return 0
        for vector_id in ids:
            del self._texts[vector_id]
        if self.kind == "flat":
            self._index.remove_ids(np.fromiter(ids, dtype=np.int64))
        else:
            self._deleted |= ids
            if len(self._deleted) > _COMPACT_FRACTION * self._index.ntotal:
                self._compact()
        return len(ids)

    # ---------------------------------------------------------------- search
    def text(self, vector_id: int) -> IndexedText:
        return self._texts[vector_id]

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """For each query row, up to k (vector id, cosine score) pairs, best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        k = min(k, len(self))
        if k <= 0:
            return [[] for _ in range(len(queries))]
        if self.kind == "flat":
            scores, ids = self._index.search(queries, k)
        else:
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.ef_search, k)
            if self._deleted:
                batch = faiss.IDSelectorBatch(np.fromiter(self._deleted, dtype=np.int64))
                params.sel = faiss.IDSelectorNot(batch)
                scores, ids = self._index.search(queries, k, params=params)
                del batch  # the selectors must outlive the search
            else:
                scores, ids = self._index.search(queries, k, params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    # ---------------------------------------------------------------- database
    def catch_up(self, session: Session) -> int:
        """Apply the changes made since this index's KB version. Returns how many entries were reloaded."""
        db_version = session.execute(select(kb_state.c.version)).scalar_one()
        if db_version == self.kb_version:
            return 0
        if db_version < self.kb_version or self.kb_version == 0:
            return self.rebuild(session)  # first load, or another (reset) database: start over
        changed = set(
            session.execute(
                select(changes.c.entry_id).where(
                    changes.c.kb_version > self.kb_version, changes.c.kb_version <= db_version
                )
            ).scalars()
        )
        if None in changed:  # a re-index touched every entry
            return self.rebuild(session)
        for entry_id in changed:
            self.remove_entry(entry_id)
        ordered = sorted(e for e in changed if e is not None)
        for start in range(0, len(ordered), _CHUNK):
            self._add_rows(session, vectors.c.entry_id.in_(ordered[start : start + _CHUNK]))
        self.kb_version = db_version
        return len(changed)

    def rebuild(self, session: Session) -> int:
        """Load every stored live vector (no re-embedding). Returns the number of entries."""
        db_version = session.execute(select(kb_state.c.version)).scalar_one()  # read before the vectors
        count = session.execute(select(func.count()).select_from(vectors)).scalar_one()
        self._texts, self._by_entry, self._deleted = {}, {}, set()
        self._index = self._new_index(count)
        self._add_rows(session, None)
        self.kb_version = db_version
        return len(self._by_entry)

    def _add_rows(self, session: Session, where: Any) -> None:
        query = (
            select(vectors.c.id, vectors.c.entry_id, entries.c.slug, vectors.c.text, vectors.c.model,
                   vectors.c.embedding)
            .join(entries, entries.c.id == vectors.c.entry_id)
            .order_by(vectors.c.id)
        )  # fmt: skip
        if where is not None:
            query = query.where(where)
        batch: list[Any] = []
        for row in session.execute(query.execution_options(yield_per=5000)):
            if row.model != self.model:
                raise IndexMismatch(
                    f"the stored vectors were made with {row.model!r}, the configured model is {self.model!r}: "
                    "run `carebot kb reindex`"
                )
            batch.append(row)
            if len(batch) >= 5000:
                self._add_batch(batch)
                batch = []
        self._add_batch(batch)

    def _add_batch(self, rows: list[Any]) -> None:
        if not rows:
            return
        embeddings = np.stack([embedding_from_bytes(row.embedding) for row in rows])
        if embeddings.shape[1] != self.dimension:
            raise IndexMismatch(
                f"the stored vectors have {embeddings.shape[1]} dimensions, the model makes {self.dimension}: "
                "run `carebot kb reindex`"
            )
        self.add([row.id for row in rows], embeddings, [IndexedText(row.entry_id, row.slug, row.text) for row in rows])

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> bool:
        """Persist the index unless the directory already holds a newer one. Returns whether it wrote."""
        directory.mkdir(parents=True, exist_ok=True)
        current = _read_sidecar(directory)
        if current is not None and current.get("kb_version", 0) > self.kb_version:
            return False
        index_file = f"faq-index-{self.kb_version}-{uuid.uuid4().hex[:8]}.faiss"
        faiss.write_index(self._index, str(directory / index_file))
        ids = list(self._texts)
        sidecar = {
            "format": _FORMAT,
            "kb_version": self.kb_version,
            "model": self.model,
            "dimension": self.dimension,
            "index_file": index_file,
            "deleted": sorted(self._deleted),
            "ids": ids,
            "entry_ids": [self._texts[i].entry_id for i in ids],
            "slugs": [self._texts[i].slug for i in ids],
            "texts": [self._texts[i].text for i in ids],
        }
        _write_atomically(directory / SIDECAR, json.dumps(sidecar, ensure_ascii=False).encode())
        _remove_stale_files(directory, keep=index_file)
        return True

    @classmethod
    def load(cls, directory: Path, *, model: str, dimension: int, **options: Any) -> FaqIndex | None:
        """The index saved in `directory`, or None when there is none usable for this model."""
        sidecar = _read_sidecar(directory)
        if sidecar is None or sidecar.get("format") != _FORMAT:
            return None
        if sidecar.get("model") != model or sidecar.get("dimension") != dimension:
            return None
        try:
            loaded = faiss.read_index(str(directory / sidecar["index_file"]))
        except (RuntimeError, OSError, KeyError):
            return None
        deleted = set(sidecar["deleted"])
        if loaded.ntotal != len(sidecar["ids"]) + len(deleted):
            return None
        index = cls(dimension, model, **options)
        index._index = loaded
        index._deleted = deleted
        for vector_id, entry_id, slug, text in zip(
            sidecar["ids"], sidecar["entry_ids"], sidecar["slugs"], sidecar["texts"], strict=True
        ):
            index._texts[vector_id] = IndexedText(entry_id, slug, text)
            index._by_entry.setdefault(entry_id, set()).add(vector_id)
        index.kb_version = int(sidecar["kb_version"])
        return index


def saved_kb_version(directory: Path) -> int | None:
    sidecar = _read_sidecar(directory)
    return None if sidecar is None else int(sidecar.get("kb_version", 0))


def _read_sidecar(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; other workers (other users, perhaps) read it
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_files(directory: Path, keep: str, min_age_s: float = 60.0) -> None:
    """Delete old faiss files; young ones may belong to another process that is about to name them."""
    now = time.time()
    stale: Iterable[Path] = (p for p in directory.glob("faq-index-*.faiss") if p.name != keep)
    for path in stale:
        try:
            if now - path.stat().st_mtime > min_age_s:
                path.unlink()
        except OSError:
            continue
