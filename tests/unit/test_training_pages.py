"""The lead's training pages on the live desk, without processes: the list and the start form, start refused for
bad input or while a session runs (one at a time), the running session's desk and log-ins, the scorecard page,
the lead's review (the same storage as `carebot training review`) and the CSV."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from test_training_scorecard import _seed
from web_support import WebDesk, csrf_of, web_desk

from bot.training import desk as training
from bot.training.session import CURRENT, SessionInfo, training_root

SESSION = "20261203-170000-outage_storm"


@pytest.fixture
def desk(tmp_path: Path):
    with web_desk(tmp_path) as desk:
        yield desk


def _session(desk: WebDesk, *, running: bool) -> dict[str, int]:
    """A kept session whose database is the seeded desk's (ann and bob answered a ticket each)."""
    ids = _seed(desk)
    folder = training_root(desk.settings) / SESSION
    folder.mkdir(parents=True)
    with sqlite3.connect(str(desk.engine.url.database)) as live, sqlite3.connect(folder / "carebot.db") as copy:
        live.backup(copy)
    SessionInfo(SESSION, "outage_storm.jsonl", 20.0, "2026-12-03T17:00:00+00:00", "http://127.0.0.1:1",
                "http://127.0.0.1:18555", pid=0, trainees=["ann", "bob"],
                stopped_at=None if running else "2026-12-03T18:00:00+00:00").save(folder)  # fmt: skip
    if running:
        (training_root(desk.settings) / CURRENT).write_text(SESSION + "\n")
        training.write_accounts(folder, {"ann": "a1b2-c3d4-e5f6", "bob": "0a0b-0c0d-0e0f", "lead": "9999-8888-7777"})
    return ids


def test_the_page_lists_the_scenarios_and_is_for_leads_only(desk: WebDesk) -> None:
    page = desk.logged_in("lee").get("/lead/training")
    assert page.status_code == 200
    assert 'value="scenarios/outage_storm.jsonl"' in page.text and 'value="traffic/kestrel_day.jsonl"' in page.text
    assert "No training sessions yet." in page.text
    assert 'href="/lead/training"' in desk.logged_in("lee").get("/lead").text
    assert desk.logged_in("ann").get("/lead/training").status_code == 403
    agent = desk.logged_in("ann")
    refused = agent.post("/lead/training/start", data={"scenario": "scenarios/outage_storm.jsonl", "speed": "2",
                                                       "trainees": "x1", "csrf_token": csrf_of(agent)})  # fmt: skip
    assert refused.status_code == 403
    assert not training_root(desk.settings).exists()


@pytest.mark.parametrize(
    ("scenario", "trainees", "message"),
    [
        ("../../etc/passwd", "ann", "no scenario"),
        ("scenarios/outage_storm.jsonl", "Ann!", "not a user name: ann!"),
        ("scenarios/outage_storm.jsonl", "ann, lead", "the session&#39;s own lead account"),
        ("scenarios/outage_storm.jsonl", "ann ann", "a name of their own"),
        ("scenarios/outage_storm.jsonl", " , ", "at least one trainee"),
    ],
)
def test_a_bad_start_is_refused_with_a_reason(desk: WebDesk, scenario: str, trainees: str, message: str) -> None:
    lead = desk.logged_in("lee")
    answer = lead.post("/lead/training/start", data={"scenario": scenario, "speed": "2", "trainees": trainees,
                                                     "csrf_token": csrf_of(lead)})  # fmt: skip
    assert answer.status_code == 303
    page = lead.get("/lead/training")
    assert "Not started:" in page.text and message in page.text
    assert not any(training_root(desk.settings).glob("2*"))


def test_a_running_session_shows_its_desk_and_a_second_start_is_refused(desk: WebDesk) -> None:
    _session(desk, running=True)
    lead = desk.logged_in("lee")
    page = lead.get("/lead/training").text
    assert 'id="training-desk-url"' in page and "http://127.0.0.1:18555/" in page
    assert "a1b2-c3d4-e5f6" in page and 'id="stop-session"' in page and 'id="start-training"' not in page
    answer = lead.post("/lead/training/start", data={"scenario": "scenarios/outage_storm.jsonl", "speed": "2",
                                                     "trainees": "raj", "csrf_token": csrf_of(lead)})  # fmt: skip
    assert answer.status_code == 303
    assert f"Not started: the training session {SESSION} is running" in lead.get("/lead/training").text
    assert [p.name for p in training_root(desk.settings).glob("2*")] == [SESSION]


def test_stopping_marks_a_session_whose_process_is_gone(desk: WebDesk) -> None:
    _session(desk, running=True)
    lead = desk.logged_in("lee")
    info = SessionInfo.load(training_root(desk.settings) / SESSION)
    info.pid = 2**22 + 12345  # no such process
    info.save(training_root(desk.settings) / SESSION)
    answer = lead.post("/lead/training/stop", data={"csrf_token": csrf_of(lead)})
    assert answer.status_code == 303 and answer.headers["location"] == f"/lead/training/{SESSION}"
    assert not (training_root(desk.settings) / CURRENT).exists()
    assert SessionInfo.load(training_root(desk.settings) / SESSION).stopped_at is not None
    page = lead.get("/lead/training").text
    assert "has ended; its scorecard is kept" in page and 'id="start-training"' in page
    assert "a1b2-c3d4-e5f6" not in page  # the log-ins of an ended session are not shown


def test_the_scorecard_page_and_the_leads_review(desk: WebDesk) -> None:
    ids = _session(desk, running=False)
    lead = desk.logged_in("lee")
    page = lead.get(f"/lead/training/{SESSION}")
    assert page.status_code == 200
    bob_row = page.text.split('<tr data-trainee="bob">', 1)[1].split("</tr>", 1)[0]
    assert "1 echo refused" in bob_row and "personal data 1" in bob_row
    assert f'id="ticket-{ids["reset"]}"' in page.text and "not reviewed" in page.text
    phone_card = page.text.split(f'id="ticket-{ids["phone"]}"', 1)[1].split("</article>", 1)[0]
    reset_card = page.text.split(f'id="ticket-{ids["reset"]}"', 1)[1].split("</article>", 1)[0]
    assert "also refused a reply of theirs here" in phone_card and "personal data" in phone_card
    assert "refused-on-ticket" not in reset_card
    saved = lead.post(f"/lead/training/{SESSION}/tickets/{ids['phone']}/review", data={
        "verdict": "needs_work", "comment": "Move it to DM <first>.", "csrf_token": csrf_of(lead)})  # fmt: skip
    assert saved.status_code == 303
    page = lead.get(f"/lead/training/{SESSION}").text
    assert f"Ticket #{ids['phone']}: marked needs work." in page
    assert "Move it to DM &lt;first&gt;." in page and "<first>" not in page
    card = training.scorecard(desk.settings, SESSION)  # what `carebot training report` reads
    (bob,) = [score for score in card.trainees if score.username == "bob"]
    assert bob.flagged == 1 and bob.checks[0].review is not None and bob.checks[0].review.by == "lee"
    rows = list(csv.DictReader(io.StringIO(lead.get(f"/lead/training/{SESSION}/scorecard.csv").text)))
    assert [(row["trainee"], row["flagged_by_lead"], row["personal_data_refused"]) for row in rows] == [
        ("ann", "0", "0"), ("bob", "1", "1")]  # fmt: skip
    for bad, message in (({"verdict": "great"}, "Choose good or needs work."),
                         ({"verdict": "good", "comment": "x" * 1001}, "at most 1,000 characters")):  # fmt: skip
        lead.post(f"/lead/training/{SESSION}/tickets/{ids['phone']}/review", data={**bad, "csrf_token": csrf_of(lead)})
        assert message in lead.get(f"/lead/training/{SESSION}").text
    lead.post(f"/lead/training/{SESSION}/tickets/999/review", data={"verdict": "good", "csrf_token": csrf_of(lead)})
    assert "no trainee answered ticket 999" in lead.get(f"/lead/training/{SESSION}").text
    assert lead.get("/lead/training/20261203-170000-nothing").status_code == 404
    assert lead.get("/lead/training/..%2F..%2Fetc").status_code in (404, 422)


def test_the_launch_runs_carebot_training_start_with_the_live_settings(
    desk: WebDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, object]] = []

    class FakePopen:
        pid = 2**22 + 54321

        def __init__(self, command: list[str], **options: object) -> None:
            started.append({"command": command, **options})

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(training.subprocess, "Popen", FakePopen)
    monkeypatch.setenv("CAREBOT_X_BEARER_TOKEN", "live-secret")
    view = training.launch(desk.settings, "scenarios/outage_storm.jsonl", speed=50, trainees=["Tia", "raj"])
    (call,) = started
    command = call["command"]
    assert command[1:6] == ["-m", "bot", "training", "start", str(desk.settings.training_data_dir /
                                                                       "scenarios" / "outage_storm.jsonl")]  # fmt: skip
    assert command[6:] == ["--speed", "50", "--session-id", view.id, "--trainee", "tia", "--trainee", "raj"]
    env = call["env"]
    assert isinstance(env, dict) and "CAREBOT_X_BEARER_TOKEN" not in env
    assert env["CAREBOT_DATABASE_URL"] == desk.settings.effective_database_url
    assert env["CAREBOT_DATA_DIR"] == str(desk.settings.data_dir) and call["start_new_session"] is True
    folder = training_root(desk.settings) / view.id
    assert json.loads((folder / training.LAUNCH_FILE).read_text())["trainees"] == ["tia", "raj"]
    assert (folder / training.START_LOG).is_file()
    # its process is gone without a session: the start failed, and another may start
    assert training.session(desk.settings, view.id).state == "failed"
