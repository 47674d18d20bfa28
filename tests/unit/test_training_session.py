"""Training sessions without processes: scenarios with references, the isolation check, the banner setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from web_support import web_desk

from bot.settings import Settings
from bot.training.session import (
    BANNER,
    TrainingError,
    check_isolated,
    child_environment,
    read_scenario,
    session_settings,
)


def _live(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "live", nlu_token="live-token", **values)  # type: ignore[arg-type]


def _session(live: Settings, tmp_path: Path) -> Settings:
    return session_settings(live, live.data_dir / "training" / "s1", sandbox_port=18091, web_port=18081)


def test_a_scenario_is_a_traffic_file_whose_lines_may_carry_a_reference(tmp_path: Path) -> None:
    path = tmp_path / "storm.jsonl"
    path.write_text(
        json.dumps({"at": 0, "key": "t1", "user": "maya", "text": "@KestrelCare internet down in Leeds",
                    "reference": {"faq": "outage-check", "reply": "Sorry, there is an outage in Leeds ^AB"}}) + "\n"
        + json.dumps({"at": 5, "key": "t2", "user": "maya", "text": "still down", "reply_to": "t1"}) + "\n",
        "utf-8",
    )  # fmt: skip
    scenario = read_scenario(path)
    assert [line.key for line in scenario.lines] == ["t1", "t2"]
    assert scenario.references["t1"].faq == "outage-check" and "t2" not in scenario.references
    assert "reference" not in scenario.traffic_text


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('{"at": 0, "key": "t1", "user": "u", "text": "x", "reference": "faq"}', "`reference` must be"),
        ('{"at": 0, "key": "t1", "user": "u", "text": "x", "reference": {"faq": ""}}', "`reference` must be"),
        ('{"at": 0, "key": "t1", "user": "u", "text": "x", "tone": 1}', "unknown fields tone"),
        ("{not json", "line 1: not valid JSON"),
    ],
)
def test_a_bad_scenario_line_is_named(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", "utf-8")
    with pytest.raises(TrainingError, match=error) as raised:
        read_scenario(path)
    assert str(path) in str(raised.value)


def test_the_session_settings_are_isolated(tmp_path: Path) -> None:
    live = _live(tmp_path, x_bearer_token="real-token", database_url="postgresql://carebot@db/live")
    session = _session(live, tmp_path)
    check_isolated(session, live, environ={})
    assert not session.x_credentials_set and session.effective_x_api_url == "http://127.0.0.1:18091"
    assert session.effective_database_url == f"sqlite:///{session.data_dir / 'carebot.db'}"
    assert session.web_banner == BANNER
    env = child_environment(session)
    assert env["CAREBOT_DATABASE_URL"] == session.effective_database_url
    assert env["CAREBOT_X_API_URL"] == session.effective_x_api_url
    assert env["CAREBOT_SANDBOX_STORE"] == str(session.data_dir / "sandbox-x.db")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"x_bearer_token": "real"}, "has X credentials"),
        ({"x_api_url": "https://api.x.com"}, "is not its own sandbox X"),
        ({"sandbox_port": 8090, "x_api_url": "http://127.0.0.1:8090"}, "live sandbox X's port"),
        ({"database_url": "LIVE"}, "not a SQLite file of its own"),
        ({"database_url": "sqlite:////elsewhere/carebot.db"}, "outside its data directory"),
        ({"sandbox_store": "LIVE"}, "sandbox X store is the live one"),
    ],
)
def test_anything_that_reaches_the_live_desk_is_refused(tmp_path: Path, change: dict[str, object], error: str) -> None:
    live = _live(tmp_path)
    values = {key: live.effective_database_url if value == "LIVE" and key == "database_url" else
              live.effective_sandbox_store if value == "LIVE" else value for key, value in change.items()}  # fmt: skip
    session = _session(live, tmp_path).model_copy(update=values)
    with pytest.raises(TrainingError, match=error):
        check_isolated(session, live, environ={})


def test_x_credentials_in_the_environment_are_refused(tmp_path: Path) -> None:
    live = _live(tmp_path)
    with pytest.raises(TrainingError, match="X credentials are set in the environment"):
        check_isolated(_session(live, tmp_path), live, environ={"CAREBOT_X_BEARER_TOKEN": "real"})


def test_every_page_of_a_training_desk_carries_the_banner(tmp_path: Path) -> None:
    with web_desk(tmp_path) as desk:
        assert "site-banner" not in desk.client().get("/login").text
        desk.app.state.settings = desk.settings.model_copy(update={"web_banner": BANNER})
        assert BANNER in desk.client().get("/login").text
        client = desk.logged_in("ann")
        for path in ("/queue", "/nowhere"):
            page = client.get(path)
            assert 'class="site-banner"' in page.text and "TRAINING" in page.text, path


def test_the_bundled_outage_storm_scenario_reads_and_names_real_faq_entries() -> None:
    from knowledge_base.io import read_file

    root = Path(__file__).resolve().parents[2] / "training_data"
    scenario = read_scenario(root / "scenarios" / "outage_storm.jsonl")
    slugs = {record.content.slug for record in read_file(root / "faq.yml")}
    named = {ref.faq for ref in scenario.references.values() if ref.faq}
    assert len(scenario.lines) >= 10 and named and named <= slugs
