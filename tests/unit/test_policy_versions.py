"""The triage policy's versions in the database (SQLite and PostgreSQL): the policy file while there are none, an
apply or a rollback each a new audited version, the newest live for a new Desk, and the diff of two versions'
bars; `carebot triage calibrate --from-history` applies its refit and `carebot triage policy list|diff|rollback`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner
from web_support import emptied_postgres

import bot.desk
from bot import cli
from bot.db import make_engine, upgrade
from bot.decision.policy import DEFAULT_POLICY_PATH, Thresholds, load_policy
from bot.learning import label_store
from bot.policy_versions import PolicyVersionError, PolicyVersions, diff, live_policy
from bot.settings import Settings
from handoff.labels import LabelledDecision
from handoff.models import audit_events

SHIPPED = load_policy(DEFAULT_POLICY_PATH)


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


def _refit() -> Any:
    """The shipped policy with billing_issue's own bar and a higher social bar, as a refit would make it."""
    intents = dict(SHIPPED.intents)
    intents["billing_issue"] = replace(intents["billing_issue"], auto=Thresholds(0.42, 0.0))
    return replace(SHIPPED, version=SHIPPED.version + 1, intents=intents, social_min_confidence=0.9995)


def _audit(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.action.like("policy_%")).order_by(audit_events.c.id)
        ).all()
    return [(row.actor, row.action, row.details) for row in rows]


def test_without_versions_the_policy_file_is_live(database: tuple[str, Engine]) -> None:
    url, engine = database
    versions = PolicyVersions(engine, DEFAULT_POLICY_PATH)
    assert versions.versions() == [] and versions.live_number() is None
    assert versions.live() == SHIPPED == live_policy(url, DEFAULT_POLICY_PATH)
    with pytest.raises(PolicyVersionError, match="no policy version 2"):
        versions.rollback(2, by="lee", reason="oops")  # the file seeded as version 1 is rolled back with it
    assert versions.versions() == []


def test_apply_then_rollback_each_add_an_audited_version_and_a_new_desk_reads_the_live_one(
    database: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = database
    clock = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    versions = PolicyVersions(engine, DEFAULT_POLICY_PATH, clock=lambda: clock[0])
    applied = versions.apply(_refit(), by="lee", reason="refit on the first week's labels")
    assert applied.number == 2 and applied.policy == _refit()
    listed = versions.versions()
    assert [(v.number, v.action, v.created_by) for v in listed] == [(2, "apply", "lee"), (1, "shipped", "carebot")]
    assert listed[1].policy == SHIPPED and listed[0].created_at == clock[0]
    assert live_policy(url, DEFAULT_POLICY_PATH).auto_thresholds("billing_issue").min_score == 0.42
    assert _desk_policy(url, tmp_path, monkeypatch).auto_thresholds("billing_issue").min_score == 0.42

    back = versions.rollback(1, by="lee", reason="too many rejections")
    assert (back.number, back.action, back.based_on) == (3, "rollback", 1)
    assert versions.live() == SHIPPED
    assert _desk_policy(url, tmp_path, monkeypatch).auto_thresholds("billing_issue") == SHIPPED.auto
    audit = _audit(engine)
    assert [(actor, action) for actor, action, _ in audit] == [("lee", "policy_applied"), ("lee", "policy_rolled_back")]
    assert audit[0][2]["version"] == 2 and audit[0][2]["reason"] == "refit on the first week's labels"
    assert {"what": "kind billing_issue", "old": "score ≥ 0.60, margin ≥ 0.00 (pooled)",
            "new": "score ≥ 0.42, margin ≥ 0.00"} in audit[0][2]["changes"]  # fmt: skip
    assert audit[1][2]["restored"] == 1 and audit[1][2]["version"] == 3
    with pytest.raises(PolicyVersionError):
        versions.apply(_refit(), by="lee", reason=" ")


def _desk_policy(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The policy a new Desk from open_desk holds (the knowledge base and the NLU stood in for)."""

    @contextmanager
    def knowledge_base(settings: Settings) -> Iterator[Any]:
        yield SimpleNamespace(searcher=SimpleNamespace(embedder=None), service=None)

    monkeypatch.setattr(bot.desk, "open_knowledge_base", knowledge_base)
    monkeypatch.setattr(bot.desk, "load_default_faq", lambda kb, path: None)
    monkeypatch.setattr(bot.desk, "cached_in", lambda embedder, directory: embedder)
    with bot.desk.open_desk(Settings(data_dir=tmp_path / "var", database_url=url)) as desk:
        return desk.policy


def test_the_diff_names_each_changed_bar_old_to_new() -> None:
    changes = {change.what: (change.old, change.new) for change in diff(SHIPPED, _refit())}
    assert changes == {
        "kind billing_issue": ("score ≥ 0.60, margin ≥ 0.00 (pooled)", "score ≥ 0.42, margin ≥ 0.00"),
        "social_min_confidence": ("0.9988", "0.9995"),
    }
    assert diff(SHIPPED, SHIPPED) == []


def _labels(engine: Engine) -> None:
    labels = label_store(engine)
    with engine.begin() as conn:
        for number in range(40):
            decision = LabelledDecision(f"when is my bill due {number}", tweet_id=f"p{number}", faq_entry_id=1,
                                        score=round(0.40 + 0.01 * number, 2), kind="billing_issue")  # fmt: skip
            labels.record(conn, "approved", decision, actor="ann")
        for number in range(5):
            decision = LabelledDecision(f"my bill is wrong {number}", tweet_id=f"n{number}", faq_entry_id=1,
                                        score=0.10 + 0.01 * number, kind="billing_issue")  # fmt: skip
            labels.record(conn, "rejected", decision, actor="ann")


def _invoke(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(cli.STATE, "_settings", Settings(data_dir=tmp_path / "var", database_url=url))
    return CliRunner().invoke(cli.triage_app, list(args))


def test_the_commands_apply_a_refit_list_diff_and_roll_back(
    database: tuple[str, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine = database
    policy_file = tmp_path / "policy.yml"
    policy_file.write_bytes(DEFAULT_POLICY_PATH.read_bytes())
    run = lambda *args: _invoke(url, tmp_path, monkeypatch, *args, "--policy", str(policy_file))  # noqa: E731
    assert "No policy versions yet" in run("policy", "list").output
    _labels(engine)
    result = run("calibrate", "--from-history", "--by", "lee", "--reason", "first week")
    assert result.exit_code == 0, result.output
    assert "Applied as policy version 2" in result.output
    assert policy_file.read_bytes() == DEFAULT_POLICY_PATH.read_bytes()  # the file stays the fallback
    assert live_policy(url, policy_file).auto_thresholds("billing_issue").min_score == 0.14

    listed = run("policy", "list").output.splitlines()
    assert listed[0].startswith("2 (live)") and "lee  apply: first week" in listed[0]
    assert listed[1].startswith("1 ") and "shipped" in listed[1]
    shown = run("policy", "diff", "1", "2")
    assert shown.exit_code == 0 and "kind billing_issue: score ≥ 0.60, margin ≥ 0.00 (pooled) → score ≥ 0.14" in (
        shown.output
    )
    assert run("policy", "diff", "1", "9").exit_code == 1

    again = run("calibrate", "--from-history")  # refits on the live version: nothing moves
    assert (
        again.exit_code == 0
        and "No bar changes" in again.output
        and PolicyVersions(engine, policy_file).live_number() == 2
    )

    result = run("policy", "rollback", "1", "--by", "lee", "--reason", "back to the file")
    assert result.exit_code == 0, result.output
    assert live_policy(url, policy_file) == SHIPPED
    assert "Versions 1 and 3 have the same bars." in run("policy", "diff", "1", "3").output
    assert run("policy", "rollback", "7").exit_code == 1


def test_a_database_before_the_versions_table_reads_the_policy_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0017")
    assert live_policy(url, DEFAULT_POLICY_PATH) == SHIPPED


def test_writing_the_file_says_when_a_version_in_the_database_is_live(
    database: tuple[str, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.triage_cli import _note_versions

    url, engine = database
    _note_versions(url)
    assert "live policy" not in capsys.readouterr().err
    PolicyVersions(engine, DEFAULT_POLICY_PATH).apply(_refit(), by="lee", reason="refit")
    _note_versions(url)
    assert "the desk's live policy is its version 2 in the database" in " ".join(capsys.readouterr().err.split())


class _Raced(PolicyVersions):
    """Another lead's version is committed between this one's reading the newest number and its insert."""

    def __init__(self, engine: Engine, other: PolicyVersions) -> None:
        super().__init__(engine, DEFAULT_POLICY_PATH)
        self.other = other

    def _next_number(self, conn: Any) -> int:
        number = super()._next_number(conn)
        self.other.apply(_refit(), by="lia", reason="at the same moment")
        return number


@pytest.mark.postgres
def test_two_versions_made_at_once_the_second_is_refused(postgres_url: str) -> None:
    url = emptied_postgres(postgres_url)
    engine, other = make_engine(url), make_engine(url)
    try:
        PolicyVersions(engine, DEFAULT_POLICY_PATH).apply(_refit(), by="lee", reason="first")  # versions 1, 2
        raced = _Raced(engine, PolicyVersions(other, DEFAULT_POLICY_PATH))
        with pytest.raises(PolicyVersionError, match="at the same moment"):
            raced.rollback(1, by="lee", reason="back")
        versions = PolicyVersions(engine, DEFAULT_POLICY_PATH).versions()
        assert [(v.number, v.created_by, v.action) for v in versions][:1] == [(3, "lia", "apply")]
        assert len(versions) == 3
    finally:
        engine.dispose()
        other.dispose()


def test_a_running_worker_takes_an_applied_version_and_a_rollback_without_a_restart(
    database: tuple[str, Engine], tmp_path: Path
) -> None:
    from bot.channel.processing import POLICY_WATCH, TweetProcessor
    from bot.decision.tone import ToneGuide
    from handoff.service import Handoff

    _, engine = database
    versions = PolicyVersions(engine, DEFAULT_POLICY_PATH)
    desk: Any = SimpleNamespace(policy=SHIPPED, guide=ToneGuide.load(DEFAULT_POLICY_PATH.parent / "tone.yml"))
    processor = TweetProcessor(
        engine, desk, Handoff(engine, sla_minutes=60), account_id="1", policy_versions=versions
    )
    start = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    processor.follow_policy(start)
    assert desk.policy is SHIPPED  # no versions yet: the policy it was opened with

    applied = versions.apply(_refit(), by="lee", reason="refit on the labels")
    processor.follow_policy(start + POLICY_WATCH / 2)
    assert desk.policy is SHIPPED  # looked for every POLICY_WATCH, not on every step
    processor.follow_policy(start + POLICY_WATCH)
    assert desk.policy.intents["billing_issue"].auto == Thresholds(0.42, 0.0)

    versions.rollback(applied.number - 1, by="lee", reason="too eager")
    processor.follow_policy(start + 2 * POLICY_WATCH)
    assert desk.policy.intents["billing_issue"].auto == SHIPPED.intents["billing_issue"].auto
    assert desk.policy.social_min_confidence == SHIPPED.social_min_confidence


def test_a_worker_on_a_database_without_versions_keeps_its_policy(tmp_path: Path) -> None:
    from bot.channel.processing import TweetProcessor
    from bot.decision.tone import ToneGuide
    from handoff.service import Handoff

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")  # no migrations at all: no policy_versions table
    desk: Any = SimpleNamespace(policy=SHIPPED, guide=ToneGuide.load(DEFAULT_POLICY_PATH.parent / "tone.yml"))
    processor = TweetProcessor(
        engine, desk, Handoff(engine, sla_minutes=60), account_id="1",
        policy_versions=PolicyVersions(engine, DEFAULT_POLICY_PATH),
    )  # fmt: skip
    processor.follow_policy(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
    assert desk.policy is SHIPPED
    engine.dispose()
