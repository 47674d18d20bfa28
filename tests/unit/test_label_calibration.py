"""`carebot triage calibrate --from-history`: the answer bar of each kind refitted on the desk's labels (SQLite and
PostgreSQL), with its before/after table."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import beta
from sqlalchemy import Engine
from typer.testing import CliRunner
from web_support import emptied_postgres

from bot import cli
from bot.db import make_engine, upgrade
from bot.decision.calibration import PostCandidate, calibrate_on_labels
from bot.decision.policy import DEFAULT_POLICY_PATH, load_policy
from bot.learning import label_candidates, label_store
from bot.policy_versions import live_policy
from bot.settings import Settings
from handoff.labels import LabelledDecision

POLICY = load_policy(DEFAULT_POLICY_PATH)
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'carebot.db'}"
        upgrade(url)
    else:
        url = emptied_postgres(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _record(
    engine: Engine, clock: Clock, label: str, tweet: str, score: float | None, *, kind: str = "product_question",
    entry: int | None = 1,
) -> None:  # fmt: skip
    labels = label_store(engine, clock=clock)
    decision = LabelledDecision(
        text=f"how do I restart my hub ({tweet})", tweet_id=tweet, faq_entry_id=entry, score=score,
        kind=kind,
    )  # fmt: skip
    with engine.begin() as conn:
        labels.record(conn, label, decision, actor="ann" if label not in ("didnt_help", "thanks") else "customer")


def _pairs(candidates: list[PostCandidate]) -> list[tuple[str | None, float, bool]]:
    return sorted((c.intent, c.score, c.right) for c in candidates)


def test_each_labelled_decision_is_one_positive_or_negative(database: tuple[str, Engine]) -> None:
    _, engine = database
    clock = Clock()
    _record(engine, clock, "approved", "t1", 0.91)
    _record(engine, clock, "thanks", "t1", 0.91)  # the same decision: still one positive
    _record(engine, clock, "edited", "t2", 0.82)
    _record(engine, clock, "suggestion_sent", "t3", 0.73, kind="billing_issue")
    _record(engine, clock, "rejected", "t4", 0.64)
    _record(engine, clock, "own_reply", "t4", 0.64)  # rejected, then written from scratch: one negative
    _record(engine, clock, "own_reply", "t5", 0.55)
    _record(engine, clock, "didnt_help", "t6", 0.66)
    _record(engine, clock, "rejected", "t7", 0.58)
    _record(engine, clock, "suggestion_sent", "t7", 0.58)  # confirmed after all: the agent's confirmation wins
    _record(engine, clock, "own_reply", "t8", 0.50, entry=2)  # another entry for the same tweet is another decision
    _record(engine, clock, "approved", "t8", 0.70, entry=1)
    _record(engine, clock, "approved", "t9", None)  # no score: says nothing about a bar
    _record(engine, clock, "approved", "t10", 0.9, entry=None)
    assert _pairs(label_candidates(engine)) == [
        ("billing_issue", 0.73, True),
        ("product_question", 0.5, False), ("product_question", 0.55, False), ("product_question", 0.58, True),
        ("product_question", 0.64, False), ("product_question", 0.66, False), ("product_question", 0.7, True),
        ("product_question", 0.82, True), ("product_question", 0.91, True),
    ]  # fmt: skip
    clock.now = START + timedelta(days=3)
    _record(engine, clock, "rejected", "t11", 0.95)
    assert _pairs(label_candidates(engine, since=START + timedelta(days=1))) == [("product_question", 0.95, False)]


def _labelled_kind(engine: Engine, clock: Clock, kind: str, positives: list[float], negatives: list[float]) -> None:
    for number, score in enumerate(positives):
        _record(engine, clock, "approved", f"{kind}-p{number}", score, kind=kind)
    for number, score in enumerate(negatives):
        _record(engine, clock, "rejected", f"{kind}-n{number}", score, kind=kind)


def _lower(right: int, answered: int) -> float:
    """The one-sided 95% Clopper-Pearson lower bound, from the beta distribution."""
    return 1.0 if right == answered and answered == 0 else float(beta.ppf(0.05, right, answered - right + 1))


POSITIVES = [round(0.40 + 0.01 * i, 2) for i in range(40)]  # 0.40 … 0.79, all approved
NEGATIVES = [0.10, 0.11, 0.12, 0.13, 0.14]  # rejected


def test_the_table_agrees_with_a_hand_count_and_few_labels_keep_their_bar(database: tuple[str, Engine]) -> None:
    _, engine = database
    clock = Clock()
    _labelled_kind(engine, clock, "billing_issue", POSITIVES, NEGATIVES)
    _labelled_kind(engine, clock, "tech_support", [0.9] * 20, [0.3] * 9)  # 29 labels: too few
    _labelled_kind(engine, clock, "complaint", [0.9] * 40, [])  # never answered from the FAQ
    refit = calibrate_on_labels(label_candidates(engine), POLICY, min_labels=30)
    rows = {row.kind: row for row in refit.rows}
    assert sorted(rows) == ["billing_issue", "complaint", "tech_support"]

    billing = rows["billing_issue"]
    assert (billing.labelled, billing.positives, billing.refused) == (45, 40, None)
    current = POLICY.auto_thresholds("billing_issue").min_score  # the pooled bar, 0.5974 as shipped
    above = [s for s in POSITIVES if s >= current]
    assert billing.before.bar == current and billing.before.answered == billing.before.right == len(above)
    assert billing.before.coverage == pytest.approx(len(above) / 45)
    assert billing.before.precision == 1.0
    assert billing.before.lower_bound == pytest.approx(0.05 ** (1 / len(above)), abs=1e-6)
    # Lowest bar with precision ≥ 0.97: every positive and the negative at 0.14 is 40/41 = 0.9756; at 0.13 it is
    # 40/42 = 0.952.
    assert billing.after.bar == 0.14
    assert (billing.after.answered, billing.after.right) == (41, 40)
    assert billing.after.coverage == pytest.approx(41 / 45)
    assert billing.after.precision == pytest.approx(40 / 41)
    assert billing.after.lower_bound == pytest.approx(_lower(40, 41), abs=1e-6)

    tech = rows["tech_support"]
    assert tech.refused is not None and "too few labels: 29" in tech.refused and tech.after == tech.before
    assert rows["complaint"].refused == "the policy never answers this kind from the FAQ"

    policy = refit.policy
    assert policy.version == POLICY.version + 1
    assert policy.auto_thresholds("billing_issue").min_score == 0.14
    assert policy.auto_thresholds("tech_support") == POLICY.auto_thresholds("tech_support")
    assert policy.intent("complaint") == POLICY.intent("complaint")
    assert (policy.auto, policy.approve, policy.unclear_auto) == (POLICY.auto, POLICY.approve, POLICY.unclear_auto)


def test_a_kind_whose_labels_reach_no_target_is_never_answered_automatically() -> None:
    candidates = [PostCandidate("faq", "pricing_offer", 0.9 - 0.01 * i, i % 2 == 1, True) for i in range(40)]
    refit = calibrate_on_labels(candidates, POLICY)
    assert refit.rows[0].refused is None and math.isinf(refit.rows[0].after.bar)
    assert refit.policy.auto_thresholds("pricing_offer").never


def test_only_too_few_labels_leave_the_policy_as_it_is() -> None:
    candidates = [PostCandidate("faq", "pricing_offer", 0.9, True, True) for _ in range(5)]
    refit = calibrate_on_labels(candidates, POLICY)
    assert not refit.changed and refit.policy is POLICY


def _cli(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(cli.STATE, "_settings", Settings(data_dir=tmp_path / "var", database_url=url))
    return CliRunner().invoke(cli.triage_app, ["calibrate", "--from-history", *args])


def test_the_command_prints_the_table_and_applies_a_new_policy_version_only_without_dry_run(
    database: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = database
    policy_file = tmp_path / "policy.yml"
    policy_file.write_bytes(DEFAULT_POLICY_PATH.read_bytes())
    result = _cli(url, tmp_path, monkeypatch, "--policy", str(policy_file), "--dry-run")
    assert result.exit_code == 1 and "No labelled decisions" in result.output

    _labelled_kind(engine, Clock(), "billing_issue", POSITIVES, NEGATIVES)
    _labelled_kind(engine, Clock(), "tech_support", [0.9] * 3, [])
    result = _cli(url, tmp_path, monkeypatch, "--policy", str(policy_file), "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    billing = next(line for line in lines if line.startswith("billing_issue"))
    assert "   45    40 |" in billing and "0.1400  0.911  0.976" in billing and "(40/41)" in billing
    tech = next(line for line in lines if line.startswith("tech_support"))
    assert "kept: too few labels: 3" in tech
    assert "Dry run: nothing written." in result.output
    assert policy_file.read_bytes() == DEFAULT_POLICY_PATH.read_bytes()

    result = _cli(url, tmp_path, monkeypatch, "--policy", str(policy_file))
    assert result.exit_code == 0, result.output
    assert "Applied as policy version 2" in result.output  # the file, version 1, stays the fallback
    written = live_policy(url, policy_file)
    assert written.version == POLICY.version + 1 and written.auto_thresholds("billing_issue").min_score == 0.14
    assert written.auto_thresholds("tech_support") == POLICY.auto_thresholds("tech_support")

    result = _cli(url, tmp_path, monkeypatch, "--policy", str(policy_file), "--since", "2030-01-01")
    assert result.exit_code == 1 and "No labelled decisions" in result.output
