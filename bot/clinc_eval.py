"""CLINC150 through the full pipeline: Rasa's intent and the knowledge base's best entry must agree before the bot
answers on its own. Reported side by side with the KB alone (top score) and Rasa alone (confidence).

Both components are built from CLINC150 `train` only: the KB has one entry per in-scope intent (its training
utterances are the paraphrases, as in knowledge_base/evaluation.py) in an in-memory FaqIndex; Rasa is trained on
a temporary NLU file with the 150 intents and a pipeline without FallbackClassifier, so its raw confidences show.
Thresholds and the choice of the continuous score are fitted on `val` + `oos_val` for a target answer precision,
then applied once to `test` + `oos_test`. Nothing is ever fitted on test.

`score_variants` is the pure part (parsed views in, report out); `run_clinc_eval` does the building and parsing.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.calibration import CalibrationRecord, Fit, fit_thresholds
from bot.kb import kb_config, make_embedder
from bot.nlu.client import NluClient, NluError, NluResult
from bot.nlu.server import NluServer
from bot.nlu.service import parse_many, with_private_port
from bot.nlu.training import TrainingInputs, train
from bot.policy import Thresholds
from bot.settings import Settings
from knowledge_base.embedding import Embedder
from knowledge_base.evaluation import auroc, clinc_records, load_clinc
from knowledge_base.index import FaqIndex, IndexedText

DEFAULT_TARGET = 0.97
DEFAULT_EPOCHS = 20
EVAL_SPLITS = ("val", "oos_val", "test", "oos_test")
CONFIDENCE_QUANTILES = 40  # Rasa confidence thresholds tried for the pipeline (besides 0)
Stage = Callable[[str], None]

# The Rasa pipeline: training_data/config.yml without its regex parts (CLINC150 has no regexes or lookup tables)
# and without FallbackClassifier, so that the evaluation sees Rasa's raw confidences.
RASA_CONFIG = """\
recipe: default.v1
language: en
assistant_id: carebot-clinc150
pipeline:
  - name: WhitespaceTokenizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: word
    ngram_range: [1, 2]
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: {epochs}
    number_of_transformer_layers: 1
    transformer_size: 128
    entity_recognition: false
    constrain_similarities: true
    random_seed: 7
policies: []
"""


# ---------------------------------------------------------------- the pure part


@dataclass(frozen=True)
class QueryView:
    """One query as both components saw it. `gold` is None for an out-of-scope query."""

    gold: str | None
    rasa_intent: str | None  # None: Rasa gave no parse
    rasa_confidence: float
    rasa_margin: float  # over Rasa's second intent
    kb_intent: str
    kb_score: float  # cosine of the best entry
    kb_margin: float  # over the second entry

    @property
    def agree(self) -> bool:
        return self.rasa_intent is not None and self.rasa_intent == self.kb_intent


@dataclass(frozen=True)
class PipelineThresholds:
    min_confidence: float  # Rasa's
    kb: Thresholds  # the KB top score and margin

    def admits(self, view: QueryView) -> bool:
        return (
            view.agree and view.rasa_confidence >= self.min_confidence and self.kb.admits(view.kb_score, view.kb_margin)
        )

    def to_dict(self) -> dict[str, float | None]:
        return {
            "rasa_min_confidence": _num(self.min_confidence),
            "kb_min_score": _num(self.kb.min_score),
            "kb_min_margin": _num(self.kb.min_margin),
        }


def _num(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else round(float(value), 4)


def kb_record(view: QueryView) -> CalibrationRecord:
    return CalibrationRecord(
        intent=view.kb_intent, nlu_confidence=1.0, top_score=view.kb_score, margin=view.kb_margin,
        correct=view.kb_intent == view.gold, in_scope=view.gold is not None,
    )  # fmt: skip


def rasa_record(view: QueryView) -> CalibrationRecord:
    """Rasa alone, in the calibration's terms: its confidence is the score, its lead over the second the margin."""
    return CalibrationRecord(
        intent=view.rasa_intent, nlu_confidence=view.rasa_confidence,
        top_score=view.rasa_confidence if view.rasa_intent else -1.0, margin=view.rasa_margin,
        correct=view.rasa_intent is not None and view.rasa_intent == view.gold, in_scope=view.gold is not None,
    )  # fmt: skip


def fit_pipeline(views: Sequence[QueryView], target: float) -> PipelineThresholds:
    """The (Rasa confidence, KB score, KB margin) thresholds that answer the most in-scope queries at precision
    >= target. Only agreeing queries can be answered; for each Rasa threshold on a grid, fit_thresholds picks the
    KB thresholds. Ties go to the higher precision, then to the stricter Rasa threshold."""
    agreeing = [v for v in views if v.agree]
    confidences = np.array([v.rasa_confidence for v in agreeing]) if agreeing else np.zeros(0)
    grid = sorted({0.0, *(float(q) for q in np.quantile(confidences, np.linspace(0, 0.95, CONFIDENCE_QUANTILES)))}
                  if len(confidences) else {0.0})  # fmt: skip
    best = PipelineThresholds(math.inf, Thresholds(math.inf, math.inf))
    best_key: tuple[float, ...] = (0, -1.0, -math.inf)
    for min_confidence in grid:
        fit = fit_thresholds([kb_record(v) for v in agreeing if v.rasa_confidence >= min_confidence], target)
        if fit.thresholds.never:
            continue
        key = (fit.answered_in_scope, fit.precision or 0.0, min_confidence)
        if key > best_key:
            best, best_key = PipelineThresholds(min_confidence, fit.thresholds), key
    return best


# Continuous scores for the pipeline's AUROC: which one is used is chosen on val (the best AUROC there).
# A disagreement puts the query below every agreeing one (scores are at most 1, cosines at least -1).
PIPELINE_SCORES: dict[str, Callable[[QueryView], float]] = {
    "kb_score_if_agree": lambda v: v.kb_score if v.agree else v.kb_score - 3.0,
    "kb_score_x_confidence_if_agree": lambda v: v.kb_score * v.rasa_confidence - (0.0 if v.agree else 3.0),
    "mean_if_agree": lambda v: (v.kb_score + v.rasa_confidence) / 2 - (0.0 if v.agree else 3.0),
    "min_if_agree": lambda v: min(v.kb_score, v.rasa_confidence) - (0.0 if v.agree else 3.0),
    "mean": lambda v: (v.kb_score + v.rasa_confidence) / 2,
}


def _auroc(views: Sequence[QueryView], score: Callable[[QueryView], float]) -> float:
    return auroc([score(v) for v in views if v.gold is not None], [score(v) for v in views if v.gold is None])


def _point(views: Sequence[QueryView], answers: Sequence[str | None]) -> dict[str, Any]:
    """What answering `answers` (None: escalated) achieves on these views."""
    in_scope = [v.gold is not None for v in views]
    answered = [a is not None for a in answers]
    correct = [a is not None and a == v.gold for a, v in zip(answers, views, strict=True)]
    n_in, n_oos = sum(in_scope), len(views) - sum(in_scope)
    n_answered = sum(answered)
    answered_in = sum(a and i for a, i in zip(answered, in_scope, strict=True))
    answered_oos = n_answered - answered_in
    return {
        "answer_precision": round(sum(correct) / n_answered, 4) if n_answered else None,
        "coverage": round(answered_in / n_in, 4) if n_in else None,
        "oos_recall": round(1 - answered_oos / n_oos, 4) if n_oos else None,
        "answered_correct_share_of_in_scope": round(sum(correct) / n_in, 4) if n_in else None,
        "answered": n_answered,
    }


def _accuracy(views: Sequence[QueryView], predict: Callable[[QueryView], str | None]) -> float:
    in_scope = [v for v in views if v.gold is not None]
    return round(sum(predict(v) == v.gold for v in in_scope) / len(in_scope), 4) if in_scope else float("nan")


def score_variants(
    val: Sequence[QueryView], test: Sequence[QueryView], target: float, *, oos_weight: int = 1
) -> dict[str, Any]:
    """Calibrate each variant on `val` (val + oos_val) and report it on `test` (test + oos_test).

    `oos_weight` counts each out-of-scope validation query that many times when the thresholds are fitted: the
    answer precision reached on val depends on the share of out-of-scope messages, and CLINC150's val has few
    (100 of 3,100). The val figures in the report are unweighted."""
    report: dict[str, Any] = {}
    fit_on = list(val) + [v for v in val if v.gold is None] * (max(oos_weight, 1) - 1)

    # KB only: the top entry, answered when its score and margin pass thresholds; AUROC of the top score.
    kb_fit = fit_thresholds([kb_record(v) for v in fit_on], target)
    report["kb_only"] = _variant(
        val, test, predict=lambda v: v.kb_intent, score=lambda v: v.kb_score,
        answer=lambda v: v.kb_intent if kb_fit.thresholds.admits(v.kb_score, v.kb_margin) else None,
        thresholds={"kb_min_score": _num(kb_fit.thresholds.min_score),
                    "kb_min_margin": _num(kb_fit.thresholds.min_margin)},
        continuous="kb top score",
    )  # fmt: skip

    # Rasa only: the top intent, answered when its confidence and lead pass thresholds; AUROC of the confidence.
    rasa_fit: Fit = fit_thresholds([rasa_record(v) for v in fit_on], target)
    report["rasa_only"] = _variant(
        val, test, predict=lambda v: v.rasa_intent, score=lambda v: v.rasa_confidence,
        answer=lambda v: v.rasa_intent if v.rasa_intent and rasa_fit.thresholds.admits(
            v.rasa_confidence, v.rasa_margin) else None,
        thresholds={"rasa_min_confidence": _num(rasa_fit.thresholds.min_score),
                    "rasa_min_margin": _num(rasa_fit.thresholds.min_margin)},
        continuous="rasa confidence",
    )  # fmt: skip

    # The pipeline: answered only when both agree and pass their thresholds.
    pipeline = fit_pipeline(fit_on, target)
    score_aurocs = {name: _auroc(val, score) for name, score in PIPELINE_SCORES.items()}
    score_name = max(score_aurocs, key=lambda name: (np.nan_to_num(score_aurocs[name], nan=-1.0), name))
    # Its best guess when the two disagree: whichever component was the more accurate on val.
    rasa_wins = _accuracy(val, lambda v: v.rasa_intent) >= _accuracy(val, lambda v: v.kb_intent)

    def guess(v: QueryView) -> str | None:
        return v.kb_intent if v.agree else (v.rasa_intent if rasa_wins else v.kb_intent)

    report["pipeline"] = _variant(
        val, test, predict=guess, score=PIPELINE_SCORES[score_name],
        answer=lambda v: v.kb_intent if pipeline.admits(v) else None,
        thresholds=pipeline.to_dict(), continuous=score_name,
    )  # fmt: skip
    report["pipeline"]["val_auroc_by_score"] = {name: _num(value) for name, value in score_aurocs.items()}
    report["pipeline"]["on_disagreement_guess"] = "rasa" if rasa_wins else "kb"
    report["pipeline"]["test_agreement_rate"] = round(sum(v.agree for v in test) / len(test), 4) if test else None
    return report


def _variant(
    val: Sequence[QueryView], test: Sequence[QueryView], *, predict: Callable[[QueryView], str | None],
    score: Callable[[QueryView], float], answer: Callable[[QueryView], str | None], thresholds: dict[str, Any],
    continuous: str,
) -> dict[str, Any]:  # fmt: skip
    on_test = _point(test, [answer(v) for v in test])
    return {
        "in_scope_accuracy": _accuracy(test, predict),
        "auroc": _num(_auroc(test, score)),
        "answer_precision": on_test["answer_precision"],
        "coverage": on_test["coverage"],
        "oos_recall": on_test["oos_recall"],
        "answered_correct_share_of_in_scope": on_test["answered_correct_share_of_in_scope"],
        "thresholds": thresholds,
        "continuous_score": continuous,
        "val": {
            "in_scope_accuracy": _accuracy(val, predict),
            "auroc": _num(_auroc(val, score)),
            **_point(val, [answer(v) for v in val]),
        },
    }


# ---------------------------------------------------------------- data, KB, Rasa


def select_slice(
    data: dict[str, list[tuple[str, str]]], *, max_intents: int | None = None, max_train_per_intent: int | None = None,
    max_oos: int | None = None,
) -> dict[str, list[tuple[str, str]]]:  # fmt: skip
    """A slice for quick runs: the first `max_intents` intents (by name), at most `max_train_per_intent` training
    utterances each, at most `max_oos` out-of-scope queries per split. The defaults keep everything."""
    intents = sorted({intent for _, intent in data["train"]})
    keep = set(intents[:max_intents] if max_intents else intents)
    counts: dict[str, int] = {}
    train_slice = []
    for text, intent in data["train"]:
        if intent in keep and counts.get(intent, 0) < (max_train_per_intent or math.inf):
            counts[intent] = counts.get(intent, 0) + 1
            train_slice.append((text, intent))
    sliced = {"train": train_slice}
    for split in ("val", "test"):
        sliced[split] = [(t, i) for t, i in data[split] if i in keep]
    for split in ("oos_val", "oos_test"):
        sliced[split] = data[split][:max_oos] if max_oos else list(data[split])
    return sliced


class ClincKb:
    """CLINC150 train as an FAQ in an in-memory FaqIndex: one entry per intent, its utterances the paraphrases."""

    def __init__(self, embedder: Embedder, train_examples: Sequence[tuple[str, str]]) -> None:
        self.embedder = embedder
        self.index = FaqIndex(embedder.dimension, embedder.name)
        self.intent_of: dict[str, str] = {}
        texts: list[IndexedText] = []
        for entry_id, record in enumerate(clinc_records(train_examples), 1):
            content = record.content
            self.intent_of[content.slug] = content.slug.replace("-", "_")
            texts += [IndexedText(entry_id, content.slug, t) for t in (content.question, *content.paraphrases)]
        self.index.add(list(range(1, len(texts) + 1)), embedder.embed([t.text for t in texts]), texts)
        self.entries = len(self.intent_of)

    def search(self, queries: Sequence[str], batch: int = 256) -> list[tuple[str, float, float]]:
        """For each query: (best intent, its score, its margin over the second entry), as FaqSearcher scores them
        (an entry's score is its best text's cosine)."""
        found = []
        fetch = min(len(self.index), 64)
        for start in range(0, len(queries), batch):
            vectors = self.embedder.embed(list(queries[start : start + batch]))
            for pairs, vector in zip(self.index.search(vectors, fetch), vectors, strict=True):
                best = self._best_entries(pairs)
                if len(best) < min(2, self.entries):  # rare: every fetched text is of one entry
                    best = self._best_entries(self.index.search(vector[None, :], len(self.index))[0])
                top_slug, top_score = best[0]
                second = best[1][1] if len(best) > 1 else 0.0
                found.append((self.intent_of[top_slug], top_score, top_score - second))
        return found

    def _best_entries(self, pairs: Sequence[tuple[int, float]]) -> list[tuple[str, float]]:
        best: dict[str, float] = {}
        for vector_id, score in pairs:
            best.setdefault(self.index.text(vector_id).slug, score)  # faiss gives the best first
        return list(best.items())


def write_rasa_inputs(directory: Path, train_examples: Sequence[tuple[str, str]], epochs: int) -> TrainingInputs:
    """A Rasa NLU file with one intent per CLINC150 intent, and the pipeline config, in `directory`."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in train_examples:
        cleaned = " ".join(text.replace("[", "(").replace("]", ")").split())  # no `[..](..)` entity markup
        if cleaned and cleaned not in by_intent.setdefault(intent, []):
            by_intent[intent].append(cleaned)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in sorted(by_intent.items()):
        lines += [f"- intent: {intent}", "  examples: |"] + [f"    - {t}" for t in texts]
    nlu_file = directory / "clinc150.yml"
    nlu_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = directory / "config.yml"
    config.write_text(RASA_CONFIG.format(epochs=int(epochs)), encoding="utf-8")
    return TrainingInputs(config=config, nlu_files=(nlu_file,), domain=None)


def parse_all(
    client: NluClient, texts: Sequence[str], concurrency: int = 2, chunk: int = 500
) -> list[NluResult | None]:
    """parse_many in chunks; a chunk with a failed parse is redone text by text, a failed text gives None."""
    results: list[NluResult | None] = []
    for start in range(0, len(texts), chunk):
        part = texts[start : start + chunk]
        try:
            results += parse_many(client, part, concurrency=concurrency)
        except NluError:
            for text in part:
                try:
                    results.append(client.parse(text))
                except NluError:
                    results.append(None)
    return results


def _view(gold: str | None, parsed: NluResult | None, kb_hit: tuple[str, float, float]) -> QueryView:
    ranking = [s for s in parsed.ranking] if parsed else []
    confidence = parsed.confidence if parsed else 0.0
    second = ranking[1].confidence if len(ranking) > 1 else 0.0
    return QueryView(
        gold=gold, rasa_intent=parsed.intent if parsed else None, rasa_confidence=confidence,
        rasa_margin=confidence - second if parsed else 0.0, kb_intent=kb_hit[0], kb_score=kb_hit[1],
        kb_margin=kb_hit[2],
    )  # fmt: skip


def run_clinc_eval(
    settings: Settings,
    path: Path,
    *,
    epochs: int = DEFAULT_EPOCHS,
    max_train_per_intent: int | None = None,
    max_intents: int | None = None,
    max_oos: int | None = None,
    target: float = DEFAULT_TARGET,
    oos_weight: int = 1,
    concurrency: int = 2,
    embedder: Embedder | None = None,
    on_stage: Stage = lambda stage: None,
    on_train_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Build the KB and the Rasa model from train, parse the evaluation splits, calibrate on val, report on test."""
    started = time.perf_counter()
    data = select_slice(
        load_clinc(path), max_intents=max_intents, max_train_per_intent=max_train_per_intent, max_oos=max_oos
    )
    timings: dict[str, float] = {}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix="clinc-eval-") as work:
        inputs = write_rasa_inputs(Path(work), data["train"], epochs)

        def train_model() -> tuple[Path, bool, float]:
            began = time.perf_counter()
            model, trained = train(settings, inputs, on_progress=on_train_progress)
            return model, trained, time.perf_counter() - began

        # Rasa trains in its own process: build and search the KB meanwhile.
        with ThreadPoolExecutor(max_workers=1) as pool:
            on_stage("training Rasa, building the KB")
            training = pool.submit(train_model)
            began = time.perf_counter()
            embedder = embedder or make_embedder(kb_config(settings))
            kb = ClincKb(embedder, data["train"])
            timings["kb_build_s"] = time.perf_counter() - began
            began = time.perf_counter()
            kb_hits = {split: kb.search([t for t, _ in data[split]]) for split in EVAL_SPLITS}
            timings["kb_search_s"] = time.perf_counter() - began
            on_stage("training Rasa")
            model, trained, timings["rasa_train_s"] = training.result()

    began = time.perf_counter()
    with NluServer(with_private_port(settings), model) as server, server.client() as client:
        timings["rasa_start_s"] = time.perf_counter() - began
        on_stage("parsing with Rasa")
        began = time.perf_counter()
        parsed = {split: parse_all(client, [t for t, _ in data[split]], concurrency) for split in EVAL_SPLITS}
        timings["rasa_parse_s"] = time.perf_counter() - began

    views = {
        split: [
            _view(None if split.startswith("oos") else intent, p, hit)
            for (_, intent), p, hit in zip(data[split], parsed[split], kb_hits[split], strict=True)
        ]
        for split in EVAL_SPLITS
    }
    began = time.perf_counter()
    report = score_variants(
        views["val"] + views["oos_val"], views["test"] + views["oos_test"], target, oos_weight=oos_weight
    )
    timings["calibration_s"] = time.perf_counter() - began
    timings["total_s"] = time.perf_counter() - started
    failed = sum(p is None for split in EVAL_SPLITS for p in parsed[split])
    return {
        "data": str(path),
        "target_answer_precision": target,
        "oos_weight_in_calibration": oos_weight,
        "calibrated_on": "val + oos_val",
        "reported_on": "test + oos_test",
        "examples": {split: len(data[split]) for split in ("train", *EVAL_SPLITS)},
        "intents": kb.entries,
        "kb_model": embedder.name,
        "rasa_model": model.name,
        "rasa_epochs": epochs,
        "rasa_trained_now": trained,
        "rasa_failed_parses": failed,
        **report,
        "timings": {name: round(value, 1) for name, value in timings.items()},
    }
