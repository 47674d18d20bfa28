"""Calibration on synthetic validation data: the fitted thresholds are optimal, meet the target precision,
are per intent where the data allows, and keep the rest of the policy."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.decision.calibration import (
    MARGIN_GRID,
    CalibrationError,
    CalibrationRecord,
    ValidationExample,
    answers_automatically,
    calibrate,
    evaluate,
    fit_thresholds,
    load_validation,
    record_for,
    records_from_examples,
    report_lines,
)
from bot.decision.policy import NEVER, Policy, load_policy, save_policy
from bot.decision.triage import Context, FaqEntry, decide
from bot.nlu.client import FALLBACK_INTENT, IntentScore, NluResult
from knowledge_base.search import Hit, SearchResult

POLICY = load_policy(Path(__file__).resolve().parents[1] / "data" / "policy.yml")  # fixed, hand-set
TARGET = 0.97


def rec(
    score: float,
    correct: bool = True,
    *,
    margin: float = 0.2,
    in_scope: bool = True,
    intent: str | None = "product_question",
    confidence: float = 0.9,
) -> CalibrationRecord:
    return CalibrationRecord(intent, confidence, score, margin, correct and in_scope, in_scope)


def synthetic(intent: str, n: int, wrong_below: float, seed: int, *, oos: int = 0) -> list[CalibrationRecord]:
    """n in-scope records whose FAQ answer is right above `wrong_below` and wrong under it, plus out-of-scope ones."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        score = round(rng.uniform(0.3, 1.0), 4)
        records.append(rec(score, score >= wrong_below, margin=round(rng.uniform(0, 0.3), 3), intent=intent))
    for _ in range(oos):
        records.append(rec(round(rng.uniform(0.2, 0.7), 4), False, in_scope=False, intent=intent))
    return records


def brute_force_best(records: list[CalibrationRecord], target: float) -> int:
    """The most in-scope records any (score, margin) threshold answers at precision >= target."""
    best = 0
    for score in {r.top_score for r in records}:
        for margin in MARGIN_GRID:
            answered = [r for r in records if r.top_score >= score and r.margin >= margin]
            if answered and sum(r.correct for r in answered) / len(answered) >= target:
                best = max(best, sum(r.in_scope for r in answered))
    return best


# ---------------------------------------------------------------- fit_thresholds


def test_fit_finds_the_lowest_threshold_that_meets_the_target() -> None:
    right = [rec(0.9 - 0.01 * i) for i in range(40)]  # 0.90 down to 0.51
    records = right + [rec(0.50, False), rec(0.45, False), rec(0.35, False)]
    fit = fit_thresholds(records, 0.97)
    assert fit.thresholds.min_score == 0.5  # one wrong answer in 41 is 97.6% right; two in 42 would be 95.2%
    assert fit.thresholds.min_margin == 0.2  # the strictest margin that still answers them all
    assert (fit.answered, fit.correct, fit.coverage) == (41, 40, 41 / 43)
    strict = fit_thresholds(records, 0.99)
    assert 0.5 < strict.thresholds.min_score <= 0.51  # every right answer and no wrong one
    assert (strict.answered, strict.precision) == (40, 1.0)


def test_fit_accepts_some_wrong_answers_up_to_the_target() -> None:
    right = [rec(0.99 - 0.001 * i) for i in range(60)]  # 0.990 down to 0.931
    records = [*right, rec(0.95, False), rec(0.5, False), rec(0.5, False), rec(0.4)]
    fit = fit_thresholds(records, 0.97)
    assert fit.answered == 61 and fit.correct == 60  # 98.4% right; down to 0.4 it would be 61 in 64, 95.3%
    assert fit.thresholds.min_score == 0.93  # a short number that admits exactly the same answers as 0.931


def test_out_of_scope_answers_count_as_wrong() -> None:
    records = [rec(0.9)] * 10 + [rec(0.95, in_scope=False)]  # the out-of-scope message scores highest
    fit = fit_thresholds(records, 0.95)
    assert fit.answered == 0 and fit.in_scope == 10  # 10 right in 11 is 90.9%: nothing may be answered
    assert fit_thresholds([rec(0.9)] * 10 + [rec(0.95)], 0.95).answered == 11


def test_margin_thresholds_separate_what_scores_cannot() -> None:
    right = [rec(0.9, margin=0.15) for _ in range(30)]
    ambiguous = [rec(0.9, False, margin=0.01) for _ in range(10)]
    fit = fit_thresholds(right + ambiguous, TARGET)
    assert fit.answered == 30 and fit.precision == 1.0
    assert 0.01 < fit.thresholds.min_margin <= 0.15


def test_no_threshold_reaches_the_target() -> None:
    fit = fit_thresholds([rec(0.9, False), rec(0.8), rec(0.7, False)], TARGET)
    assert fit.thresholds == NEVER and fit.answered == 0 and fit.precision is None and fit.coverage == 0


record_lists = st.lists(
    st.builds(
        rec,
        st.sampled_from([0.3, 0.5, 0.6, 0.61, 0.7, 0.8, 0.85, 0.9, 0.99]),
        st.booleans(),
        margin=st.sampled_from([0.0, 0.005, 0.02, 0.05, 0.1, 0.3]),
        in_scope=st.booleans(),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(records=record_lists, target=st.sampled_from([0.5, 0.8, 0.97, 1.0]))
def test_fit_is_optimal_and_its_thresholds_admit_exactly_what_it_counted(
    records: list[CalibrationRecord], target: float
) -> None:
    fit = fit_thresholds(records, target)
    assert fit.answered_in_scope == brute_force_best(records, target)
    admitted = [r for r in records if fit.thresholds.admits(r.top_score, r.margin)]
    assert (len(admitted), sum(r.correct for r in admitted)) == (fit.answered, fit.correct)
    if fit.answered:
        assert fit.correct / fit.answered >= target
        assert len(repr(fit.thresholds.min_score)) <= 6 or fit.thresholds.min_score in {r.top_score for r in records}


# ---------------------------------------------------------------- calibrate


def test_intents_with_enough_data_get_their_own_thresholds() -> None:
    easy = synthetic("product_question", 300, wrong_below=0.5, seed=1, oos=40)
    hard = synthetic("pricing_offer", 300, wrong_below=0.85, seed=2, oos=40)
    result = calibrate(easy + hard, POLICY, calibrated_on="2025-02-01")
    policy = result.policy
    own_easy, own_hard = policy.auto_thresholds("product_question"), policy.auto_thresholds("pricing_offer")
    assert own_easy.min_score < 0.7 < own_hard.min_score
    assert policy.calibration is not None
    assert policy.calibration.own_thresholds == ("pricing_offer", "product_question")
    # Per-intent thresholds answer more than one global threshold could, at the same precision.
    one_threshold = fit_thresholds(easy + hard, TARGET)
    achieved = evaluate(easy + hard, policy)
    assert achieved.precision is not None and achieved.precision >= TARGET
    assert achieved.answered_in_scope > one_threshold.answered_in_scope


def test_a_small_intent_cannot_spend_the_error_budget_of_a_large_one() -> None:
    # product_question uses its whole budget (100 right, 3 wrong: 97.1%). The pooled global thresholds would
    # also answer pricing_offer's 2 wrong answers (102 in 105 of the pool), which together miss the target.
    large = [rec(0.9 - 0.003 * i) for i in range(100)] + [rec(0.59, False)] * 3
    small = [rec(0.95, False, intent="pricing_offer")] * 2
    policy = calibrate(large + small, POLICY, min_examples=30).policy
    assert not any(answers_automatically(record, policy) for record in small)
    achieved = evaluate(large + small, policy)
    assert (achieved.answered, achieved.correct) == (103, 100)


def test_intents_without_enough_data_share_the_global_thresholds() -> None:
    records = synthetic("product_question", 20, 0.6, seed=3) + synthetic("pricing_offer", 20, 0.6, seed=4)
    result = calibrate(records, POLICY, min_examples=30)
    policy = result.policy
    assert policy.intents["product_question"].auto is None and policy.intents["pricing_offer"].auto is None
    assert policy.calibration is not None and policy.calibration.own_thresholds == ()
    assert result.fits["*"].examples == 40


def test_a_stricter_hand_set_threshold_survives_when_its_intent_has_too_little_data() -> None:
    records = synthetic("product_question", 200, 0.5, seed=5) + synthetic("moving_house", 10, 0.5, seed=6)
    policy = calibrate(records, POLICY).policy
    assert policy.auto.min_score < 0.6
    own = policy.auto_thresholds("moving_house")
    assert own.min_score >= POLICY.auto_thresholds("moving_house").min_score
    assert own.min_margin >= POLICY.auto_thresholds("moving_house").min_margin


def test_intents_the_policy_keeps_from_the_bot_are_never_answered() -> None:
    perfect = [rec(0.99, intent=intent) for intent in ("complaint", "billing_issue", "thanks") for _ in range(50)]
    unclear = [rec(0.99, intent=None) for _ in range(50)] + [rec(0.99, confidence=0.2) for _ in range(50)]
    records = perfect + unclear + synthetic("product_question", 100, 0.5, seed=7)
    policy = calibrate(records, POLICY).policy
    assert not any(answers_automatically(record, policy) for record in perfect + unclear)
    assert "complaint" not in policy.calibration.own_thresholds  # type: ignore[union-attr]


def test_calibration_keeps_the_rules_bumps_the_version_and_saves(tmp_path: Path) -> None:
    records = synthetic("product_question", 100, 0.6, seed=8, oos=20)
    result = calibrate(records, POLICY, calibrated_on="2025-02-01")
    policy = result.policy
    assert policy.version == POLICY.version + 1
    assert policy.priority == POLICY.priority and policy.skill_areas == POLICY.skill_areas
    assert {name: (rules.faq, rules.reply, rules.acknowledge, rules.priority, rules.skill)
            for name, rules in policy.intents.items()} == {
        name: (rules.faq, rules.reply, rules.acknowledge, rules.priority, rules.skill)
        for name, rules in POLICY.intents.items()
    }  # fmt: skip
    info = policy.calibration
    assert info is not None
    assert (info.examples, info.in_scope, info.calibrated_on) == (120, 100, "2025-02-01")
    assert info.precision is not None and info.precision >= TARGET and 0 < info.coverage <= 1
    path = tmp_path / "policy.yml"
    save_policy(policy, path)
    assert load_policy(path) == policy
    assert any("precision" in line for line in report_lines(result))


def test_draft_thresholds_are_fitted_to_the_lower_approve_target() -> None:
    records = synthetic("product_question", 300, 0.7, seed=9, oos=60)
    result = calibrate(records, POLICY, approve_target=0.8)
    assert result.policy.approve.min_score <= result.policy.auto.min_score
    assert result.approve_fit.precision is not None and result.approve_fit.precision >= 0.8


def test_an_explicit_target_is_used_and_recorded() -> None:
    records = synthetic("product_question", 200, 0.6, seed=10, oos=50)
    loose = calibrate(records, POLICY, target=0.9).policy
    strict = calibrate(records, POLICY, target=0.99).policy
    assert loose.target_precision == 0.9 and strict.target_precision == 0.99
    assert loose.auto_thresholds("product_question").min_score <= strict.auto_thresholds("product_question").min_score


@pytest.mark.parametrize(("records", "target", "message"), [([], None, "no validation"), ([rec(0.9)], 0.2, "target")])
def test_unusable_input_is_refused(records: list[CalibrationRecord], target: float | None, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        calibrate(records, POLICY, target=target)


intents = st.sampled_from(["product_question", "pricing_offer", "tech_support", "moving_house", "complaint", None])


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(
        st.builds(
            rec,
            st.floats(0, 1),
            st.booleans(),
            margin=st.floats(0, 0.3),
            in_scope=st.booleans(),
            intent=intents,
            confidence=st.floats(0, 1),
        ),
        min_size=1,
        max_size=150,
    ),
    min_examples=st.sampled_from([5, 30]),
)
def test_the_calibrated_policy_meets_the_target_on_its_validation_data(
    records: list[CalibrationRecord], min_examples: int
) -> None:
    policy: Policy = calibrate(records, POLICY, min_examples=min_examples).policy
    achieved = evaluate(records, policy)
    assert achieved.answered == 0 or (achieved.precision or 0) >= TARGET
    assert policy.calibration is not None and policy.calibration.answered == achieved.answered


@settings(max_examples=300, deadline=None)
@given(
    intent=st.sampled_from([*POLICY.intents, None]),
    confidence=st.floats(0, 1),
    score=st.floats(-1, 1),
    margin=st.floats(0, 1),
)
def test_calibration_simulates_exactly_what_triage_decides(
    intent: str | None, confidence: float, score: float, margin: float
) -> None:
    # Thresholds fitted on a simulation that differs from triage would not deliver the target precision.
    record = rec(score, margin=margin, intent=intent, confidence=confidence)
    parse = None if intent is None else _parse(intent, confidence)
    hits = SearchResult([Hit(1, "entry", score, "q"), Hit(2, "other", score - margin, "q")], margin, 1)
    decision = decide(parse, hits, Context(), POLICY, faq={1: FaqEntry(1, "entry", "An answer.")})
    assert (decision.band == "auto" and decision.reply == "faq_answer") == answers_automatically(record, POLICY)


# ---------------------------------------------------------------- validation data


def _parse(intent: str, confidence: float, fallback: bool = False) -> NluResult:
    name = FALLBACK_INTENT if fallback else intent
    return NluResult("t", name, confidence, (IntentScore(intent, confidence),), ())


def test_records_from_examples_with_fake_nlu_and_search() -> None:
    hits = SearchResult([Hit(1, "restart-router", 0.9, "q"), Hit(2, "other", 0.7, "q")], 0.2, 3)
    parses = {"a": _parse("tech_support", 0.9), "b": None, "c": _parse("tech_support", 0.4, fallback=True)}
    searches = {"a": hits, "b": hits, "c": None}
    examples = [ValidationExample("a", "restart-router"), ValidationExample("b", "other"), ValidationExample("c", None)]
    a, b, c = records_from_examples(examples, parses.__getitem__, searches.__getitem__)
    assert a == CalibrationRecord("tech_support", 0.9, 0.9, 0.2, True, True)
    assert (b.intent, b.nlu_confidence, b.correct, b.in_scope) == (None, 0.0, False, True)
    assert (c.intent, c.top_score, c.correct, c.in_scope) == (None, -1.0, False, False)
    assert record_for(None, SearchResult([], 0.0, 1), "x").top_score == -1.0


def test_load_validation(tmp_path: Path) -> None:
    path = tmp_path / "validation.yml"
    path.write_text("examples:\n  - {text: 'reboot hub?', faq: restart-router}\n  - {text: 'weather?', faq: null}\n")
    expected = [ValidationExample("reboot hub?", "restart-router"), ValidationExample("weather?", None)]
    assert load_validation(path) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("examples: [", "not valid YAML"),
        ("- text: hi", "expected `examples:`"),
        ("examples: []", "expected `examples:`"),
        ("examples:\n  - {text: '  '}", "example 1 needs a non-empty text"),
        ("examples:\n  - {text: hi, faq: 3}", "example 1: faq must be a slug"),
    ],
)
def test_load_validation_refuses_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "validation.yml"
    path.write_text(content)
    with pytest.raises(CalibrationError, match=message):
        load_validation(path)
    with pytest.raises(CalibrationError, match="cannot read"):
        load_validation(tmp_path / "missing.yml")


def test_replace_keeps_the_policy_frozen() -> None:
    with pytest.raises(AttributeError):
        POLICY.version = 2  # type: ignore[misc]
    assert replace(POLICY).intents == POLICY.intents
