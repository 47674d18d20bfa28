"""Test support shipped with the package: a deterministic, instant embedder for unit tests.

    service = KnowledgeBaseService(session_factory, FakeEmbedder())

FakeEmbedder is a bag of words: every lower-cased word maps to a fixed pseudo-random unit vector, and a
text is the normalised sum of its words. Texts that share words are similar; the same text always gets the
same vector, in every process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import regex

from knowledge_base.embedding import normalize_rows

_WORD = regex.compile(r"\w+")


class FakeEmbedder:
    def __init__(self, dimension: int = 64, name: str = "fake-bag-of-words") -> None:
        self._dimension = dimension
        self._name = name
        self._words: dict[str, np.ndarray] = {}
        self.calls = 0
        self.texts_embedded = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def _word_vector(self, word: str) -> np.ndarray:
        vector = self._words.get(word)
        if vector is None:
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(self._dimension).astype(np.float32)
            self._words[word] = vector
        return vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        rows = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                rows[row] += self._word_vector(word)
        return normalize_rows(rows)
