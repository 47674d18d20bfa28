"""Calibration: fit the policy's FAQ thresholds on validation data so that automatic answers are right at least
`target_precision` of the time there, covering as many in-scope messages as possible.

`calibrate` is pure (records in, policy out). `carebot triage calibrate` runs the validation tweets through the
NLU and the FAQ search (`records_from_examples`), calibrates, and writes the policy with `save_policy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.decision.policy import NEVER, CalibrationInfo, Policy, Thresholds
from bot.yaml_files import read_yaml

if TYPE_CHECKING:
    from bot.nlu.client import NluResult
    from knowledge_base.search import SearchResult

# Margins tried as thresholds; score thresholds come from the data itself.
MARGIN_GRID: tuple[float, ...] = tuple(round(0.01 * step, 2) for step in range(21))  # 0.00 … 0.20
MIN_EXAMPLES = 30  # an intent needs this many validation records for thresholds of its own
APPROVE_TARGET = 0.80  # drafts are checked by an agent: right 4 times in 5 is worth their time


class CalibrationError(ValueError):
    """The validation data cannot be used for calibration."""


@dataclass(frozen=True)
class CalibrationRecord:
    """One validation message as the pipeline saw it, and whether the FAQ's best answer was right."""

    intent: str | None  # the NLU intent; None when there was no parse or Rasa's fallback fired
    nlu_confidence: float
    top_score: float  # the best FAQ hit's score (-1 when there was no hit)
    margin: float
    correct: bool  # the best FAQ entry is the right answer
    in_scope: bool  # the FAQ has an answer for it at all


@dataclass(frozen=True)
class Fit:
    """Thresholds fitted on some records, and what they achieve there."""

    thresholds: Thresholds
    examples: int
    in_scope: int
    answered: int
    correct: int
    answered_in_scope: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def coverage(self) -> float:
        return self.answered_in_scope / self.in_scope if self.in_scope else 0.0


@dataclass(frozen=True)
class CalibrationResult:
    policy: Policy  # the input policy with the fitted thresholds, the next version, and CalibrationInfo
    fits: dict[str, Fit]  # "*" for the global thresholds, else per intent
    approve_fit: Fit


def _nice(low_admitted: float, next_lower: float | None) -> float:
    """A short number t that admits exactly the same records: next_lower < t <= low_admitted."""
    for digits in (2, 3, 4):
        scale = 10**digits
        candidate = math.floor(low_admitted * scale) / scale
        if candidate <= low_admitted and (next_lower is None or candidate > next_lower):
            return candidate
    return low_admitted


def fit_thresholds(
    records: Sequence[CalibrationRecord], target: float, *, margins: Sequence[float] = MARGIN_GRID
) -> Fit:
    """The (min_score, min_margin) that answers the most in-scope records with precision >= target.

    Ties go to the higher precision, then to the stricter thresholds. When no threshold reaches the target,
    the thresholds are NEVER (nothing is answered).
    """
    in_scope = sum(record.in_scope for record in records)
    best = Fit(NEVER, len(records), in_scope, 0, 0, 0)
    best_key: tuple[float, ...] = (0, -1.0, -math.inf, -math.inf)
    for margin in margins:
        eligible = sorted((r for r in records if r.margin >= margin), key=lambda r: -r.top_score)
        answered = correct = answered_in_scope = 0
        index = 0
        while index < len(eligible):
            score = eligible[index].top_score
            while index < len(eligible) and eligible[index].top_score == score:  # ties are admitted together
                answered += 1
                correct += eligible[index].correct
                answered_in_scope += eligible[index].in_scope
                index += 1
            precision = correct / answered
            key = (answered_in_scope, precision, margin, score)
            if precision >= target and key > best_key:
                next_lower = eligible[index].top_score if index < len(eligible) else None
                thresholds = Thresholds(_nice(score, next_lower), margin)
                best = Fit(thresholds, len(records), in_scope, answered, correct, answered_in_scope)
                best_key = key
    return best


def _clear_intent(record: CalibrationRecord, policy: Policy) -> str | None:
    """The intent triage acts on (None when the kind of message is unclear), as bot.decision.triage.decide reads it."""
    if record.intent and record.nlu_confidence >= policy.nlu_min_confidence:
        return record.intent
    return None


def answers_automatically(record: CalibrationRecord, policy: Policy) -> bool:
    """Whether triage would post the FAQ answer on its own (a fresh tweet addressed to us, no personal data)."""
    intent = _clear_intent(record, policy)
    if intent is None:
        return False
    rules = policy.intent(intent)
    return rules.faq == "auto" and rules.reply is None and policy.auto_thresholds(intent).admits(
        record.top_score, record.margin
    )


def evaluate(records: Sequence[CalibrationRecord], policy: Policy) -> Fit:
    """What the policy's automatic answers achieve on these records."""
    answered = [record for record in records if answers_automatically(record, policy)]
    return Fit(
        thresholds=policy.auto,
        examples=len(records),
        in_scope=sum(record.in_scope for record in records),
        answered=len(answered),
        correct=sum(record.correct for record in answered),
        answered_in_scope=sum(record.in_scope for record in answered),
    )


def _stricter(a: Thresholds, b: Thresholds) -> Thresholds:
    return Thresholds(max(a.min_score, b.min_score), max(a.min_margin, b.min_margin))


def calibrate(
    records: Sequence[CalibrationRecord],
    policy: Policy,
    *,
    target: float | None = None,
    approve_target: float = APPROVE_TARGET,
    min_examples: int = MIN_EXAMPLES,
    calibrated_on: str | None = None,
) -> CalibrationResult:
    """Fit the policy's thresholds on validation records; everything else in the policy stays as it is.

    Intents the policy lets the bot answer automatically get thresholds of their own when they have at least
    `min_examples` records; the others share the global thresholds, fitted on their records pooled. A hand-set
    threshold of an intent without enough records is kept where it is stricter. The automatic answers of the
    result are right at least `target` of the time on the records (or nothing is answered).
    """
    target = policy.target_precision if target is None else target
    if not records:
        raise CalibrationError("there are no validation records to calibrate on")
    if not 0.5 <= target <= 1.0:
        raise CalibrationError(f"the target precision must be between 0.5 and 1, not {target}")
    auto_intents = {name for name, rules in policy.intents.items() if rules.faq == "auto" and rules.reply is None}
    by_intent: dict[str, list[CalibrationRecord]] = {}
    for record in records:
        intent = _clear_intent(record, policy)
        if intent in auto_intents:
            by_intent.setdefault(intent, []).append(record)

    fits = {name: fit_thresholds(group, target) for name, group in by_intent.items() if len(group) >= min_examples}
    floors = {
        name: rules.auto
        for name, rules in policy.intents.items()
        if name in auto_intents and name not in fits and rules.auto is not None
    }
    # Records the global thresholds decide, less those a stricter hand-set threshold already refuses.
    rest = [
        record
        for name, group in by_intent.items()
        if name not in fits
        for record in group
        if name not in floors or floors[name].admits(record.top_score, record.margin)
    ]
    pool = rest if len(rest) >= min_examples else [r for group in by_intent.values() for r in group]
    global_fit = fit_thresholds(pool, target)

    def build(global_thresholds: Thresholds) -> Policy:
        intents = {}
        for name, rules in policy.intents.items():
            if name in fits:
                rules = replace(rules, auto=fits[name].thresholds)
            elif name in floors:
                rules = replace(rules, auto=_stricter(floors[name], global_thresholds))
            elif name in auto_intents:
                rules = replace(rules, auto=None)
            intents[name] = rules
        return replace(policy, auto=global_thresholds, intents=intents)

    calibrated = build(global_fit.thresholds)
    if rest and (evaluate(records, calibrated).precision or 1.0) < target:
        global_fit = fit_thresholds(rest, target)  # the small pool alone, so the whole stays on target
        calibrated = build(global_fit.thresholds)

    # Drafts are offered for unclear messages too, and for every intent the FAQ may answer at all.
    approve_pool = [
        record
        for record in records
        if _clear_intent(record, policy) is None or policy.intent(_clear_intent(record, policy)).faq != "never"
    ]
    approve_fit = fit_thresholds(approve_pool, approve_target)
    achieved = evaluate(records, calibrated)
    info = CalibrationInfo(
        examples=achieved.examples,
        in_scope=achieved.in_scope,
        answered=achieved.answered,
        precision=None if achieved.precision is None else round(achieved.precision, 4),
        coverage=round(achieved.coverage, 4),
        own_thresholds=tuple(sorted(fits)),
        calibrated_on=calibrated_on,
    )
    calibrated = replace(
        calibrated,
        version=policy.version + 1,
        target_precision=target,
        approve=approve_fit.thresholds,
        calibration=info,
    )
    return CalibrationResult(calibrated, {"*": global_fit, **fits}, approve_fit)


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


def record_for(nlu: NluResult | None, search: SearchResult | None, expected: str | None) -> CalibrationRecord:
    """The calibration record of one validation message, from its NLU parse and FAQ search."""
    top = search.top if search else None
    return CalibrationRecord(
        intent=None if nlu is None or nlu.is_fallback else nlu.intent,
        nlu_confidence=0.0 if nlu is None else nlu.confidence,
        top_score=top.score if top else -1.0,
        margin=search.margin if search and top else 0.0,
        correct=top is not None and expected is not None and top.slug == expected,
        in_scope=expected is not None,
    )


def records_from_examples(
    examples: Iterable[ValidationExample],
    parse: Callable[[str], NluResult | None],
    search: Callable[[str], SearchResult | None],
) -> list[CalibrationRecord]:
    """Run each example through the NLU (`parse`, None when it gives no parse) and the FAQ search."""
    return [record_for(parse(example.text), search(example.text), example.faq) for example in examples]


def report_lines(result: CalibrationResult) -> list[str]:
    """What `carebot triage calibrate` prints."""
    info = result.policy.calibration
    assert info is not None
    precision = "n/a" if info.precision is None else f"{info.precision:.3f}"
    lines = [
        f"policy version {result.policy.version}: {info.examples} validation messages, {info.in_scope} in scope",
        f"automatic answers: {info.answered}, precision {precision} (target {result.policy.target_precision}), "
        f"coverage {info.coverage:.3f} of in-scope messages",
        f"global thresholds: {result.policy.auto.describe()}; drafts: {result.policy.approve.describe()}",
    ]
    for name, fit in sorted(result.fits.items()):
        if name != "*":
            lines.append(f"  {name}: {fit.thresholds.describe()} ({fit.examples} examples)")
    return lines


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
    return NEVER if math.isinf(value) else Thresholds(round(math.floor(value * 1000) / 1000, 3), 0.0)


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
    Social replies and acknowledgements: a bar on Rasa's confidence each."""
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
    ack_bar = _fit(acks, target, min_oos_recall, confidence)
    report["social"] = {"candidates": len(social), "min_confidence": _num_or_none(social_bar)}
    report["acknowledge"] = {"candidates": len(acks), "min_confidence": _num_or_none(ack_bar)}
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
        social_min_confidence=1.0 if math.isinf(social_bar) else round(math.floor(social_bar * 1000) / 1000, 3),
        acknowledge_min_confidence=1.0 if math.isinf(ack_bar) else round(math.floor(ack_bar * 1000) / 1000, 3),
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
