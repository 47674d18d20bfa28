"""The pure part of `carebot eval clinc150`: calibrating the three variants on val and scoring them on test,
with synthetic views whose right answers are known."""

from __future__ import annotations

import math
import random

import pytest

from bot.clinc_eval import PIPELINE_SCORES, PipelineThresholds, QueryView, fit_pipeline, score_variants, select_slice
from bot.policy import Thresholds

INTENTS = ("balance", "transfer", "timer", "weather")
KEYS = ("auroc", "answer_precision", "coverage", "oos_recall", "in_scope_accuracy")


def synthetic(seed: int, in_scope: int = 200, oos: int = 100) -> list[QueryView]:
    """In scope: both components usually right and confident, wrong ones less confident and disagreeing.
    Out of scope: KB scores lower, Rasa half-confident, the two agreeing only by chance."""
    rng = random.Random(seed)
    views = []
    for number in range(in_scope):
        gold = INTENTS[number % len(INTENTS)]
        kb_right, rasa_right = rng.random() < 0.9, rng.random() < 0.85
        kb_intent = gold if kb_right else rng.choice([i for i in INTENTS if i != gold])
        rasa_intent = gold if rasa_right else rng.choice([i for i in INTENTS if i != gold])
        views.append(QueryView(
            gold=gold, rasa_intent=rasa_intent, rasa_confidence=rng.uniform(0.6, 1.0) if rasa_right else
            rng.uniform(0.2, 0.7), rasa_margin=rng.uniform(0.1, 0.9), kb_intent=kb_intent,
            kb_score=rng.uniform(0.6, 0.95) if kb_right else rng.uniform(0.3, 0.65), kb_margin=rng.uniform(0.0, 0.2),
        ))  # fmt: skip
    for _ in range(oos):
        views.append(QueryView(
            gold=None, rasa_intent=rng.choice(INTENTS), rasa_confidence=rng.uniform(0.2, 0.8),
            rasa_margin=rng.uniform(0.0, 0.5), kb_intent=rng.choice(INTENTS), kb_score=rng.uniform(0.2, 0.7),
            kb_margin=rng.uniform(0.0, 0.1),
        ))  # fmt: skip
    return views


def test_every_variant_reports_its_figures_in_range() -> None:
    report = score_variants(synthetic(1), synthetic(2), target=0.97)
    for variant in ("pipeline", "kb_only", "rasa_only"):
        for key in KEYS:
            value = report[variant][key]
            assert value is None or 0.0 <= value <= 1.0, (variant, key, value)
        assert report[variant]["thresholds"]
    assert report["pipeline"]["continuous_score"] in PIPELINE_SCORES


def test_the_pipeline_meets_the_target_on_val_and_beats_each_component_alone() -> None:
    val = synthetic(3, in_scope=400, oos=200)
    report = score_variants(val, synthetic(4, in_scope=400, oos=200), target=0.97)
    pipeline = report["pipeline"]
    assert pipeline["val"]["answer_precision"] >= 0.97
    assert pipeline["val"]["coverage"] > 0.5
    assert pipeline["auroc"] > max(report["kb_only"]["auroc"], report["rasa_only"]["auroc"])
    assert pipeline["oos_recall"] > report["kb_only"]["oos_recall"] - 0.05


def test_only_agreeing_queries_are_answered() -> None:
    thresholds = PipelineThresholds(0.0, Thresholds(0.0, 0.0))
    agree = QueryView("timer", "timer", 0.9, 0.5, "timer", 0.9, 0.3)
    disagree = QueryView("timer", "weather", 0.99, 0.9, "timer", 0.99, 0.5)
    no_parse = QueryView("timer", None, 0.0, 0.0, "timer", 0.99, 0.5)
    assert thresholds.admits(agree)
    assert not thresholds.admits(disagree)
    assert not thresholds.admits(no_parse)
    assert PIPELINE_SCORES["kb_score_if_agree"](agree) > PIPELINE_SCORES["kb_score_if_agree"](disagree)


def test_an_unreachable_target_answers_nothing() -> None:
    views = [QueryView(None, "timer", 0.9, 0.5, "timer", 0.9, 0.3)] * 5  # every agreeing answer is wrong
    assert math.isinf(fit_pipeline(views, 0.97).min_confidence)
    report = score_variants(views + [QueryView("timer", "timer", 0.5, 0.1, "timer", 0.5, 0.1)], views, 0.97)
    assert report["pipeline"]["coverage"] is None  # test has no in-scope query
    assert report["pipeline"]["oos_recall"] == 1.0


@pytest.mark.parametrize(("max_intents", "per_intent", "max_oos"), [(None, None, None), (1, 2, 1)])
def test_select_slice(max_intents: int | None, per_intent: int | None, max_oos: int | None) -> None:
    data = {
        "train": [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")],
        "val": [("av", "a"), ("bv", "b")], "test": [("at", "a"), ("bt", "b")],
        "oos_val": [("o1", "oos"), ("o2", "oos")], "oos_test": [("o3", "oos"), ("o4", "oos")],
    }  # fmt: skip
    sliced = select_slice(data, max_intents=max_intents, max_train_per_intent=per_intent, max_oos=max_oos)
    if max_intents is None:
        assert sliced == data
    else:
        assert sliced["train"] == [("a1", "a"), ("a2", "a")]
        assert sliced["val"] == [("av", "a")] and sliced["test"] == [("at", "a")]
        assert sliced["oos_val"] == [("o1", "oos")] and sliced["oos_test"] == [("o3", "oos")]


def test_weighting_out_of_scope_in_calibration_makes_the_thresholds_no_looser() -> None:
    val, test = synthetic(5, in_scope=300, oos=60), synthetic(6, in_scope=300, oos=300)
    plain = score_variants(val, test, target=0.97)
    weighted = score_variants(val, test, target=0.97, oos_weight=10)
    for variant in ("pipeline", "kb_only", "rasa_only"):
        assert weighted[variant]["oos_recall"] >= plain[variant]["oos_recall"], variant
        assert weighted[variant]["val"]["answered"] <= plain[variant]["val"]["answered"], variant
