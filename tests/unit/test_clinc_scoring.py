"""The pure part of `carebot eval clinc150`: combining Rasa and the KB, the intent head, the threshold fitted for a
target precision and out-of-scope recall, and the three variants scored on synthetic views whose right answers are
known."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from bot.clinc_eval import QueryView, combined_intent, pipeline_score, score_variants, select_slice
from bot.decision.answer_score import OUT_OF_SCOPE, fit_intent_head, unit_centroids
from bot.decision.calibration import fit_threshold, leak_upper_bound, max_leaks

INTENTS = ("balance", "transfer", "timer", "weather")
KEYS = ("auroc", "answer_precision", "coverage", "oos_recall", "in_scope_accuracy")


def view(gold: str | None, rasa: dict[str, float], head: dict[str, float], centroid: float = 0.5) -> QueryView:
    top = max(rasa, key=rasa.__getitem__) if rasa else None
    return QueryView(
        gold=gold, rasa_intent=top, rasa_confidence=rasa.get(top, 0.0) if top else 0.0,
        kb_intent=max(head, key=head.__getitem__), kb_score=centroid, rasa_ranking=rasa, head=head,
        centroid_score=centroid,
    )  # fmt: skip


def synthetic(seed: int, in_scope: int = 200, oos: int = 100) -> list[QueryView]:
    """In scope: each component usually right and confident, close to a centroid; out of scope: the probability
    spread over intents, far from every centroid. The two components err independently."""
    rng = random.Random(seed)
    views = []
    for number in range(in_scope):
        gold = INTENTS[number % len(INTENTS)]
        rasa_pick = gold if rng.random() < 0.85 else rng.choice(INTENTS)
        head_pick = gold if rng.random() < 0.9 else rng.choice(INTENTS)
        rasa_p, head_p = rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0)
        rasa = {i: (rasa_p if i == rasa_pick else (1 - rasa_p) / 3) for i in INTENTS}
        head = {i: (head_p if i == head_pick else (1 - head_p) / 3) for i in INTENTS}
        views.append(view(gold, rasa, head, rng.uniform(0.55, 0.9)))
    for _ in range(oos):
        rasa_p, head_p = rng.uniform(0.25, 0.7), rng.uniform(0.25, 0.7)
        rasa_pick, head_pick = rng.choice(INTENTS), rng.choice(INTENTS)
        rasa = {i: (rasa_p if i == rasa_pick else (1 - rasa_p) / 3) for i in INTENTS}
        head = {i: (head_p if i == head_pick else (1 - head_p) / 3) for i in INTENTS}
        views.append(view(None, rasa, head, rng.uniform(0.3, 0.65)))
    return views


def test_combined_intent_is_the_best_mean_and_never_out_of_scope() -> None:
    # Rasa prefers timer, the head weather more strongly: together, weather; out_of_scope is never the answer
    v = view("timer", {"timer": 0.5, "weather": 0.45}, {"weather": 0.3, "timer": 0.1, OUT_OF_SCOPE: 0.6})
    assert combined_intent(v) == ("weather", pytest.approx(0.375))
    only_rasa = view("timer", {"balance": 0.9}, {"timer": 0.8})  # missing from a ranking counts 0 there
    assert combined_intent(only_rasa) == ("balance", pytest.approx(0.45))
    assert combined_intent(view(None, {}, {OUT_OF_SCOPE: 1.0})) == (None, 0.0)


def test_pipeline_score_adds_the_centroid_cosine() -> None:
    near = view("timer", {"timer": 0.8}, {"timer": 0.6}, centroid=0.9)
    far = view("timer", {"timer": 0.8}, {"timer": 0.6}, centroid=0.2)
    assert pipeline_score(near) == pytest.approx(0.7 + 0.9)
    assert pipeline_score(near) - pipeline_score(far) == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("leaked", "total", "expected"),  # scipy.stats.beta.ppf(0.95, leaked + 1, total - leaked)
    [(0, 100, 0.029513), (1, 100, 0.046560), (2, 100, 0.061619), (0, 59, 0.049508), (39, 1000, 0.050634)],
)
def test_leak_upper_bound_is_clopper_pearson(leaked: int, total: int, expected: float) -> None:
    assert leak_upper_bound(leaked, total, 0.95) == pytest.approx(expected, abs=1e-6)
    assert leak_upper_bound(total, total, 0.95) == 1.0


def test_max_leaks_for_95_percent_recall_at_95_percent_confidence() -> None:
    assert max_leaks(100, 0.95, 0.95) == 1
    assert max_leaks(200, 0.95, 0.95) == 4
    assert max_leaks(1000, 0.95, 0.95) == 38
    assert max_leaks(50, 0.95, 0.95) == 0  # too few for the bound: none may pass


def test_fit_threshold_meets_precision_and_leak_cap() -> None:
    # score, correct, out of scope — sorted high to low
    rows = [(0.9, True, False), (0.8, True, False), (0.7, False, True), (0.6, True, False), (0.5, False, True),
            (0.4, True, False), (0.3, False, False)]  # fmt: skip
    scores, correct, oos = zip(*rows, strict=True)
    # precision only (every out-of-scope one may pass): the lowest threshold with precision >= 0.6 is 0.4 (4/6)
    assert fit_threshold(scores, correct, oos, 0.6, min_oos_recall=0.0, confidence=0.95).value == 0.4
    # with a recall demand, at most max_leaks(2, ...) = 0 may pass: above the first out-of-scope score
    fitted = fit_threshold(scores, correct, oos, 0.6, min_oos_recall=0.95, confidence=0.95)
    assert (fitted.value, fitted.allowed_leaks) == (0.8, 0)
    assert math.isinf(fit_threshold(scores, correct, oos, 1.01, 0.0, 0.95).value)


def test_fit_threshold_never_splits_tied_scores() -> None:
    scores, correct, oos = [0.9, 0.8, 0.8, 0.1], [True, True, False, False], [False, False, False, False]
    assert fit_threshold(scores, correct, oos, 0.9, 0.0, 0.95).value == 0.9  # 0.8 would admit the wrong one too


def test_intent_head_learns_separable_clusters_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4)
    labels = [name for name in ("a", "b", "c", OUT_OF_SCOPE) for _ in range(20)]
    vectors = np.repeat(centres, 20, axis=0) + rng.normal(0, 0.1, (80, 4))
    head = fit_intent_head(vectors, labels, l2=1e-3)
    assert head.labels == ("a", "b", "c", OUT_OF_SCOPE)
    probabilities = head.probabilities(centres)
    assert (probabilities.argmax(axis=1) == np.arange(4)).all()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    top = head.top(centres[:1], k=1)[0]  # the best label, and out_of_scope's probability besides
    assert set(top) == {"a", OUT_OF_SCOPE} and top["a"] > 0.5 > top[OUT_OF_SCOPE]
    again = fit_intent_head(vectors, labels, l2=1e-3)
    assert np.array_equal(head.weights, again.weights)
    with pytest.raises(ValueError):
        fit_intent_head(vectors[:2], ["a", "a"])


def test_unit_centroids() -> None:
    names, centroids = unit_centroids(np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), ["x", "x", "y"])
    assert names == ("x", "y")
    assert np.allclose(centroids, [[math.sqrt(0.5), math.sqrt(0.5)], [1.0, 0.0]])


def test_every_variant_reports_its_figures_in_range() -> None:
    report = score_variants(synthetic(1), synthetic(2), target=0.97)
    for variant in ("pipeline", "kb_only", "rasa_only"):
        for key in KEYS:
            value = report[variant][key]
            assert value is None or 0.0 <= value <= 1.0, (variant, key, value)
        assert report[variant]["continuous_score"]


def test_the_pipeline_meets_both_demands_on_val_and_separates_better_than_each_component() -> None:
    val = synthetic(3, in_scope=800, oos=200)
    report = score_variants(val, synthetic(4, in_scope=800, oos=200), target=0.97, min_oos_recall=0.95)
    pipeline = report["pipeline"]
    assert pipeline["val"]["answer_precision"] >= 0.97
    assert pipeline["val"]["oos_recall"] >= 1 - pipeline["allowed_oos_val_answers"] / 200
    assert pipeline["allowed_oos_val_answers"] == 4
    assert pipeline["val"]["coverage"] > 0.5
    for component in ("kb_only", "rasa_only"):
        assert pipeline["auroc"] > report[component]["auroc"], component


def test_a_stricter_recall_demand_answers_no_more() -> None:
    val, test = synthetic(5, in_scope=400, oos=200), synthetic(6, in_scope=400, oos=400)
    loose = score_variants(val, test, target=0.9, min_oos_recall=0.5)
    strict = score_variants(val, test, target=0.9, min_oos_recall=0.97)
    for variant in ("pipeline", "kb_only", "rasa_only"):
        assert strict[variant]["val"]["answered"] <= loose[variant]["val"]["answered"], variant
        assert strict[variant]["oos_recall"] >= loose[variant]["oos_recall"], variant


def test_an_unreachable_target_answers_nothing() -> None:
    wrong = view(None, {"timer": 0.9}, {"timer": 0.9}, centroid=0.9)  # every answer is wrong
    report = score_variants([wrong] * 5, [wrong] * 5, 0.97)
    for variant in ("pipeline", "kb_only", "rasa_only"):
        assert report[variant]["threshold"] is None
        assert report[variant]["coverage"] is None  # test has no in-scope query
        assert report[variant]["oos_recall"] == 1.0


@pytest.mark.parametrize(("max_intents", "per_intent", "max_oos"), [(None, None, None), (1, 2, 1)])
def test_select_slice(max_intents: int | None, per_intent: int | None, max_oos: int | None) -> None:
    data = {
        "train": [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")],
        "val": [("av", "a"), ("bv", "b")], "test": [("at", "a"), ("bt", "b")],
        "oos_train": [("o5", "oos"), ("o6", "oos")],
        "oos_val": [("o1", "oos"), ("o2", "oos")], "oos_test": [("o3", "oos"), ("o4", "oos")],
    }  # fmt: skip
    sliced = select_slice(data, max_intents=max_intents, max_train_per_intent=per_intent, max_oos=max_oos)
    if max_intents is None:
        assert sliced == data
    else:
        assert sliced["train"] == [("a1", "a"), ("a2", "a")]
        assert sliced["val"] == [("av", "a")] and sliced["test"] == [("at", "a")]
        assert sliced["oos_train"] == [("o5", "oos")]
        assert sliced["oos_val"] == [("o1", "oos")] and sliced["oos_test"] == [("o3", "oos")]
    without = {k: v for k, v in data.items() if k != "oos_train"}
    assert "oos_train" not in select_slice(without, max_oos=max_oos)
