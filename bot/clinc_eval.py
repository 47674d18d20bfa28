"""CLINC150 through the full pipeline, reported side by side with the KB alone and Rasa alone.

Everything is built from CLINC150's training data only. The KB has one entry per in-scope intent (its `train`
utterances are the paraphrases, as in knowledge_base/evaluation.py) in an in-memory FaqIndex; besides nearest-neighbour
search it keeps each entry's centroid and an intent head, a linear softmax classifier fitted on the paraphrase
vectors with `oos_train` as one more class (out_of_scope). Rasa is trained on a temporary NLU file with the 150
intents and a pipeline without FallbackClassifier, so its raw confidences show.

The pipeline's intent is the one with the highest mean of Rasa's confidence and the head's probability; its score
is that mean plus the query's best centroid cosine. The KB-only variant uses the nearest entry and its cosine,
Rasa-only its top intent and confidence. Each variant answers when its score reaches one threshold, fitted on
`val` + `oos_val`: the lowest at which the answers there are right at least the target share of the time (0.97)
and few enough out-of-scope queries are answered that, with 95% confidence, at most 5% of out-of-scope messages
would be (a Clopper-Pearson bound: 1 of oos_val's 100 may pass). The figures are then reported once on `test` +
`oos_test`. Nothing is fitted on test.

`score_variants` is the pure part (parsed views in, report out); `run_clinc_eval` does the building and parsing.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.decision.answer_score import HEAD_L2, OUT_OF_SCOPE, fit_intent_head, unit_centroids
from bot.decision.calibration import fit_threshold
from bot.kb import kb_config, make_embedder
from bot.nlu.client import NluClient, NluError, NluResult
from bot.nlu.server import NluServer
from bot.nlu.service import parse_many, with_private_port
from bot.nlu.training import TrainingInputs, train
from bot.settings import Settings
from knowledge_base.embedding import Embedder
from knowledge_base.evaluation import auroc, clinc_records, load_clinc
from knowledge_base.index import FaqIndex, IndexedText

DEFAULT_TARGET = 0.97  # answer precision
DEFAULT_MIN_OOS_RECALL = 0.95
DEFAULT_CONFIDENCE = 0.95  # of the bound on the share of out-of-scope messages answered
DEFAULT_EPOCHS = 20
EVAL_SPLITS = ("val", "oos_val", "test", "oos_test")
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
    """One query as both components saw it. `gold` is None for an out-of-scope query.

    `rasa_ranking` is Rasa's intent ranking (its top 10) and `head` the KB intent head's probabilities (its top
    10 and out_of_scope); `centroid_score` is the best cosine between the query and an entry's mean paraphrase."""

    gold: str | None
    rasa_intent: str | None  # None: Rasa gave no parse
    rasa_confidence: float
    kb_intent: str
    kb_score: float  # cosine of the best entry (nearest neighbour)
    rasa_ranking: Mapping[str, float] = field(default_factory=dict)
    head: Mapping[str, float] = field(default_factory=dict)
    centroid_score: float = 0.0


def combined_intent(view: QueryView) -> tuple[str | None, float]:
    """The in-scope intent with the highest mean of Rasa's confidence and the KB head's probability, and that
    mean. An intent missing from one ranking counts 0 there."""
    best: tuple[str | None, float] = (None, 0.0)
    for intent in {*view.rasa_ranking, *view.head} - {OUT_OF_SCOPE}:
        probability = (view.rasa_ranking.get(intent, 0.0) + view.head.get(intent, 0.0)) / 2
        if probability > best[1] or (probability == best[1] and best[0] is not None and intent < best[0]):
            best = (intent, probability)
    return best


def pipeline_score(view: QueryView) -> float:
    """How sure the pipeline is that the query is in scope and its intent right: the combined probability plus
    the centroid cosine (the probability alone says which intent, the cosine how close to any entry)."""
    return combined_intent(view)[1] + view.centroid_score


@dataclass(frozen=True)
class Variant:
    """One way of answering: the intent it would answer with, and the score the threshold applies to."""

    name: str
    intent: Callable[[QueryView], str | None]
    score: Callable[[QueryView], float]
    description: str


VARIANTS = (
    Variant("pipeline", lambda v: combined_intent(v)[0], pipeline_score,
            "intent: best mean of Rasa confidence and KB head probability; score: that mean + centroid cosine"),
    Variant("kb_only", lambda v: v.kb_intent, lambda v: v.kb_score, "nearest neighbour: top entry and its cosine"),
    Variant("rasa_only", lambda v: v.rasa_intent, lambda v: v.rasa_confidence if v.rasa_intent else -1.0,
            "Rasa's top intent and its confidence"),
)  # fmt: skip


def _num(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else round(float(value), 4)


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


def _figures(views: Sequence[QueryView], variant: Variant, threshold: float) -> dict[str, Any]:
    intents = [variant.intent(v) for v in views]
    scores = [variant.score(v) for v in views]
    in_scope = [(i, v.gold) for i, v in zip(intents, views, strict=True) if v.gold is not None]
    answers = [i if i is not None and s >= threshold else None for i, s in zip(intents, scores, strict=True)]
    return {
        "in_scope_accuracy": round(sum(i == g for i, g in in_scope) / len(in_scope), 4) if in_scope else None,
        "auroc": _num(auroc([s for s, v in zip(scores, views, strict=True) if v.gold is not None],
                            [s for s, v in zip(scores, views, strict=True) if v.gold is None])),
        **_point(views, answers),
    }  # fmt: skip


def score_variants(
    val: Sequence[QueryView], test: Sequence[QueryView], target: float, *,
    min_oos_recall: float = DEFAULT_MIN_OOS_RECALL, confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:  # fmt: skip
    """Fit each variant's threshold on `val` (val + oos_val), then report it on `test` (test + oos_test)."""
    report: dict[str, Any] = {}
    for variant in VARIANTS:
        intents = [variant.intent(v) for v in val]
        threshold = fit_threshold(
            [variant.score(v) for v in val], [i is not None and i == v.gold for i, v in zip(intents, val, strict=True)],
            [v.gold is None for v in val], target, min_oos_recall, confidence,
        )  # fmt: skip
        report[variant.name] = {
            **_figures(test, variant, threshold.value),
            "threshold": _num(threshold.value),
            "allowed_oos_val_answers": threshold.allowed_leaks,
            "continuous_score": variant.description,
            "val": _figures(val, variant, threshold.value),
        }
    return report


# ---------------------------------------------------------------- data, KB, Rasa


def select_slice(
    data: dict[str, list[tuple[str, str]]], *, max_intents: int | None = None, max_train_per_intent: int | None = None,
    max_oos: int | None = None,
) -> dict[str, list[tuple[str, str]]]:  # fmt: skip
    """A slice for quick runs: the first `max_intents` intents (by name), at most `max_train_per_intent` training
    utterances each, at most `max_oos` out-of-scope queries per split (oos_train too, when present). The defaults
    keep everything."""
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
    for split in ("oos_train", "oos_val", "oos_test"):
        if split in data:
            sliced[split] = data[split][:max_oos] if max_oos else list(data[split])
    return sliced


@dataclass(frozen=True)
class KbHit:
    intent: str  # the nearest neighbour's entry
    score: float  # its cosine
    centroid_score: float  # the best cosine with an entry's centroid
    head: dict[str, float]  # the intent head's top probabilities


class ClincKb:
    """CLINC150 train as an FAQ in an in-memory FaqIndex: one entry per intent, its utterances the paraphrases.

    Besides nearest-neighbour search (as FaqSearcher scores: an entry's score is its best text's cosine), it keeps
    each entry's centroid and an intent head fitted on the paraphrase vectors, with the out-of-scope examples
    (CLINC150's oos_train) as one more class when given."""

    def __init__(
        self, embedder: Embedder, train_examples: Sequence[tuple[str, str]],
        out_of_scope_examples: Sequence[str] = (), *, head_l2: float = HEAD_L2,
    ) -> None:  # fmt: skip
        self.embedder = embedder
        self.index = FaqIndex(embedder.dimension, embedder.name)
        self.intent_of: dict[str, str] = {}
        texts: list[IndexedText] = []
        for entry_id, record in enumerate(clinc_records(train_examples), 1):
            content = record.content
            self.intent_of[content.slug] = content.slug.replace("-", "_")
            texts += [IndexedText(entry_id, content.slug, t) for t in (content.question, *content.paraphrases)]
        vectors = embedder.embed([t.text for t in texts])
        self.index.add(list(range(1, len(texts) + 1)), vectors, texts)
        self.entries = len(self.intent_of)
        labels = [self.intent_of[t.slug] for t in texts]
        self.centroid_names, self.centroids = unit_centroids(vectors, labels)
        if out_of_scope_examples:
            vectors = np.vstack([vectors, embedder.embed(list(out_of_scope_examples))])
            labels += [OUT_OF_SCOPE] * len(out_of_scope_examples)
        self.head = fit_intent_head(vectors, labels, l2=head_l2)

    def search(self, queries: Sequence[str], batch: int = 256) -> list[KbHit]:
        found = []
        fetch = min(len(self.index), 64)
        for start in range(0, len(queries), batch):
            vectors = self.embedder.embed(list(queries[start : start + batch]))
            centroid_scores = (vectors @ self.centroids.T).max(axis=1)
            heads = self.head.top(vectors)
            for pairs, vector, centroid_score, head in zip(
                self.index.search(vectors, fetch), vectors, centroid_scores, heads, strict=True
            ):
                best = self._best_entries(pairs)
                if not best:  # never with a non-empty index; defensive
                    best = self._best_entries(self.index.search(vector[None, :], len(self.index))[0])
                top_slug, top_score = best[0]
                found.append(KbHit(self.intent_of[top_slug], top_score, float(centroid_score), head))
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


def _view(gold: str | None, parsed: NluResult | None, kb_hit: KbHit) -> QueryView:
    return QueryView(
        gold=gold, rasa_intent=parsed.intent if parsed else None, rasa_confidence=parsed.confidence if parsed else 0.0,
        kb_intent=kb_hit.intent, kb_score=kb_hit.score,
        rasa_ranking={s.name: s.confidence for s in parsed.ranking} if parsed else {}, head=kb_hit.head,
        centroid_score=kb_hit.centroid_score,
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
    min_oos_recall: float = DEFAULT_MIN_OOS_RECALL,
    confidence: float = DEFAULT_CONFIDENCE,
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
            kb = ClincKb(embedder, data["train"], [t for t, _ in data.get("oos_train", [])])
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
        views["val"] + views["oos_val"], views["test"] + views["oos_test"], target, min_oos_recall=min_oos_recall,
        confidence=confidence,
    )  # fmt: skip
    timings["calibration_s"] = time.perf_counter() - began
    timings["total_s"] = time.perf_counter() - started
    failed = sum(p is None for split in EVAL_SPLITS for p in parsed[split])
    return {
        "data": str(path),
        "target_answer_precision": target,
        "min_oos_recall": min_oos_recall,
        "min_oos_recall_confidence": confidence,
        "calibrated_on": "val + oos_val",
        "reported_on": "test + oos_test",
        "examples": {split: len(data.get(split, [])) for split in ("train", "oos_train", *EVAL_SPLITS)},
        "intents": kb.entries,
        "kb_model": embedder.name,
        "rasa_model": model.name,
        "rasa_epochs": epochs,
        "rasa_trained_now": trained,
        "rasa_failed_parses": failed,
        **report,
        "timings": {name: round(value, 1) for name, value in timings.items()},
    }
