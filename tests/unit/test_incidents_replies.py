"""One reply to every customer of an incident (bot/web/incidents.py), on SQLite and PostgreSQL: 20 linked tickets get
20 distinct updates, each within 280 weighted characters, tone-checked against the recent replies and signed by
the lead; a template that fails the tone check is refused with its reasons before anything is queued; resolving
posts a distinct closing reply under each thread and resolves each ticket with it, and a ticket that cannot take
its reply yet keeps its state until the lead resolves again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from web_support import WebDesk, web_desk

from bot.channel.models import outbox
from bot.decision.tone import Author, RecentReplies, check
from bot.web.accounts import Account
from bot.web.incidents import IncidentDesk, IncidentError, compose_incident_reply, usable_handle
from handoff import transaction
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

UPDATE = "Engineers are replacing a damaged fibre cable near Leeds. We expect service back by 6pm; live updates are on our status page."  # noqa: E501
CLOSING = "Service is back for everyone in Leeds. If yours isn't, restart your hub and tell us here."


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as scratch:
        yield scratch


@pytest.fixture
def incidents(desk: WebDesk) -> IncidentDesk:
    return IncidentDesk(desk.handoff, desk.engine)


def account(desk: WebDesk, username: str = "lee") -> Account:
    found = desk.services.accounts.by_username(username)
    assert found is not None
    return found


def outage(desk: WebDesk, incidents: IncidentDesk, count: int = 20, **handles: Any) -> tuple[int, list[int]]:
    """An incident with `count` linked outage tickets from different customers."""
    ids = [
        desk.escalate(f"@KestrelCare no internet in Leeds since 7am, fibre light red ({n})",
                      customer_handle=handles.get(str(n), f"leeds_{n}"), customer_id=str(7000 + n),
                      reasons=["an outage report"])
        for n in range(count)
    ]  # fmt: skip
    made = incidents.create(account(desk), "Fibre outage, Leeds", keywords="leeds, fibre")
    assert incidents.link(made.id, account(desk), ids).linked == ids
    return made.id, ids


def replies(desk: WebDesk, kind: str) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(outbox).where(outbox.c.kind == kind).order_by(outbox.c.id)).all())


def posted(desk: WebDesk, kind: str) -> None:
    """What the sender does once X has the replies: sent, with the id X gave them."""
    with transaction(desk.engine) as conn:
        for row in conn.execute(select(outbox).where(outbox.c.kind == kind, outbox.c.state == "pending")).all():
            posted_id = f"9{row.id:018d}"
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(
                state="sent", posted_tweet_id=posted_id, sent_at=datetime.now(UTC)
            ))  # fmt: skip
            desk.handoff.mark_delivery(conn, row.id, "sent", posted_id)


def assert_distinct_signed_and_checked(texts: list[str], *, earlier: list[str] = ()) -> None:  # type: ignore[assignment]
    recent = RecentReplies(earlier)
    for text in texts:
        assert weighted_length(text) <= MAX_WEIGHTED_LENGTH, text
        assert text.endswith(" ^LL"), text
        assert check(text, Author.agent("LL"), recent_replies=recent) == [], text
        recent.add(text)  # the comparison carebot uses: no two alike, whatever their case or spacing
    assert len(set(texts)) == len(texts)


def test_twenty_customers_get_twenty_distinct_signed_updates(desk: WebDesk, incidents: IncidentDesk) -> None:
    incident_id, ids = outage(desk, incidents)
    report = incidents.send_update(incident_id, account(desk), UPDATE)
    assert report.refused == {} and list(report.queued) == ids
    rows = replies(desk, "incident_update")
    assert len(rows) == 20 and {r.author for r in rows} == {"LL"} and {r.state for r in rows} == {"pending"}
    texts = [r.text for r in rows]
    assert_distinct_signed_and_checked(texts)
    for row, ticket_id, n in zip(rows, ids, range(20), strict=True):
        assert row.ticket_id == ticket_id and UPDATE in row.text and re.search(rf"@leeds_{n}\b", row.text)
        assert "(ref " in row.text
        ticket = desk.handoff.ticket(ticket_id)
        assert ticket.ticket.state == "queued" and ticket.ticket.first_response_at is not None
        assert ticket.ticket.waiting_since is None
        assert [(m.author, m.text, m.outbox_id) for m in ticket.messages if m.direction == "out"] == [
            ("LL", row.text, row.id)
        ]
    openings = {text.split(UPDATE)[0].replace(f"@leeds_{n}", "@…") for n, text in enumerate(texts)}
    assert len(openings) >= 5  # the wording varies, not only the handle and the reference
    incident = incidents.view(incident_id).incident
    assert incident.reply_template == UPDATE


def test_the_next_update_is_worded_apart_from_the_last_one_and_goes_under_our_reply(
    desk: WebDesk, incidents: IncidentDesk
) -> None:
    incident_id, ids = outage(desk, incidents, count=6)
    incidents.send_update(incident_id, account(desk), UPDATE)
    first = [r.text for r in replies(desk, "incident_update")]
    posted(desk, "incident_update")
    report = incidents.send_update(incident_id, account(desk), UPDATE)  # the same words again
    assert report.refused == {} and len(report.queued) == 6
    rows = replies(desk, "incident_update")
    second = [r.text for r in rows[6:]]
    assert_distinct_signed_and_checked(second, earlier=first)
    ours = {r.posted_tweet_id for r in rows[:6]}
    assert {r.target_tweet_id for r in rows[6:]} == ours  # under our own reply: no tweet gets two


def test_a_handle_that_is_no_plain_x_handle_is_left_out(desk: WebDesk, incidents: IncidentDesk) -> None:
    handles = {"0": "jo\u202e_evil", "1": "sixteen_letters_", "2": None}
    incident_id, ids = outage(desk, incidents, count=4, **handles)
    assert usable_handle("jo\u202e_evil") is None and usable_handle("leeds_3") == "leeds_3"
    report = incidents.send_update(incident_id, account(desk), UPDATE)
    assert report.refused == {}
    texts = [r.text for r in replies(desk, "incident_update")]
    assert "\u202e" not in texts[0] and "@" not in texts[0]
    assert "sixteen" not in texts[1]  # longer than X allows: not echoed
    assert "@" not in texts[2] and "@leeds_3" in texts[3]
    assert_distinct_signed_and_checked(texts)


def test_every_opening_used_recently_still_gives_a_distinct_reply() -> None:
    recent = RecentReplies()
    author = Author.agent("LL")
    from bot.decision.tone import default_guide

    texts = []
    for _ in range(3):  # the same ticket three times: every opening is tried before any repeats
        text, problems = compose_incident_reply(
            "update", UPDATE, ticket_id=7, handle="maya_k", author=author, recent=recent, guide=default_guide()
        )
        assert text is not None and problems == []
        recent.add(text)
        texts.append(text)
    assert len(set(texts)) == 3


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("We're so sorry for any inconvenience, the fix is coming.", "sorry for any inconvenience"),
        ("THE FIX IS COMING SOON, PLEASE WAIT FOR US.", "shouting"),
        ("Call us on 07700 900123 for updates.", "personal data"),
        ("The fix is coming. ^XY", "^XY"),
        ("Service is back!! Enjoy.", "One exclamation mark"),
        ("word " * 60, "it may have"),
        ("   ", "Write the message"),
    ],
)
def test_a_template_that_fails_the_tone_check_is_refused_before_anything_is_queued(
    desk: WebDesk, incidents: IncidentDesk, template: str, reason: str
) -> None:
    incident_id, ids = outage(desk, incidents, count=3)
    for send in (incidents.send_update, incidents.resolve):
        with pytest.raises(IncidentError, match="Not sent") as refused:
            send(incident_id, account(desk), template)
        assert reason in str(refused.value)
    assert replies(desk, "incident_update") == [] and replies(desk, "incident_close") == []
    assert {desk.handoff.ticket(t).ticket.state for t in ids} == {"queued"}
    report = incidents.check_template(incident_id, account(desk), "update", template)
    assert not report.ok and report.samples == []
    good = incidents.check_template(incident_id, account(desk), "update", UPDATE)
    assert good.ok and len(good.samples) == 3 and len(set(good.samples)) == 3


def test_only_an_account_with_a_roster_agent_and_initials_may_send(desk: WebDesk, incidents: IncidentDesk) -> None:
    incident_id, _ = outage(desk, incidents, count=2)
    lead = account(desk)
    for unsigned in (replace(lead, agent_id=None), replace(lead, initials=None)):  # older accounts may lack them
        with pytest.raises(IncidentError, match="no place on the roster or no initials"):
            incidents.send_update(incident_id, unsigned, UPDATE)
    assert replies(desk, "incident_update") == []


def test_resolving_posts_a_distinct_closing_reply_under_each_thread_and_resolves_the_tickets(
    desk: WebDesk, incidents: IncidentDesk
) -> None:
    incident_id, ids = outage(desk, incidents)
    ann = desk.handoff.agent_by_username("ann")
    assert ann is not None
    desk.handoff.claim(ids[0], ann.id)  # Ann took one of them before the incident was resolved
    incidents.send_update(incident_id, account(desk), UPDATE)
    posted(desk, "incident_update")
    updates = replies(desk, "incident_update")
    report = incidents.resolve(incident_id, account(desk), CLOSING)
    assert report.refused == {} and report.resolved and list(report.queued) == ids
    closings = replies(desk, "incident_close")
    assert len(closings) == 20
    assert_distinct_signed_and_checked([r.text for r in closings], earlier=[r.text for r in updates])
    assert [r.target_tweet_id for r in closings] == [r.posted_tweet_id for r in updates]  # under each thread
    for ticket_id in ids:
        ticket = desk.handoff.ticket(ticket_id).ticket
        assert ticket.state == "resolved"
    assert desk.handoff.ticket(ids[0]).ticket.agent_id == ann.id  # the holder stays the one who held it
    view = incidents.view(incident_id)
    assert view.incident.state == "resolved" and view.incident.closing_template == CLOSING
    with pytest.raises(IncidentError, match="resolved already"):
        incidents.send_update(incident_id, account(desk), UPDATE)


def test_a_thread_whose_last_reply_is_still_being_posted_waits_and_the_rest_is_resolved_again_later(
    desk: WebDesk, incidents: IncidentDesk
) -> None:
    incident_id, ids = outage(desk, incidents, count=4)
    incidents.send_update(incident_id, account(desk), UPDATE)
    # The sender has posted the first two updates; the other two are still on their way.
    with transaction(desk.engine) as conn:
        for row in conn.execute(select(outbox).where(outbox.c.ticket_id.in_(ids[:2]))).all():
            conn.execute(
                update(outbox).where(outbox.c.id == row.id).values(state="sent", posted_tweet_id=f"8{row.id:018d}")
            )
    report = incidents.resolve(incident_id, account(desk), CLOSING)
    assert list(report.queued) == ids[:2] and set(report.refused) == set(ids[2:]) and not report.resolved
    assert all("still being posted" in why for why in report.refused.values())
    assert "stays open" in report.message()
    states = [desk.handoff.ticket(t).ticket.state for t in ids]
    assert states == ["resolved", "resolved", "queued", "queued"]
    assert len(replies(desk, "incident_close")) == 2  # nothing half-done for the waiting two
    assert incidents.view(incident_id).incident.state == "open"
    posted(desk, "incident_update")
    again = incidents.resolve(incident_id, account(desk), CLOSING)
    assert list(again.queued) == ids[2:] and again.resolved
    assert len(replies(desk, "incident_close")) == 4  # the first two got theirs once
