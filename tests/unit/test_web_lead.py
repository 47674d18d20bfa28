"""The lead view: the shift at a glance (open tickets by priority, SLA breaches, the oldest wait, volume against
the hour before), surge detection with on-call agents proposed, and roster changes and reassignments (audited)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert
from web_support import WebDesk, csrf_of, web_desk

from bot.channel.models import inbound_tweets
from bot.settings import Settings
from bot.web.lead import LeadService, SurgeLevels, Volume, detect_surge
from handoff import transaction
from handoff.service import Agent, RosterRow

LEVELS = SurgeLevels(volume_ratio=2.0, min_tweets_per_hour=30, escalation_share=0.5)
_ids = itertools.count(1_880_000_000_000_000_000)


def _row(initials: str, kind: str, status: str, capacity: int = 5, held: int = 0) -> RosterRow:
    agent = Agent(
        id=len(initials) * 100 + ord(initials[0]), username=initials.lower(), display_name=f"Agent {initials}",
        initials=initials, kind=kind, status=status, capacity=capacity, skills=(), created_at=datetime.now(UTC),
    )  # fmt: skip
    return RosterRow(agent=agent, open_tickets=held)


ROSTER = [
    _row("AB", "core", "online", capacity=5, held=5), _row("BO", "core", "online", capacity=5, held=3),
    _row("OC", "on_call", "offline", capacity=6), _row("AW", "on_call", "away", capacity=4),
    _row("ON", "on_call", "online", capacity=5, held=5), _row("XC", "core", "offline"),
]  # fmt: skip


def test_a_quiet_hour_is_no_surge_whatever_the_ratio() -> None:
    surge = detect_surge(Volume(last_hour=20, hour_before=2, triaged_last_hour=20, escalated_last_hour=20), LEVELS,
                         ROSTER, waiting=0)  # fmt: skip
    assert not surge.active and surge.proposals == []


def test_volume_rising_past_the_ratio_is_a_surge_and_proposes_on_call_agents_away_first() -> None:
    surge = detect_surge(Volume(90, 30, 90, 20), LEVELS, ROSTER, waiting=4)
    assert surge.active and len(surge.reasons) == 1 and "×3.0" in surge.reasons[0]
    assert surge.missing_capacity == 2  # 4 waiting, 2 free places online
    assert [row.agent.initials for row in surge.proposals] == ["AW"]


def test_a_high_share_of_escalations_is_a_surge_and_enough_agents_are_proposed_for_the_backlog() -> None:
    surge = detect_surge(Volume(40, 38, 40, 30), LEVELS, ROSTER, waiting=10)
    assert surge.active and "75%" in surge.reasons[0]
    assert surge.missing_capacity == 8
    assert [row.agent.initials for row in surge.proposals] == ["AW", "OC"]  # 4 + 6 places cover the 8 missing
    nothing_before = detect_surge(Volume(35, 0, 35, 0), LEVELS, ROSTER, waiting=0)
    assert nothing_before.active and "none" in nothing_before.reasons[0]


def test_the_surge_levels_are_settings() -> None:
    settings = Settings(surge_volume_ratio=3, surge_min_tweets_per_hour=100, surge_escalation_share=0.8)
    assert SurgeLevels.from_settings(settings) == SurgeLevels(3.0, 100, 0.8)
    with pytest.raises(ValueError):
        Settings(surge_escalation_share=1.5)


# ---------------------------------------------------------------- over the database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    """Each test runs on SQLite and, marked `postgres`, on PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _inbound(
    desk: WebDesk, count: int, *, minutes_ago: float, band: str = "auto", ignore_reason: str | None = None
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    with transaction(desk.engine) as conn:
        for _ in range(count):
            tweet_id = str(next(_ids))
            conn.execute(insert(inbound_tweets).values(
                tweet_id=tweet_id, source="mention", author_id="9", author_username="c", text="down again",
                conversation_id=tweet_id, created_at=at, fetched_at=at, state="done", attempts=1, band=band,
                ignore_reason=ignore_reason,
            ))  # fmt: skip


def test_the_shift_picture_counts_open_tickets_breaches_the_oldest_wait_and_volume(desk: WebDesk) -> None:
    now = datetime.now(UTC)
    old = desk.escalate("waiting for ages", priority=2, created_at=now - timedelta(minutes=90))
    desk.escalate("fresh one", priority=1)
    desk.escalate("another", priority=1)
    _inbound(desk, 36, minutes_ago=10, band="human")
    _inbound(desk, 4, minutes_ago=20)
    _inbound(desk, 10, minutes_ago=80)
    lead = LeadService(desk.handoff, desk.engine, LEVELS)
    shift = lead.shift()
    assert shift.open_by_priority == {1: 2, 2: 1, 3: 0, 4: 0} and shift.open_total == 3
    assert shift.breached == 1 and shift.waiting == 3
    assert shift.oldest_waiting_id == old and shift.oldest_waiting_s is not None and shift.oldest_waiting_s >= 89 * 60
    # the three escalated tweets are stored but not triaged: they count in the volume, not in the share
    assert (shift.volume.last_hour, shift.volume.hour_before) == (43, 10)
    assert shift.volume.escalation_share == pytest.approx(36 / 40)
    assert shift.surge.active and len(shift.surge.reasons) == 2


def test_a_lead_reassigns_and_changes_the_roster_through_the_page_and_it_is_audited(desk: WebDesk) -> None:
    ticket_id = desk.escalate("please help")
    ann = desk.handoff.agent_by_username("ann")
    bob = desk.handoff.agent_by_username("bob")
    assert ann is not None and bob is not None
    desk.handoff.claim(ticket_id, ann.id)
    client = desk.logged_in("lee")
    csrf = csrf_of(client)
    page = client.get("/lead")
    assert page.status_code == 200 and "Roster" in page.text and f'data-ticket="{ticket_id}"' in page.text

    moved = client.post(f"/lead/tickets/{ticket_id}/reassign", data={"csrf_token": csrf, "agent_id": bob.id})
    assert moved.status_code == 303
    assert desk.handoff.ticket(ticket_id).holder.username == "bob"  # type: ignore[union-attr]
    again = client.post(f"/lead/tickets/{ticket_id}/reassign", data={"csrf_token": csrf, "agent_id": bob.id})
    assert again.status_code == 303 and "already held" in client.get("/lead").text

    client.post(f"/lead/agents/{bob.id}/status", data={"csrf_token": csrf, "status": "away"})
    client.post(f"/lead/agents/{bob.id}/capacity", data={"csrf_token": csrf, "capacity": "2"})
    bob = desk.handoff.agent(bob.id)
    assert (bob.status, bob.capacity) == ("away", 2)
    refused = client.post(f"/lead/agents/{bob.id}/status", data={"csrf_token": csrf, "status": "asleep"})
    assert refused.status_code == 303 and desk.handoff.agent(bob.id).status == "away"

    actions = [(event.actor, event.action) for event in desk.handoff.audit(limit=10)]
    assert ("lee", "reassigned") in actions
    assert ("lee", "agent_status_changed") in actions and ("lee", "agent_capacity_changed") in actions


def test_editors_and_agents_are_refused_the_lead_view(desk: WebDesk) -> None:
    for user in ("ann", "eve"):
        client = desk.logged_in(user)
        assert client.get("/lead").status_code == 403
        csrf = csrf_of(client)
        assert client.post("/lead/agents/1/status", data={"csrf_token": csrf, "status": "online"}).status_code == 403


def test_the_lead_view_shows_the_channel_health_and_its_alerts(desk: WebDesk) -> None:
    from bot.channel.models import alerts, outbox, worker_heartbeats

    lead = LeadService(desk.handoff, desk.engine, LEVELS)
    quiet = lead.channel_health()
    assert quiet.worker_seen_s is None and quiet.worker_stale and quiet.alerts == []
    now = datetime.now(UTC)
    _inbound(desk, 2, minutes_ago=1)
    with transaction(desk.engine) as conn:
        conn.execute(insert(worker_heartbeats).values(name="worker", pid=1, seen_at=now - timedelta(seconds=3)))
        for n, state in enumerate(("pending", "unknown", "failed", "sent")):
            conn.execute(insert(outbox).values(
                target_tweet_id=f"9{n}", kind="faq_answer", author="bot", text=f"reply {n} ^bot", state=state,
                attempts=1, created_at=now, updated_at=now,
            ))  # fmt: skip
        conn.execute(insert(alerts).values(
            kind="mention_gap", message="More mentions arrived than X's mentions endpoint returns <b>", created_at=now,
        ))  # fmt: skip
    health = lead.channel_health()
    assert 0 <= (health.worker_seen_s or 0) <= 60 and not health.worker_stale
    assert (health.replies_waiting, health.replies_in_doubt, health.replies_failed_today) == (1, 1, 1)
    assert [alert.kind for alert in health.alerts] == ["mention_gap"]
    page = desk.logged_in("lee").get("/lead").text
    assert "mention gap" in page and "not posted today: 1" in page
    assert "returns &lt;b&gt;" in page  # escaped
    # The reply in doubt may have used a request of X's windows: it counts (the sent one has no sent_at yet).
    assert [(u.channel, u.window, u.used, u.limit) for u in health.posting] == [
        ("public replies", "15 minutes", 1, 100), ("public replies", "24 hours", 1, 10_000),
        ("DMs", "15 minutes", 0, 15), ("DMs", "24 hours", 0, 1_440),
    ]  # fmt: skip
    assert "posting limits used (pay-per-use access): public replies 1 of 100 per 15 minutes;" in page


def test_the_lead_view_counts_each_reason_a_tweet_was_left_alone(desk: WebDesk) -> None:
    lead = LeadService(desk.handoff, desk.engine, LEVELS)
    assert lead.channel_health().ignored_today == ()
    _inbound(desk, 3, minutes_ago=5, band="ignore", ignore_reason="spam")
    _inbound(desk, 1, minutes_ago=5, band="ignore", ignore_reason="opt_out")
    _inbound(desk, 2, minutes_ago=60 * 30, band="ignore", ignore_reason="duplicate")  # older than a day
    _inbound(desk, 4, minutes_ago=5, band="human")
    assert lead.channel_health().ignored_today == (("spam or off-topic", 3), ("explicit opt-outs", 1))
    page = desk.logged_in("lee").get("/lead").text
    assert "spam or off-topic 3; explicit opt-outs 1" in page


def test_a_lead_reassigns_an_outages_tickets_at_once_and_is_told_what_could_not_move(desk: WebDesk) -> None:
    tickets = [desk.escalate(f"no broadband in Leeds {n}", customer_id=f"70{n}") for n in range(4)]
    bob = desk.handoff.agent_by_username("bob")
    assert bob is not None
    desk.handoff.set_capacity(bob.id, 3, by="test")
    client = desk.logged_in("lee")
    csrf = csrf_of(client)
    page = client.get("/lead").text
    assert 'form="bulk-reassign"' in page and 'id="bulk-reassign"' in page
    moved = client.post("/lead/tickets/reassign", data={"csrf_token": csrf, "agent_id": bob.id, "ticket_id": tickets})
    assert moved.status_code == 303
    holders = [desk.handoff.ticket(t).holder for t in tickets]
    assert [h.username if h else None for h in holders] == ["bob", "bob", "bob", None]  # his capacity is 3
    notice = client.get("/lead").text
    assert "3 ticket(s) are with Bob Okafor (BO) now" in notice and f"#{tickets[3]}" in notice
    nothing = client.post("/lead/tickets/reassign", data={"csrf_token": csrf, "agent_id": bob.id})
    assert nothing.status_code == 303 and "Tick the tickets" in client.get("/lead").text
    huge = client.post("/lead/tickets/reassign", data={"csrf_token": csrf, "agent_id": bob.id,
                                                       "ticket_id": [str(2**63)]})  # fmt: skip
    assert huge.status_code == 422
