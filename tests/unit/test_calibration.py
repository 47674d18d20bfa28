"""Calibration on labelled conversations: every bar for a public post is the lowest at which the posts are right
often enough and, with 95% confidence, few turns that wanted no answer get one; and the validation file reader."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from bot.decision.calibration import (
    CalibrationError,
    PostCandidate,
    ValidationExample,
    calibrate_on_traffic,
    load_validation,
    permissive,
)
from bot.decision.policy import load_policy, policy_from_dict, render_policy

POLICY = load_policy(Path(__file__).resolve().parents[1] / "data" / "policy.yml")  # fixed, hand-set


def faq(
    score: float, *, right: bool = True, wanted: bool = True, intent: str | None = "product_question"
) -> PostCandidate:
    return PostCandidate("faq", intent, score, right, wanted)


def right_answers(n: int, low: float = 0.6, high: float = 0.99) -> list[PostCandidate]:
    return [faq(low + (high - low) * i / max(1, n - 1)) for i in range(n)]


def test_the_pooled_bar_sits_just_above_the_best_scoring_unwanted_answer() -> None:
    candidates = right_answers(100) + [faq(0.8, right=False, wanted=False)] + [faq(0.3, right=False, wanted=False)] * 80
    fitted = calibrate_on_traffic(candidates, POLICY)
    # 81 turns wanted no answer: the 95% bound allows none of them to be answered, so the bar passes 0.8.
    assert 0.8 < fitted.policy.auto.min_score <= 0.81
    assert not any(c.score >= fitted.policy.auto.min_score for c in candidates if not c.wanted)
    assert fitted.thresholds["faq"]["candidates"] == 181


def test_with_enough_unwanted_turns_one_may_be_answered() -> None:
    unwanted = [faq(0.3, right=False, wanted=False)] * 200
    candidates = right_answers(100) + [faq(0.8, right=False, wanted=False)] + unwanted
    # With 201 unwanted turns, one answered keeps the bound under 5%; precision 0.99 stays above 0.97.
    assert calibrate_on_traffic(candidates, POLICY).policy.auto.min_score <= 0.6


def test_a_wrong_entry_costs_precision_but_is_no_leak() -> None:
    wrong_entry = [faq(0.95, right=False, wanted=True)] * 4  # answerable, but with another entry
    fitted = calibrate_on_traffic(right_answers(100) + wrong_entry + [faq(0.2, right=False, wanted=False)] * 80,
                                  POLICY)  # fmt: skip
    bar = fitted.policy.auto.min_score
    admitted = [c for c in right_answers(100) + wrong_entry if c.score >= bar]
    assert sum(c.right for c in admitted) / len(admitted) >= 0.97
    assert bar > 0.95  # below it the four wrong entries at 0.95 weigh too much


def test_unclear_kinds_never_get_a_lower_bar_than_the_pooled_one() -> None:
    candidates = right_answers(60) + [faq(0.7, right=False, wanted=False)] + [faq(0.1, wanted=False, right=False)] * 60
    candidates += [faq(0.2, intent=None)] * 40
    fitted = calibrate_on_traffic(candidates, POLICY)
    assert fitted.policy.unclear_auto.min_score >= fitted.policy.auto.min_score


def test_a_kind_gets_its_own_bar_only_with_enough_turns_that_wanted_no_answer() -> None:
    pricing = [faq(0.4 + i / 100, intent="pricing_offer") for i in range(40)]
    few_unwanted = calibrate_on_traffic(right_answers(60) + pricing + [faq(0.35, intent="pricing_offer", right=False,
                                        wanted=False)] * 5, POLICY)  # fmt: skip
    assert few_unwanted.policy.intents["pricing_offer"].auto is None
    many = pricing + [faq(0.35, intent="pricing_offer", right=False, wanted=False)] * 60
    own = calibrate_on_traffic(right_answers(60) + many, POLICY)
    assert own.policy.intents["pricing_offer"].auto is not None
    assert "pricing_offer" in (own.policy.calibration.own_thresholds if own.policy.calibration else ())


def test_social_and_acknowledgement_bars_come_from_their_own_posts() -> None:
    social = [PostCandidate("social", "thanks", 0.9 + i / 1000, True, True) for i in range(50)]
    social.append(PostCandidate("social", "thanks", 0.92, False, False))  # sarcasm read as thanks
    acks = [PostCandidate("ack", "complaint", 0.99, False, False)]  # every acknowledgement was wrong
    fitted = calibrate_on_traffic(right_answers(50) + social + acks, POLICY)
    assert 0.92 < fitted.policy.social_min_confidence <= 0.921
    assert fitted.policy.acknowledge_min_confidence == 1.0  # never
    assert fitted.thresholds["acknowledge"]["min_confidence"] is None


def test_acknowledgements_switched_off_stay_off() -> None:
    acks = [PostCandidate("ack", "complaint", 0.99 + i / 10000, True, True) for i in range(50)]  # all right
    fitted_on = calibrate_on_traffic(right_answers(50) + acks, POLICY)
    assert fitted_on.policy.acknowledge_min_confidence < 1.0
    off = calibrate_on_traffic(right_answers(50) + acks, replace(POLICY, acknowledge_min_confidence=1.0))
    assert off.policy.acknowledge_min_confidence == 1.0
    assert off.thresholds["acknowledge"] == {"candidates": 50, "min_confidence": None, "switched_off": True}


def test_the_result_is_a_policy_that_writes_and_reads_back() -> None:
    fitted = calibrate_on_traffic(right_answers(80) + [faq(0.1, right=False, wanted=False)] * 80, POLICY,
                                  calibrated_on="dev.jsonl")  # fmt: skip
    assert fitted.policy.version == POLICY.version + 1 and fitted.policy.calibration is not None
    assert fitted.policy.calibration.coverage == 1.0 and fitted.policy.calibration.precision == 1.0
    import yaml

    assert policy_from_dict(yaml.safe_load(render_policy(fitted.policy))) == fitted.policy


def test_no_faq_candidates_is_refused() -> None:
    with pytest.raises(CalibrationError, match="no FAQ answer candidates"):
        calibrate_on_traffic([PostCandidate("social", "thanks", 0.9, True, True)], POLICY)


def test_permissive_lowers_every_bar_and_keeps_the_rules() -> None:
    low = permissive(POLICY)
    assert low.auto.min_score < 0 and low.unclear_auto.min_score < 0 and low.approve.min_score < 0
    assert low.social_min_confidence == 0.0 and low.acknowledge_min_confidence == 0.0
    assert all(rules.auto is None for rules in low.intents.values() if rules.faq != "never" and not rules.reply)
    assert {name: rules.faq for name, rules in low.intents.items()} == {
        name: rules.faq for name, rules in POLICY.intents.items()
    }
    assert not math.isinf(low.auto.min_score)


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
