"""The calibrated FAQ answer score: which published entry answers a tweet, and how sure carebot is of it.

An `AnswerModel` is fitted on the live FAQ: each published entry's question and paraphrase vectors are one class
of a linear softmax "intent head", and texts that no FAQ entry answers (complaints, outage reports, chit-chat,
account problems: `out_of_scope`) are one more class. It also keeps each entry's centroid (its mean vector). For
a tweet it picks the entry with the highest head probability, and that probability is the answer score the
policy's thresholds apply to; the centroid cosine and the out-of-scope probability come along as evidence for
the reasons. (On CLINC150 the head plus the centroid cosine ranked best, bot/clinc_eval.py; on care traffic,
with a handful of paraphrases per entry, the centroid cosine ranked worse than the head alone on the
development set, so the live score is the head's probability.)

`fit_answer_model` runs on every publish (the desk refits when the knowledge base's version moves on); it takes
about a second for a hundred entries and a thousand out-of-scope examples. Numpy, and torch for the fit; given a
`head_cache` directory, a fit from scratch is kept there by a hash of its training data, so the next process
that opens the same FAQ (a worker, the web app, an evaluation) takes the same head without fitting it again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OUT_OF_SCOPE = "out_of_scope"
RANKING_SIZE = 10  # labels kept per query from the head
HEAD_L2 = 1e-5  # the intent head's weight penalty
HEAD_ITERATIONS = 200


@dataclass(frozen=True)
class IntentHead:
    """A linear softmax classifier over KB vectors: one class per entry, plus out_of_scope when trained with it."""

    labels: tuple[str, ...]
    weights: np.ndarray  # (dimension, labels)
    bias: np.ndarray  # (labels,)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        logits = np.asarray(vectors, dtype=np.float64) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def top(self, vectors: np.ndarray, k: int = RANKING_SIZE) -> list[dict[str, float]]:
        """For each vector: its k most probable labels, and out_of_scope's probability if it is a label."""
        found = []
        for row in self.probabilities(vectors):
            keep = [int(i) for i in np.argsort(-row, kind="mergesort")[:k]]
            if OUT_OF_SCOPE in self.labels:
                keep.append(self.labels.index(OUT_OF_SCOPE))
            found.append({self.labels[i]: float(row[i]) for i in keep})
        return found


def fit_intent_head(
    vectors: np.ndarray, labels: Sequence[str], *, l2: float = HEAD_L2, max_iterations: int = HEAD_ITERATIONS,
    start: IntentHead | None = None,
) -> IntentHead:
    """Multinomial logistic regression (cross-entropy + l2 * |weights|², full-batch L-BFGS). From zeros, the same
    data give the same head; from `start` (the head before a publish: its classes keep their weights, new ones
    start at zero) a refit after a small change converges in a fraction of the iterations."""
    import torch  # imported here: a worker whose embedder runs in onnxruntime loads torch only when it fits a head

    names = tuple(sorted(set(labels)))
    if len(names) < 2:
        raise ValueError("an intent head needs at least two labels")
    position = {name: i for i, name in enumerate(names)}
    inputs = torch.tensor(np.asarray(vectors), dtype=torch.float64)
    targets = torch.tensor([position[label] for label in labels])
    initial_weights = np.zeros((inputs.shape[1], len(names)))
    initial_bias = np.zeros(len(names))
    if start is not None and start.weights.shape[0] == inputs.shape[1]:
        for i, name in enumerate(names):
            if name in start.labels:
                j = start.labels.index(name)
                initial_weights[:, i], initial_bias[i] = start.weights[:, j], start.bias[j]
    weights = torch.tensor(initial_weights, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(initial_bias, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weights, bias], max_iter=max_iterations, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-9, tolerance_change=1e-12,
    )  # fmt: skip

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(inputs @ weights + bias, targets) + l2 * (weights**2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return IntentHead(names, weights.detach().numpy().copy(), bias.detach().numpy().copy())


def unit_centroids(vectors: np.ndarray, labels: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Each label's mean vector, scaled to length 1 (a cosine with it is an inner product)."""
    names = tuple(sorted(set(labels)))
    label_array = np.asarray(labels)
    means = np.stack([np.asarray(vectors, dtype=np.float64)[label_array == name].mean(axis=0) for name in names])
    return names, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class AnswerEvidence:
    """The FAQ entry the answer model would answer with, and why. `score` is what thresholds apply to."""

    entry_id: int
    slug: str
    score: float  # what thresholds apply to: the head's probability of this entry (0 … 1)
    head_probability: float  # the intent head's probability of this entry
    out_of_scope_probability: float  # the head's probability that no entry answers the tweet
    centroid_cosine: float  # cosine between the tweet and the entry's mean vector

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id, "slug": self.slug, "score": round(self.score, 4),
            "head_probability": round(self.head_probability, 4),
            "out_of_scope_probability": round(self.out_of_scope_probability, 4),
            "centroid_cosine": round(self.centroid_cosine, 4),
        }  # fmt: skip


@dataclass(frozen=True)
class AnswerModel:
    """The intent head and centroids of one version of the live FAQ."""

    kb_version: int
    entry_ids: tuple[int, ...]  # the head's entry classes, in label order (out_of_scope not included)
    slugs: tuple[str, ...]
    head: IntentHead
    centroids: np.ndarray  # (entries, dimension), unit rows, in the order of entry_ids
    fit_seconds: float = 0.0

    def assess(self, vectors: np.ndarray) -> list[AnswerEvidence | None]:
        """The best entry for each (unit) vector; None when the model has no entries."""
        if not self.entry_ids:
            return [None] * len(vectors)
        vectors = np.asarray(vectors, dtype=np.float64)
        probabilities = self.head.probabilities(vectors)
        position = {label: i for i, label in enumerate(self.head.labels)}
        columns = [position[str(entry_id)] for entry_id in self.entry_ids]
        entry_probabilities = probabilities[:, columns]
        oos = probabilities[:, position[OUT_OF_SCOPE]] if OUT_OF_SCOPE in position else np.zeros(len(vectors))
        cosines = vectors @ self.centroids.T
        found: list[AnswerEvidence | None] = []
        for row in range(len(vectors)):
            best = int(np.argmax(entry_probabilities[row]))
            found.append(
                AnswerEvidence(
                    entry_id=self.entry_ids[best], slug=self.slugs[best],
                    score=float(entry_probabilities[row, best]),
                    head_probability=float(entry_probabilities[row, best]),
                    out_of_scope_probability=float(oos[row]), centroid_cosine=float(cosines[row, best]),
                )
            )  # fmt: skip
        return found


def _head_key(training: np.ndarray, labels: Sequence[str], l2: float) -> str:
    digest = hashlib.sha256(f"intent-head v1 {l2!r} {HEAD_ITERATIONS} {training.shape}".encode())
    digest.update(np.ascontiguousarray(training, dtype=np.float64).tobytes())
    digest.update("\0".join(labels).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def _cached_head(path: Path) -> IntentHead | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return IntentHead(tuple(str(label) for label in stored["labels"]), stored["weights"], stored["bias"])
    except (OSError, ValueError, KeyError):
        return None  # none yet, or a damaged file: fit again


def _store_head(path: Path, head: IntentHead) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, labels=np.asarray(head.labels), weights=head.weights, bias=head.bias)
        temporary.replace(path)
    except OSError:
        pass  # no cache: the next process fits again


def fit_answer_model(
    entries: Mapping[int, tuple[str, np.ndarray]], out_of_scope: np.ndarray, *, kb_version: int = 0,
    l2: float = HEAD_L2, previous: AnswerModel | None = None, head_cache: Path | None = None,
    negatives: Mapping[int, np.ndarray] | None = None,
) -> AnswerModel:  # fmt: skip
    """Fit on the live entries (entry id → (slug, its text vectors)) and the out-of-scope example vectors; a refit
    starts from the `previous` model's head. Without a previous model, a head fitted on the same data before is
    taken from `head_cache` (and a new fit is kept there).

    `negatives` (entry id → vectors of tweets agents rejected that entry's draft for) join the out-of-scope
    examples of this fit, so a rejected tweet no longer scores high for the entry; those of entries that are not
    live are left out. Without any, the fit is exactly the one without the argument."""
    began = time.perf_counter()
    ids = tuple(sorted(entry_id for entry_id, (_, rows) in entries.items() if len(rows)))
    rejected = [
        np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        for entry_id, rows in sorted((negatives or {}).items()) if entry_id in ids and len(rows)
    ]  # fmt: skip
    if rejected:
        out_of_scope = np.vstack(([np.asarray(out_of_scope, dtype=np.float64)] if len(out_of_scope) else []) + rejected)
    if not ids:
        dimension = out_of_scope.shape[1] if out_of_scope.size else 1
        empty = IntentHead((OUT_OF_SCOPE,), np.zeros((dimension, 1)), np.zeros(1))
        return AnswerModel(kb_version, (), (), empty, np.zeros((0, dimension)))
    vectors = [np.asarray(entries[entry_id][1], dtype=np.float64) for entry_id in ids]
    labels = [str(entry_id) for entry_id, rows in zip(ids, vectors, strict=True) for _ in range(len(rows))]
    names, centroids = unit_centroids(np.vstack(vectors), labels)
    order = [names.index(str(entry_id)) for entry_id in ids]
    training = np.vstack(vectors)
    if len(out_of_scope):
        training = np.vstack([training, np.asarray(out_of_scope, dtype=np.float64)])
        labels = labels + [OUT_OF_SCOPE] * len(out_of_scope)
    if len(set(labels)) < 2:  # one entry and no out-of-scope examples: the head is sure of it
        head = IntentHead((labels[0],), np.zeros((training.shape[1], 1)), np.zeros(1))
    elif previous is None and head_cache is not None:
        path = head_cache / f"intent-head-{_head_key(training, labels, l2)}.npz"
        cached = _cached_head(path)
        head = cached if cached is not None else fit_intent_head(training, labels, l2=l2)
        if cached is None:
            _store_head(path, head)
    else:
        head = fit_intent_head(training, labels, l2=l2, start=previous.head if previous is not None else None)
    return AnswerModel(
        kb_version, ids, tuple(entries[entry_id][0] for entry_id in ids), head, centroids[order],
        fit_seconds=time.perf_counter() - began,
    )  # fmt: skip
