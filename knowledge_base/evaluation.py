"""CLINC150 as an FAQ: how well does search pick the right entry, and does its top score separate
out-of-scope messages from answerable ones?

Each in-scope intent becomes one published entry (its first training utterance is the question, the
others are paraphrases); the entries go through the real import, database and index (a scratch SQLite
file). We report top-1 accuracy on `test` and the AUROC of the top score (and of the margin) for telling
`test` from `oos_test`. The answer threshold is chosen on `val` + `oos_val` only, for a target answer
precision, then applied to `test` + `oos_test`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from knowledge_base.embedding import Embedder
from knowledge_base.errors import KbError
from knowledge_base.models import create_schema
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, EntryRecord, KnowledgeBaseService

SPLITS = ("train", "val", "test", "oos_val", "oos_test")
OPTIONAL_SPLITS = ("oos_train",)  # out-of-scope training examples: read when present
Progress = Callable[[str, int, int], None]


def load_clinc(path: Path) -> dict[str, list[tuple[str, str]]]:
    """The splits of CLINC150's data_full.json as lists of (text, intent), oos_train included when present."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KbError(f"cannot read the CLINC150 data at {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KbError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or any(not isinstance(data.get(split), list) for split in SPLITS):
        raise KbError(f"{path} is not CLINC150's data_full.json (needs the lists {', '.join(SPLITS)})")
    try:
        present = [*SPLITS, *(split for split in OPTIONAL_SPLITS if isinstance(data.get(split), list))]
        return {split: [(str(text), str(intent)) for text, intent in data[split]] for split in present}
    except (TypeError, ValueError) as exc:
        raise KbError(f"{path}: every example must be a [text, intent] pair") from exc


def clinc_records(train: Sequence[tuple[str, str]]) -> list[EntryRecord]:
    """One published FAQ entry per intent: the first utterance is the question, the others paraphrases."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in train:
        texts = by_intent.setdefault(intent, [])
        if text.strip() and text.strip().casefold() not in {t.casefold() for t in texts}:
            texts.append(text.strip())
    return [
        EntryRecord(
            EntryContent(
                slug=intent.replace("_", "-"), question=texts[0], paraphrases=tuple(texts[1:]),
                answer=f"(CLINC150 intent {intent})", tags=("clinc150",),
            )  # fmt: skip
        )
        for intent, texts in sorted(by_intent.items())
    ]


def auroc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if not len(pos) or not len(neg):
        return float("nan")
    values = np.concatenate([pos, neg])
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):  # average ranks over ties
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _threshold_for_precision(scores: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest threshold at which answering (score >= threshold) is right at least `target` of the time."""
    order = np.argsort(-scores)
    precision = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    meets = np.nonzero(precision >= target)[0]
    return float(scores[order][meets[-1]]) if len(meets) else float("inf")


def _operating_point(scores: np.ndarray, correct: np.ndarray, in_scope: np.ndarray, threshold: float) -> dict:
    answered = scores >= threshold
    return {
        "answered_in_scope": round(float(answered[in_scope].mean()), 4),
        "answer_precision": round(float(correct[answered].mean()), 4) if answered.any() else None,
        "out_of_scope_escalated": round(float((~answered[~in_scope]).mean()), 4),
    }


def evaluate_clinc(
    path: Path,
    embedder: Embedder,
    *,
    target_precision: float = 0.95,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    data = load_clinc(path)
    records = clinc_records(data["train"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="carebot-clinc-") as work:
        engine = create_engine(f"sqlite:///{Path(work) / 'clinc.db'}")
        try:
            create_schema(engine)
            sessions = sessionmaker(engine)
            service = KnowledgeBaseService(sessions, embedder, signature="")
            def embedding_progress(done: int, total: int) -> None:
                if on_progress:
                    on_progress("embedding the FAQ", done, total)

            service.import_entries(
                records, author="clinc-eval", source=str(path), check_duplicates=False,
                on_progress=embedding_progress,
            )  # fmt: skip
            build_s = time.perf_counter() - started
            searcher = FaqSearcher(sessions, embedder, refresh_interval_s=float("inf"))
            results = {split: _run(searcher, embedder, data[split], split, on_progress) for split in SPLITS[1:]}
            vectors = len(searcher.index)
        finally:
            engine.dispose()

    def merged(in_split: str, oos_split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ins, oos = results[in_split], results[oos_split]
        scores = np.concatenate([ins["scores"], oos["scores"]])
        correct = np.concatenate([ins["correct"], np.zeros(len(oos["scores"]), dtype=bool)])
        in_scope = np.concatenate([np.ones(len(ins["scores"]), bool), np.zeros(len(oos["scores"]), bool)])
        return scores, correct, in_scope

    val_scores, val_correct, _ = merged("val", "oos_val")
    threshold = _threshold_for_precision(val_scores, val_correct, target_precision)
    test_scores, test_correct, test_in_scope = merged("test", "oos_test")
    return {
        "data": str(path),
        "model": embedder.name,
        "entries": len(records),
        "vectors": vectors,
        "faq_build_s": round(build_s, 1),
        "test": {
            "top1_accuracy": round(float(results["test"]["correct"].mean()), 4),
            "examples": len(results["test"]["correct"]),
            "oos_examples": len(results["oos_test"]["scores"]),
            "oos_auroc_top_score": round(auroc(results["test"]["scores"], results["oos_test"]["scores"]), 4),
            "oos_auroc_margin": round(auroc(results["test"]["margins"], results["oos_test"]["margins"]), 4),
            "search_ms_p50": round(float(np.percentile(results["test"]["latency_ms"], 50)), 2),
        },
        "val": {
            "top1_accuracy": round(float(results["val"]["correct"].mean()), 4),
            "oos_auroc_top_score": round(auroc(results["val"]["scores"], results["oos_val"]["scores"]), 4),
        },
        "threshold": {
            "target_answer_precision": target_precision,
            "chosen_on": "val + oos_val",
            "top_score_threshold": round(threshold, 4),
            "val": _operating_point(val_scores, val_correct, merged("val", "oos_val")[2], threshold),
            "test": _operating_point(test_scores, test_correct, test_in_scope, threshold),
        },
    }


def _run(
    searcher: FaqSearcher, embedder: Embedder, examples: Sequence[tuple[str, str]], split: str,
    on_progress: Progress | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    scores, margins, correct, latency = [], [], [], []
    for start in range(0, len(examples), 256):
        chunk = examples[start : start + 256]
        queries = embedder.embed([text for text, _ in chunk])
        for query, (_, intent) in zip(queries, chunk, strict=True):
            began = time.perf_counter()
            result = searcher.search_vector(query, k=2)
            latency.append((time.perf_counter() - began) * 1000)
            top = result.hits[0]
            scores.append(top.score)
            margins.append(result.margin)
            correct.append(top.slug == intent.replace("_", "-"))
        if on_progress:
            on_progress(f"searching {split}", start + len(chunk), len(examples))
    return {
        "scores": np.array(scores), "margins": np.array(margins), "correct": np.array(correct, dtype=bool),
        "latency_ms": np.array(latency),
    }  # fmt: skip
