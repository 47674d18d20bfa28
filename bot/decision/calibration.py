"""Calibration: fit the policy's bars for a public post on labelled conversations, so that the bot's posts are
right at least `target_precision` of the time there while, with a stated confidence, few turns that wanted no
answer get one (a one-sided Clopper-Pearson bound), covering as many answerable turns as possible.

Pure: candidates in (the posts a replay with every bar at its lowest made: `permissive`), policy out.
`carebot triage calibrate` replays the development conversations (bot/traffic_eval.py), fits with
`calibrate_on_traffic` and writes the policy with `save_policy`. `load_validation` reads the older validation
files of single tweets, which `carebot eval traffic` measures as one-turn conversations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.decision.policy import NEVER, CalibrationInfo, Policy, Thresholds
from bot.yaml_files import read_yaml


class CalibrationError(ValueError):
    """The validation data cannot be used for calibration."""


# ---------------------------------------------------------------- validation data


@dataclass(frozen=True)
class ValidationExample:
    text: str
    faq: str | None  # the slug of the FAQ entry that answers it; None: nothing in the FAQ does (out of scope)


def load_validation(path: Path) -> list[ValidationExample]:
    """Read a validation file: `examples:` a list of {text: ..., faq: slug or null}."""
    data = read_yaml(path, "validation file", CalibrationError)
    items: Any = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise CalibrationError(f"{path}: expected `examples:` with a list of {{text: ..., faq: slug or null}}")
    examples = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
            raise CalibrationError(f"{path}: example {number} needs a non-empty text")
        slug = item.get("faq")
        if slug is not None and not isinstance(slug, str):
            raise CalibrationError(f"{path}: example {number}: faq must be a slug or null")
        examples.append(ValidationExample(item["text"], slug))
    return examples


# ---------------------------------------------------------------- thresholds with a finite-sample bound


def leak_upper_bound(leaked: int, total: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate when `leaked` of `total` trials were hits."""
    if leaked >= total:
        return 1.0
    low, high = leaked / total, 1.0
    for _ in range(60):  # bisection: P(X <= leaked | rate) falls as the rate rises
        middle = (low + high) / 2
        if _binomial_cdf(leaked, total, middle) > 1 - confidence:
            low = middle
        else:
            high = middle
    return high


def _binomial_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k + 1)]  # fmt: skip
    top = max(terms)
    return math.exp(top) * sum(math.exp(t - top) for t in terms)


def max_leaks(total: int, min_oos_recall: float, confidence: float) -> int:
    """How many of `total` out-of-scope validation queries may be answered while the upper confidence bound on
    the share answered stays within 1 - min_oos_recall. Never fewer than none: with too few queries for the bound
    to reach that (fewer than 59 for 0.95 / 0.95), none may be answered."""
    allowed = 0
    while allowed < total and leak_upper_bound(allowed + 1, total, confidence) <= 1 - min_oos_recall:
        allowed += 1
    return allowed


@dataclass(frozen=True)
class Threshold:
    value: float  # answer when score >= value; inf: never
    allowed_leaks: int  # of the out-of-scope validation queries


def fit_threshold(
    scores: Sequence[float], correct: Sequence[bool], out_of_scope: Sequence[bool], target: float,
    min_oos_recall: float, confidence: float,
) -> Threshold:  # fmt: skip
    """The lowest threshold at which, on validation data, the answers are right at least `target` of the time and
    few enough out-of-scope queries are answered that their share is at most 1 - min_oos_recall with the given
    confidence (a one-sided Clopper-Pearson bound: with 100 out-of-scope queries and 0.95 / 0.95, one may pass)."""
    import numpy as np  # here, so that importing the decision package stays light

    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="mergesort")
    hits = np.asarray(correct, dtype=bool)[order]
    oos = np.asarray(out_of_scope, dtype=bool)[order]
    n_oos = int(oos.sum())
    allowed = max_leaks(n_oos, min_oos_recall, confidence) if n_oos else len(values)
    sorted_values = values[order]
    precision = np.cumsum(hits) / np.arange(1, len(values) + 1)
    leaks = np.cumsum(oos)
    last_of_tie = np.append(sorted_values[1:] < sorted_values[:-1], True) if len(values) else np.zeros(0, bool)
    meets = np.nonzero(last_of_tie & (precision >= target) & (leaks <= allowed))[0]
    return Threshold(float(sorted_values[meets[-1]]) if len(meets) else math.inf, allowed)


# ---------------------------------------------------------------- calibration on labelled conversations

APPROVE_TRAFFIC_TARGET = 0.8  # a draft an agent checks may be right less often


@dataclass(frozen=True)
class PostCandidate:
    """A public post the bot would make with every bar at its lowest, from a replay of labelled conversations:
    an FAQ answer (its answer score), a greeting or thank-you, or an acknowledgement (its NLU confidence)."""

    kind: str  # faq | social | ack
    intent: str | None  # the kind of message triage acted on; None: unclear
    score: float
    right: bool  # the post is what the label asks for
    wanted: bool  # faq: the label asks for an FAQ answer (maybe another entry); else: the post is right


@dataclass(frozen=True)
class TrafficCalibration:
    policy: Policy
    thresholds: dict[str, Any]  # what was fitted, on how many candidates, for the report


def _fit(candidates: Sequence[PostCandidate], target: float, min_oos_recall: float, confidence: float) -> float:
    if not candidates:
        return math.inf
    return fit_threshold(
        [c.score for c in candidates], [c.right for c in candidates], [not c.wanted for c in candidates], target,
        min_oos_recall, confidence,
    ).value  # fmt: skip


def _bar(value: float) -> Thresholds:
    """The fitted value itself: rounding it down could admit the candidate just below it."""
    return NEVER if math.isinf(value) else Thresholds(value, 0.0)


def calibrate_on_traffic(
    candidates: Sequence[PostCandidate],
    policy: Policy,
    *,
    target: float | None = None,
    min_examples: int = 30,
    min_out_of_scope: int = 20,
    min_oos_recall: float = 0.95,
    confidence: float = 0.95,
    calibrated_on: str | None = None,
) -> TrafficCalibration:
    """Fit every bar for a public post on replayed, labelled conversations: the lowest bar at which the posts are
    right at least `target` of the time and, with `confidence`, at most 1 - min_oos_recall of the turns that
    wanted no such post get one (a one-sided Clopper-Pearson bound, as for CLINC150).

    FAQ answers: one pooled bar for the kinds of message the FAQ may answer; a bar of its own for a kind with at
    least `min_examples` candidates of which at least `min_out_of_scope` wanted no answer (without those the
    bound says nothing about the answers it should not give); and a bar for unclear kinds that is never below
    the pooled one. Drafts: the lowest score at which drafts are right APPROVE_TRAFFIC_TARGET of the time.
    Social replies and acknowledgements: a bar on Rasa's confidence each; acknowledgements the policy has
    switched off (a bar of 1) stay off."""
    target = policy.target_precision if target is None else target
    faq = [c for c in candidates if c.kind == "faq"]
    clear = [c for c in faq if c.intent is not None]
    if not clear:
        raise CalibrationError("no FAQ answer candidates: the conversations hold no answerable openers")
    pooled = _fit(clear, target, min_oos_recall, confidence)
    report: dict[str, Any] = {"faq": {"candidates": len(clear), "min_score": _num_or_none(pooled)}}
    intents = dict(policy.intents)
    own: list[str] = []
    for name, rules in policy.intents.items():
        if rules.faq == "never" or rules.reply:
            continue
        group = [c for c in clear if c.intent == name]
        if len(group) >= min_examples and sum(not c.wanted for c in group) >= min_out_of_scope:
            value = _fit(group, target, min_oos_recall, confidence)
            intents[name] = replace(rules, auto=_bar(value))
            own.append(name)
            report[f"faq.{name}"] = {"candidates": len(group), "min_score": _num_or_none(value)}
        else:
            intents[name] = replace(rules, auto=None)
    unclear = [c for c in faq if c.intent is None]
    unclear_value = max(pooled, _fit(unclear, target, min_oos_recall, confidence)) if unclear else math.inf
    report["faq.unclear"] = {"candidates": len(unclear), "min_score": _num_or_none(unclear_value)}
    approve = fit_threshold(
        [c.score for c in faq], [c.right for c in faq], [False] * len(faq), APPROVE_TRAFFIC_TARGET, min_oos_recall,
        confidence,
    ).value  # fmt: skip
    approve = min(approve, pooled)
    report["approve"] = {"candidates": len(faq), "min_score": _num_or_none(approve)}
    social = [c for c in candidates if c.kind == "social"]
    acks = [c for c in candidates if c.kind == "ack"]
    social_bar = _fit(social, target, min_oos_recall, confidence)
    # Acknowledgements switched off (1.0) stay off: on real care threads Rasa's confidence saturates, and a bar
    # fitted on labelled sets acknowledged praise as a complaint. A lead who wants them sets a bar below 1.
    acknowledging = policy.acknowledge_min_confidence < 1.0
    ack_bar = _fit(acks, target, min_oos_recall, confidence) if acknowledging else math.inf
    report["social"] = {"candidates": len(social), "min_confidence": _num_or_none(social_bar)}
    report["acknowledge"] = {"candidates": len(acks), "min_confidence": _num_or_none(ack_bar)}
    if not acknowledging:
        report["acknowledge"]["switched_off"] = True
    answered = [c for c in clear if c.score >= _threshold_for(c.intent, intents, pooled)]
    info = CalibrationInfo(
        examples=len(candidates),
        in_scope=sum(c.wanted for c in faq),
        answered=len(answered),
        precision=round(sum(c.right for c in answered) / len(answered), 4) if answered else None,
        coverage=round(sum(c.right for c in answered) / max(1, sum(c.wanted for c in faq)), 4),
        own_thresholds=tuple(sorted(own)),
        calibrated_on=calibrated_on,
    )
    calibrated = replace(
        policy, version=policy.version + 1, target_precision=target, auto=_bar(pooled), approve=_bar(approve),
        unclear_auto=_bar(unclear_value), intents=intents, calibration=info,
        social_min_confidence=1.0 if math.isinf(social_bar) else social_bar,
        acknowledge_min_confidence=1.0 if math.isinf(ack_bar) else ack_bar,
    )  # fmt: skip
    return TrafficCalibration(calibrated, report)


def _threshold_for(intent: str | None, intents: dict[str, Any], pooled: float) -> float:
    rules = intents.get(intent) if intent else None
    return rules.auto.min_score if rules is not None and rules.auto is not None else pooled


def _num_or_none(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 4)


def permissive(policy: Policy) -> Policy:
    """The policy with every bar for a public post at its lowest, so that a replay shows every candidate."""
    low = Thresholds(-1.0, 0.0)
    intents = {
        name: replace(rules, auto=None) if rules.faq != "never" and not rules.reply else rules
        for name, rules in policy.intents.items()
    }
    return replace(
        policy, auto=low, approve=low, unclear_auto=low, intents=intents, social_min_confidence=0.0,
        acknowledge_min_confidence=0.0,
    )  # fmt: skip


# ---------------------------------------------------------------- refitting on the desk's labels

MIN_LABELS = 30  # a kind's bar is refitted on its labels only with at least this many


@dataclass(frozen=True)
class BarFigures:
    """What one answer bar does on a kind's labelled decisions."""

    bar: float  # answer when score >= bar; inf: never
    answered: int  # labelled decisions at or above the bar
    right: int  # of those, the ones the labels say were right
    coverage: float  # answered / labelled
    precision: float | None  # right / answered (None: nothing answered)
    lower_bound: float  # one-sided lower confidence bound of the precision (0 when nothing is answered)


@dataclass(frozen=True)
class KindRefit:
    """One row of the before/after table: a kind of message, its labels, its bar before and after."""

    kind: str
    labelled: int
    positives: int
    before: BarFigures
    after: BarFigures  # equals `before` when refused
    refused: str | None  # why the bar was kept; None: refitted


@dataclass(frozen=True)
class LabelCalibration:
    policy: Policy  # the refitted policy (version bumped) — the current one when every kind was refused
    rows: list[KindRefit]

    @property
    def changed(self) -> bool:
        return any(row.refused is None and row.after.bar != row.before.bar for row in self.rows)


def bar_figures(candidates: Sequence[PostCandidate], bar: float, confidence: float = 0.95) -> BarFigures:
    """Coverage and precision (with its one-sided Clopper-Pearson lower bound) of an answer bar on labelled
    decisions. The labels carry the answer score only, not the margin: the bar is judged on the score."""
    answered = [c for c in candidates if c.score >= bar]
    right = sum(c.right for c in answered)
    wrong = len(answered) - right
    return BarFigures(
        bar=bar, answered=len(answered), right=right,
        coverage=len(answered) / len(candidates) if candidates else 0.0,
        precision=right / len(answered) if answered else None,
        lower_bound=1.0 - leak_upper_bound(wrong, len(answered), confidence) if answered else 0.0,
    )  # fmt: skip


def calibrate_on_labels(
    candidates: Sequence[PostCandidate],
    policy: Policy,
    *,
    target: float | None = None,
    min_labels: int = MIN_LABELS,
    confidence: float = 0.95,
) -> LabelCalibration:
    """Refit the automatic-answer bar of each kind of message the FAQ may answer on the desk's labels (one
    candidate per labelled decision: its kind, its answer score, whether the labels say the entry was right; see
    bot/learning.label_candidates), with the fit `calibrate_on_traffic` uses: the lowest bar at which the answers
    are right at least `target` of the time. A labelled decision is an answer the desk considered (a wrong entry
    is an error of precision, not an out-of-scope tweet), so only the precision constrains the bar. A kind with
    fewer than `min_labels` labels keeps its bar, and the row says why; so do kinds the policy never answers from
    the FAQ. Every other setting of the policy is kept."""
    target = policy.target_precision if target is None else target
    by_kind: dict[str, list[PostCandidate]] = {}
    for candidate in candidates:
        if candidate.kind == "faq" and candidate.intent is not None:
            by_kind.setdefault(candidate.intent, []).append(candidate)
    intents = dict(policy.intents)
    rows = []
    for kind in sorted(by_kind):
        group = by_kind[kind]
        rules = policy.intent(kind)
        current = policy.auto_thresholds(kind)
        before = bar_figures(group, math.inf if current.never else current.min_score, confidence)
        refused = None
        if rules.faq == "never" or rules.reply or kind not in policy.intents:
            refused = "the policy never answers this kind from the FAQ"
        elif len(group) < min_labels:
            refused = f"too few labels: {len(group)} (at least {min_labels} are needed)"
        if refused is not None:
            rows.append(KindRefit(kind, len(group), sum(c.right for c in group), before, before, refused))
            continue
        value = _fit(group, target, 0.95, confidence)  # all wanted: no out-of-scope bound, the precision alone
        intents[kind] = replace(rules, auto=_bar(value))
        after = bar_figures(group, value, confidence)
        rows.append(KindRefit(kind, len(group), sum(c.right for c in group), before, after, None))
    if any(row.refused is None and row.after.bar != row.before.bar for row in rows):
        return LabelCalibration(replace(policy, version=policy.version + 1, intents=intents), rows)
    return LabelCalibration(policy, rows)
