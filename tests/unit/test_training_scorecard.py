"""The training scorecard on a seeded SQLite desk: replies go through the console service as in the web app (the
tone check refuses and records, the outbox and audit log get the rest), then the scorecard reads them back."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from web_support import WebDesk, web_desk

from bot.training.scorecard import build_scorecard, overlap, render_csv, render_review, render_text, used_entry
from bot.web.console import ConsoleError
from handoff.models import audit_events, messages, tickets

PHONE_TWEET = "@KestrelCare my number is 07700 900123, why was I charged twice?"


def _account(desk: WebDesk, username: str):
    account = desk.services.accounts.by_username(username)
    assert account is not None
    return account


def _inbound_tweet(desk: WebDesk, ticket_id: int) -> str:
    with desk.engine.connect() as conn:
        inbound = select(messages.c.tweet_id).where(messages.c.ticket_id == ticket_id, messages.c.direction == "in")
        return str(conn.execute(inbound).scalar_one())


def _created_ago(desk: WebDesk, ticket_id: int, minutes: float) -> None:
    """The ticket arrived `minutes` ago (its SLA deadline an hour after that)."""
    created = datetime.now(UTC) - timedelta(minutes=minutes)
    with desk.engine.begin() as conn:
        conn.execute(update(tickets).where(tickets.c.id == ticket_id)
                     .values(created_at=created, sla_due_at=created + timedelta(minutes=60)))  # fmt: skip


@pytest.fixture
def desk(tmp_path: Path):
    with web_desk(tmp_path) as desk:
        yield desk


def _seed(desk: WebDesk) -> dict[str, int]:
    """ann answers the reset question with the FAQ's words, quickly; bob gets a phone number in public, tries to
    echo it (refused), then answers in public without moving to DM, late."""
    console = desk.services.console
    ann, bob = _account(desk, "ann"), _account(desk, "bob")
    reset = desk.escalate("@KestrelCare how do I reset my hub 4?")
    phone = desk.escalate(PHONE_TWEET, dm_handover=True)
    _created_ago(desk, reset, 5)
    _created_ago(desk, phone, 90)
    console.claim(reset, ann)
    console.reply(reset, ann, "Hold the reset button on the back of the Hub for 15 seconds until the light flashes "
                              "orange, then give it a few minutes.")  # fmt: skip
    console.claim(phone, bob)
    with pytest.raises(ConsoleError, match="Not sent"):
        console.reply(phone, bob, "Thanks, I can see 07700 900123 was charged twice, let me look.")
    console.reply(phone, bob, "Sorry about the double charge, I'll look into it now.")
    return {"reset": reset, "phone": phone}


def test_a_refused_reply_is_audited_with_its_codes_not_its_text(desk: WebDesk) -> None:
    ids = _seed(desk)
    with desk.engine.connect() as conn:
        refused = conn.execute(select(audit_events).where(audit_events.c.action == "reply_refused")).one()
    assert (refused.actor, refused.ticket_id) == ("bob", ids["phone"])
    assert "personal_data" in refused.details["violations"] and refused.details["channel"] == "public"
    assert "07700" not in str(refused.details)


def test_scorecard_per_trainee(desk: WebDesk) -> None:
    ids = _seed(desk)
    posted = {"k1": _inbound_tweet(desk, ids["reset"]), "k2": _inbound_tweet(desk, ids["phone"])}
    references = {"k1": {"faq": "reset-hub", "reply": "Hold the reset button for 15 seconds ^AB"},
                  "k2": {"faq": "pay-bill"}}  # fmt: skip
    card = build_scorecard(desk.engine, session="s1", sla_minutes=60, trainees=["ann", "bob"],
                           references=references, posted=posted)  # fmt: skip
    ann, bob = card.trainees
    assert (ann.username, ann.tickets_answered, ann.within_sla) == ("ann", 1, 1)
    assert 4 * 60 < ann.first_responses[0] < 7 * 60
    assert [(c.scenario_key, c.used_faq, c.right_faq) for c in ann.checks] == [("k1", "reset-hub", True)]
    assert ann.checks[0].reference_similarity is not None and ann.checks[0].reference_similarity > 0.5
    assert (ann.right_faq, ann.with_reference, sum(ann.tone_refusals.values()), ann.not_moved_to_dm) == (1, 1, 0, 0)

    assert (bob.tickets_answered, bob.within_sla) == (1, 0)  # 90 minutes after arrival: past the hour
    assert bob.tone_refusals["personal_data"] == 1 and bob.personal_data_attempts == 1
    assert bob.personal_data_echoed == 0  # the echo was refused, so nothing with the number went out
    assert bob.not_moved_to_dm == 1
    assert [(c.used_faq, c.right_faq) for c in bob.checks] == [(None, False)]
    assert "personal_data" in bob.checks[0].refused and ann.checks[0].refused == ()  # on the ticket it was refused on
    assert card.unanswered == 0

    text = render_text(card)
    assert "ann (^AB): 1 ticket(s) answered first" in text and "1/1 within the SLA" in text
    assert "0/1 within the SLA" in text and "1 ticket(s) not moved to DM" in text
    assert "reference reset-hub, used reset-hub (right)" in text


def test_moving_to_dm_is_not_counted_against_the_trainee(desk: WebDesk) -> None:
    console, bob = desk.services.console, _account(desk, "bob")
    phone = desk.escalate(PHONE_TWEET, dm_handover=True)
    console.claim(phone, bob)
    console.move_to_dm(phone, bob)
    (score,) = build_scorecard(desk.engine, session="s1", sla_minutes=60, trainees=["bob"]).trainees
    assert (score.tickets_answered, score.not_moved_to_dm, score.personal_data_echoed) == (1, 0, 0)


def test_a_refusal_on_a_ticket_the_trainee_never_answered_is_listed_for_the_lead(desk: WebDesk) -> None:
    console, ann, bob = desk.services.console, _account(desk, "ann"), _account(desk, "bob")
    phone = desk.escalate(PHONE_TWEET, dm_handover=True)
    console.claim(phone, ann)
    with pytest.raises(ConsoleError, match="Not sent"):
        console.reply(phone, ann, "We'll ring you on 07700 900123 today.")
    console.release(phone, ann)
    console.claim(phone, bob)
    console.reply(phone, bob, "Sorry about the double charge, I'll look into it now.")
    card = build_scorecard(desk.engine, session="s1", sla_minutes=60, trainees=["ann", "bob"],
                           posted={"k9": _inbound_tweet(desk, phone)})  # fmt: skip
    ann_score, bob_score = card.trainees
    assert ann_score.checks == [] and [(r.ticket_id, r.scenario_key) for r in ann_score.refused_only] == [
        (phone, "k9")
    ]
    assert "personal_data" in ann_score.refused_only[0].codes and bob_score.refused_only == []
    assert bob_score.checks[0].refused == ()  # ann's refusal is not bob's
    assert "refused by the tone check (personal_data" in render_review(card)


def test_a_public_reply_carrying_personal_data_counts_as_echoed(desk: WebDesk) -> None:
    """The tone check stops this in the console; the scorecard still catches it if one got out by other means."""
    ticket = desk.escalate(PHONE_TWEET, dm_handover=True)
    bob = desk.handoff.agent_by_username("bob")
    assert bob is not None
    with desk.engine.begin() as conn:
        desk.handoff.record_outbound(conn, ticket, author="BO", text="Is 07700 900123 your number? ^BO",
                                     outbox_id=None, kind="agent_reply", channel="public")  # fmt: skip
    (score,) = build_scorecard(desk.engine, session="s1", sla_minutes=60, trainees=["bob"]).trainees
    assert (score.personal_data_echoed, score.not_moved_to_dm) == (1, 1)


def test_csv_export_has_a_row_per_trainee(desk: WebDesk) -> None:
    _seed(desk)
    desk.add_user("cat", "agent", "Cat Idle", "CI")
    card = build_scorecard(desk.engine, session="s1", sla_minutes=60, trainees=["ann", "bob", "cat"])
    rows = list(csv.DictReader(io.StringIO(render_csv(card))))
    assert [row["trainee"] for row in rows] == ["ann", "bob", "cat"]
    assert rows[1]["tone_refusals"] == "1" and "personal_data:1" in rows[1]["tone_refusal_codes"]
    assert rows[1]["not_moved_to_dm"] == "1" and rows[0]["within_sla"] == "1"
    assert rows[2]["tickets_answered"] == "0" and rows[2]["median_first_response_s"] == ""


def test_faq_use_is_the_answer_the_reply_contains() -> None:
    answers = {"reset-hub": "Hold the reset button on the back of the Hub for 15 seconds.",
               "pay-bill": "Pay by card or direct debit in the Kestrel app under Billing."}  # fmt: skip
    reply = "You can pay by card or direct debit in the Kestrel app, under Billing ^AB"
    assert used_entry(reply, answers) == "pay-bill"
    assert used_entry("Sorry to hear that, we are looking into it ^AB", answers) is None
    assert overlap("", answers["pay-bill"]) == 0.0 and overlap("anything", "") == 0.0


def test_the_leads_review_shows_beside_each_reply_and_the_newest_counts(desk: WebDesk) -> None:
    ids = _seed(desk)
    posted = {"k1": _inbound_tweet(desk, ids["reset"]), "k2": _inbound_tweet(desk, ids["phone"])}
    references = {"k1": {"faq": "reset-hub", "reply": "Hold the reset button for 15 seconds ^AB"},
                  "k2": {"faq": "pay-bill", "reply": "Sorry about that! Please DM us so we can look ^AB"}}  # fmt: skip
    desk.handoff.record_review(ids["reset"], "lee", verdict="good", comment="Right entry, quick.")
    desk.handoff.record_review(ids["phone"], "lee", verdict="good", comment="first look")
    hostile = "Move a customer's number to DM.\x1b[31m\nNever answer it in public."
    desk.handoff.record_review(ids["phone"], "lee", verdict="needs_work", comment=hostile)
    with pytest.raises(ValueError):
        desk.handoff.record_review(ids["phone"], "lee", verdict="meh", comment="")
    card = build_scorecard(desk.engine, session="s1", sla_minutes=60, trainees=["ann", "bob"],
                           references=references, posted=posted)  # fmt: skip
    ann, bob = card.trainees
    assert (ann.reviewed, ann.flagged, bob.reviewed, bob.flagged) == (1, 0, 1, 1)
    assert bob.checks[0].review is not None and bob.checks[0].review.verdict == "needs_work"  # the newest counts

    listing = render_review(card)
    assert "reply:     Sorry about the double charge" in listing
    assert "reference: Sorry about that! Please DM us" in listing
    assert "NEEDS WORK (lee): Move a customer's number to DM. [31m Never answer it in public." in listing
    assert "\x1b" not in listing and "good (lee): Right entry, quick." in listing
    text = render_text(card)
    assert "1/1 replies reviewed, 1 flagged as needing work" in text and "reviewed NEEDS WORK by lee" in text
    rows = list(csv.DictReader(io.StringIO(render_csv(card))))
    assert [(row["reviewed"], row["flagged_by_lead"]) for row in rows] == [("1", "0"), ("1", "1")]


def test_carebot_training_review_lists_records_and_refuses_bad_reviews(
    desk: WebDesk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app
    from bot.training.session import SessionInfo

    ids = _seed(desk)
    folder = tmp_path / "live" / "training" / "s1"
    folder.mkdir(parents=True)
    with sqlite3.connect(str(desk.engine.url.database)) as live, sqlite3.connect(folder / "carebot.db") as copy:
        live.backup(copy)  # the seeded desk as the session's database (its WAL included)
    SessionInfo("s1", "outage_storm.jsonl", 1.0, "2026-12-02T17:00:00Z", "http://127.0.0.1:1", "http://127.0.0.1:2",
                pid=0, trainees=["ann", "bob"], stopped_at="2026-12-02T18:00:00Z").save(folder)  # fmt: skip
    monkeypatch.setenv("CAREBOT_DATA_DIR", str(tmp_path / "live"))

    def carebot(*args: str) -> Any:
        return CliRunner().invoke(app, ["training", "review", "s1", *args])

    listed = carebot()
    assert listed.exit_code == 0, listed.output
    assert f"#{ids['phone']}  bob (^BO)" in listed.output and "review:    not reviewed" in listed.output
    marked = carebot("--ticket", str(ids["phone"]), "--needs-work", "--comment", "Move it to DM.", "--by", "lee")
    assert marked.exit_code == 0, marked.output
    assert "NEEDS WORK (lee): Move it to DM." in carebot().output
    report = CliRunner().invoke(app, ["training", "report", "s1"])
    assert "1 flagged as needing work" in report.output
    for bad in (["--ticket", str(ids["phone"])], ["--ticket", str(ids["phone"]), "--good", "--needs-work"],
                ["--ticket", "999", "--good"], ["--good"]):  # fmt: skip
        refused = carebot(*bad)
        assert refused.exit_code != 0 and "Traceback" not in refused.output, (bad, refused.output)
    assert sum(1 for line in carebot().output.splitlines() if "NEEDS WORK" in line) == 1
