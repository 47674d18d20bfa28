"""A scenario made from the live desk's conversations, on a seeded scratch desk: public customer turns with their
agent's real reply as the reference, personal data and handles stripped, DMs and the bot's replies left out, a
file `carebot training start` reads; `carebot training scenario --from-live` writes it and leaves the database
as it was."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from test_training_scorecard import PHONE_TWEET, _seed
from web_support import WebDesk, web_desk

from bot.sandbox.replay import replay
from bot.sandbox.testing import running_sandbox
from bot.training.live_scenario import build_live_scenario, write_scenario
from bot.training.session import read_scenario
from handoff import transaction
from handoff.models import messages, tickets

RESET_REPLY = (
    "Hold the reset button on the back of the Hub for 15 seconds until the light flashes orange, then "
    "give it a few minutes."
)  # fmt: skip (ann's reply in _seed)


@pytest.fixture
def desk(tmp_path: Path):
    with web_desk(tmp_path) as desk:
        yield desk


def _live_traffic(desk: WebDesk) -> dict[str, int]:
    """_seed's two tickets (ann's FAQ answer to the reset question, bob's reply to a tweet with a phone number),
    a follow-up from maya_k naming another customer and giving her e-mail, a DM ticket, a ticket only the bot
    answered, and the phone ticket opened an hour before the others, with a public follow-up bob answered by DM."""
    ids = _seed(desk)
    conversation = desk.handoff.ticket(ids["reset"]).ticket.conversation_id
    with transaction(desk.engine) as conn:
        desk.handoff.add_customer_message(conn, conversation, tweet_id="1870000000000000101", author="maya_k",
                                          text="@KestrelCare @jo_b92 same here, mail me at maya.k@example.com",
                                          created_at=datetime.now(UTC))  # fmt: skip
    ids["dm"] = desk.escalate("my account is KT-20497711, the bill is wrong", source="dm", customer_handle="dm_dan")
    ids["bot"] = desk.escalate("@KestrelCare thanks all sorted", customer_handle="happy_hal")
    with transaction(desk.engine) as conn:
        desk.handoff.record_outbound(
            conn, ids["bot"], author="bot", text="Glad to hear it! ^bot", outbox_id=None, kind="bot_reply"
        )
    earlier = datetime.now(UTC) - timedelta(hours=1)
    with desk.engine.begin() as conn:
        conn.execute(update(tickets).where(tickets.c.id == ids["phone"]).values(created_at=earlier))
        conn.execute(update(messages).where(messages.c.ticket_id == ids["phone"], messages.c.direction == "in")
                     .values(created_at=earlier))  # fmt: skip
    phone = desk.handoff.ticket(ids["phone"]).ticket.conversation_id
    with transaction(desk.engine) as conn:  # maya_k answers bob in public, and he answers her by DM
        desk.handoff.add_customer_message(conn, phone, tweet_id="1870000000000000102", author="maya_k",
                                          text="@KestrelCare ok, sent you a DM", created_at=earlier + timedelta(
                                              minutes=10))  # fmt: skip
        desk.handoff.record_outbound(conn, ids["phone"], author="BO", text="Got it, the double charge is refunded.",
                                     outbox_id=None, kind="reply", channel="dm")  # fmt: skip
    return ids


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


def test_customer_turns_carry_the_agents_real_reply_with_personal_data_stripped(desk: WebDesk) -> None:
    _live_traffic(desk)
    made = build_live_scenario(desk.engine, care_account="KestrelCare")
    everything = json.dumps(made.lines, ensure_ascii=False)
    for private in ("07700", "900123", "maya", "jo_b92", "example.com", "KT-20497711", "dm_dan", "happy_hal", "^AB"):
        assert private not in everything, private
    assert (made.threads, made.with_reference) == (3, 2)
    phone, dm_sent, reset, follow_up, thanks = made.lines
    assert dm_sent["reply_to"] == phone["key"] and "reference" not in dm_sent  # answered by DM: no reference
    assert dm_sent["at"] == 600
    assert phone["text"] == PHONE_TWEET.replace("07700 900123", "[phone number]")
    assert phone["reference"] == {"reply": "Sorry about the double charge, I'll look into it now."}  # not the refused
    assert reset["text"] == "@KestrelCare how do I reset my hub 4?"
    assert reset["reference"] == {"faq": "reset-hub", "reply": RESET_REPLY}
    assert follow_up["reply_to"] == reset["key"] and "reference" not in follow_up
    assert follow_up["text"] == "@KestrelCare @customer02 same here, mail me at [e-mail]"
    assert phone["user"] == reset["user"] == follow_up["user"] == "customer01"  # the same customer, one name
    assert thanks["user"] == "customer03" and "reference" not in thanks  # the bot's reply is no reference
    assert [line["key"] for line in made.lines] == ["c001", "c002", "c003", "c004", "c005"]
    assert phone["at"] == 0 and 3500 < reset["at"] < follow_up["at"]


def test_the_desks_own_handle_on_x_replays_as_the_sandbox_care_account(desk: WebDesk) -> None:
    desk.escalate("@AcmeHelp @kestrelcare my bill is wrong", customer_handle="acme_fan")
    made = build_live_scenario(desk.engine, care_account="acmehelp", replay_as="KestrelCare")
    assert [line["text"] for line in made.lines] == ["@KestrelCare @customer02 my bill is wrong"]
    assert made.lines[0]["user"] == "customer01"  # the other handle is a customer's like any other


def test_since_and_limit_choose_the_tickets(desk: WebDesk) -> None:
    _live_traffic(desk)
    recent = build_live_scenario(desk.engine, care_account="KestrelCare",
                                 since=datetime.now(UTC) - timedelta(minutes=30))  # fmt: skip
    assert "[phone number]" not in json.dumps(recent.lines) and recent.threads == 2
    first = build_live_scenario(desk.engine, care_account="KestrelCare", limit=1)  # the oldest ticket
    assert first.threads == 1 and [line["text"] for line in first.lines] == [
        PHONE_TWEET.replace("07700 900123", "[phone number]"),
        "@KestrelCare ok, sent you a DM",
    ]


def test_the_written_file_is_a_scenario_training_start_reads(desk: WebDesk, tmp_path: Path) -> None:
    _live_traffic(desk)
    out = tmp_path / "from_live.jsonl"
    write_scenario(build_live_scenario(desk.engine, care_account="KestrelCare"), out)
    scenario = read_scenario(out)
    assert [line.key for line in scenario.lines] == ["c001", "c002", "c003", "c004", "c005"]
    assert scenario.references["c003"].faq == "reset-hub" and scenario.references["c001"].faq is None
    assert scenario.lines[3].reply_to == "c003" and scenario.lines[1].reply_to == "c001"


def test_the_sandbox_x_takes_every_line_in_its_thread(desk: WebDesk, tmp_path: Path) -> None:
    """What a session replays: the lines without their references, posted to a sandbox X of its own."""
    _live_traffic(desk)
    out = tmp_path / "from_live.jsonl"
    write_scenario(build_live_scenario(desk.engine, care_account="KestrelCare"), out)
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(read_scenario(out).traffic_text, "utf-8")
    with running_sandbox(tmp_path / "sandbox-x.db") as sandbox:
        report = replay(traffic, sandbox.url, speed=1e6)
        under_first = httpx.get(f"{sandbox.url}/sandbox/timeline", timeout=10,
                                params={"in_reply_to_tweet_id": report.posted["c001"]}).json()["data"]  # fmt: skip
    assert report.refused == [] and sorted(report.posted) == ["c001", "c002", "c003", "c004", "c005"]
    assert [tweet["id"] for tweet in under_first] == [report.posted["c002"]]  # the follow-up, in its thread


def test_the_command_writes_it_and_leaves_the_live_database_alone(desk: WebDesk, tmp_path: Path) -> None:
    _live_traffic(desk)
    database = Path(str(desk.engine.url.database))
    before = _dump(database)
    out = tmp_path / "scenario.jsonl"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var"),
           "CAREBOT_DATABASE_URL": f"sqlite:///{database}", "COLUMNS": "200"}  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "training", "scenario", *args], capture_output=True,
                              text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)  # fmt: skip

    refused = run(str(out))
    assert refused.returncode == 1 and "--from-live" in refused.stderr and not out.exists()
    made = run("--from-live", "--since", "2000-01-01", "--limit", "2", str(out))
    assert made.returncode == 0, made.stderr
    assert "from 2 tickets" in made.stderr
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(lines) == 4 and "07700" not in out.read_text("utf-8")
    again = run("--from-live", str(out))
    assert again.returncode == 1 and "--force" in again.stderr
    assert run("--from-live", "--since", "last tuesday", "--force", str(out)).returncode == 1
    assert _dump(database) == before
