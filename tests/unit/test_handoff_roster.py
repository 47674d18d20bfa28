"""The roster (agents, their status, capacity and skills), a lead's reassignment, and the audit log that records
every state change and every reply: who, when, what."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from handoff_support import Desk, scratch_desk

from handoff import AgentNotFound, Conflict, InvalidInput, transaction


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with scratch_desk(tmp_path) as scratch:
        yield scratch


def test_an_agent_joins_the_roster_offline_with_their_settings(desk: Desk) -> None:
    agent = desk.handoff.add_agent("dee", "Dee Mensah", "DMX", kind="on_call", capacity=3, skills=["mobile", "mobile"])
    assert (agent.username, agent.initials, agent.kind, agent.status, agent.capacity) == (
        "dee",
        "DMX",
        "on_call",
        "offline",
        3,
    )
    assert agent.skills == ("mobile",)
    assert desk.handoff.agent_by_username("dee") == agent
    assert desk.handoff.agent_by_username("nobody") is None


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"initials": "ab"}, "capital letters"), ({"initials": "ABCD"}, "capital letters"),
     ({"initials": "A"}, "capital letters"), ({"kind": "temp"}, "kind must be"), ({"capacity": -1}, "capacity"),
     ({"username": " "}, "username"), ({"skills": "billing"}, "list of skill names"), ({"status": "busy"}, "status")],
)  # fmt: skip
def test_bad_agent_details_are_refused_clearly(desk: Desk, kwargs: dict[str, object], words: str) -> None:
    values: dict[str, object] = {"username": "eve", "display_name": "Eve Ng", "initials": "EN", **kwargs}
    with pytest.raises(InvalidInput, match=words):
        desk.handoff.add_agent(**values)  # type: ignore[arg-type]
    assert desk.handoff.agent_by_username("eve") is None


def test_usernames_and_initials_are_unique(desk: Desk) -> None:
    with pytest.raises(Conflict, match="initials 'AB' is already used by Ann Brown"):
        desk.handoff.add_agent("abby", "Abby Bell", "AB")
    with pytest.raises(Conflict, match="username 'ann'"):
        desk.handoff.add_agent("ann", "Ann Other", "AO")


def test_the_roster_counts_held_tickets_and_lists_core_online_agents_first(desk: Desk) -> None:
    oncall = desk.handoff.add_agent("zed", "Zed Ali", "ZA", kind="on_call").id
    desk.handoff.set_status(desk.bob, "online", by="lead")
    desk.handoff.set_status(oncall, "online", by="lead")
    for _ in range(3):
        desk.escalate()
    desk.handoff.take_next(desk.ann)
    answered = desk.take(desk.ann)
    desk.answer(answered.id, desk.ann)
    resolved = desk.take(desk.bob)
    desk.answer(resolved.id, desk.bob)
    desk.handoff.resolve(resolved.id, desk.bob)

    roster = desk.handoff.roster()
    assert [(r.agent.username, r.agent.status, r.open_tickets) for r in roster] == [
        ("bob", "online", 0), ("ann", "offline", 2), ("zed", "online", 0),
    ]  # fmt: skip
    assert roster[1].free == 3


def test_status_capacity_and_skills_changes_are_audited_with_who_made_them(desk: Desk) -> None:
    desk.handoff.set_status(desk.ann, "away", by="lead.lee")
    desk.handoff.set_capacity(desk.ann, 8, by="lead.lee")
    desk.handoff.set_capacity(desk.ann, 8, by="lead.lee")  # no change: nothing to audit
    updated = desk.handoff.set_skills(desk.ann, ["billing"], by="lead.lee")
    assert (updated.status, updated.capacity, updated.skills) == ("away", 8, ("billing",))
    events = [(e.actor, e.action, e.details) for e in desk.handoff.audit(limit=3)]
    assert events == [
        ("lead.lee", "agent_skills_changed", {"agent": "ann", "from": [], "to": ["billing"]}),
        ("lead.lee", "agent_capacity_changed", {"agent": "ann", "from": 5, "to": 8}),
        ("lead.lee", "agent_status_changed", {"agent": "ann", "from": "offline", "to": "away"}),
    ]
    with pytest.raises(InvalidInput, match="status must be"):
        desk.handoff.set_status(desk.ann, "gone", by="lead.lee")
    with pytest.raises(AgentNotFound):
        desk.handoff.set_capacity(404, 3, by="lead.lee")


def test_a_lead_reassigns_an_open_ticket_within_the_new_holders_capacity(desk: Desk) -> None:
    ticket = desk.ticket_in("answered", agent_id=desk.ann)
    moved = desk.handoff.reassign(ticket.id, desk.bob, by="lead.lee")
    assert (moved.state, moved.agent_id) == ("answered", desk.bob)
    event = desk.handoff.audit(ticket_id=ticket.id, limit=1)[0]
    assert (event.actor, event.action, event.details["from_agent"], event.details["agent"]) == (
        "lead.lee", "reassigned", "ann", "bob",
    )  # fmt: skip
    with pytest.raises(Conflict, match="already held by Bob Okafor"):
        desk.handoff.reassign(ticket.id, desk.bob, by="lead.lee")
    desk.handoff.set_capacity(desk.ann, 0, by="lead.lee")
    with pytest.raises(Conflict, match="capacity is 0"):
        desk.handoff.reassign(ticket.id, desk.ann, by="lead.lee")
    with pytest.raises(AgentNotFound):
        desk.handoff.reassign(ticket.id, 404, by="lead.lee")
    assert desk.handoff.ticket(ticket.id).ticket.agent_id == desk.bob


def test_a_tickets_life_is_told_by_its_audit_trail(desk: Desk) -> None:
    ticket_id = desk.escalate()
    desk.clock.advance(minutes=2)
    desk.handoff.claim(ticket_id, desk.ann)
    desk.handoff.release(ticket_id, desk.ann)
    desk.handoff.take_next(desk.bob)
    desk.clock.advance(minutes=5)
    desk.answer(ticket_id, desk.bob, "Fixed now")
    desk.handoff.resolve(ticket_id, desk.bob)
    trail = desk.handoff.ticket(ticket_id).audit
    assert [(e.actor, e.action) for e in trail] == [
        ("bot", "created"), ("ann", "claimed"), ("ann", "released"), ("bob", "claimed"), ("bob", "replied"),
        ("bob", "answered"), ("bob", "resolved"),
    ]  # fmt: skip
    assert trail[0].at < trail[1].at < trail[4].at
    assert trail[4].details["text"] == "Fixed now ^BO"
    assert [e.id for e in desk.handoff.audit(ticket_id=ticket_id, limit=2)] == [trail[-1].id, trail[-2].id]


def test_the_shift_picture_counts_open_work_breaches_the_longest_wait_and_the_hourly_volume(desk: Desk) -> None:
    empty = desk.handoff.shift()
    assert (empty.open_tickets, empty.sla_breaches, empty.oldest_waiting) == (0, 0, None)
    assert empty.open_by_priority == {1: 0, 2: 0, 3: 0, 4: 0}

    earlier = desk.escalate(priority=2)  # 130 minutes before "now": outside both hours
    closed = desk.ticket_in("resolved")
    desk.clock.advance(minutes=40)
    desk.escalate(priority=4)  # in the hour before the last
    desk.clock.advance(minutes=50)
    desk.escalate(priority=1)
    desk.escalate(closed.conversation_id, priority=1)  # the customer is back: reopened, a new contact
    answered = desk.ticket_in("answered")
    desk.clock.advance(minutes=40)

    picture = desk.handoff.shift()
    assert picture.open_by_priority == {1: 2, 2: 1, 3: 1, 4: 1}
    assert picture.sla_breaches == 2  # past their 60-minute deadlines without an answer: the first two
    assert picture.oldest_waiting is not None and picture.oldest_waiting.id == earlier
    assert (picture.created_last_hour, picture.created_hour_before) == (3, 1)
    assert answered.id != picture.oldest_waiting.id


def _set_active(desk: Desk, agent_id: int, active: bool) -> None:
    with transaction(desk.engine) as conn:
        desk.handoff.set_agent_active(conn, agent_id, active, by="admin")


def test_a_disabled_agent_goes_offline_and_its_held_tickets_go_back_to_the_queue_audited(desk: Desk) -> None:
    desk.handoff.set_status(desk.ann, "online", by="lead.lee")
    claimed = desk.ticket_in("claimed", agent_id=desk.ann)
    answered = desk.ticket_in("answered", agent_id=desk.ann)
    bobs = desk.ticket_in("claimed", agent_id=desk.bob)

    _set_active(desk, desk.ann, False)

    ann = desk.handoff.agent(desk.ann)
    assert (ann.active, ann.status) == (False, "offline")
    for ticket in (claimed, answered):
        after = desk.handoff.ticket(ticket.id).ticket
        assert (after.state, after.agent_id, after.holder_id) == ("queued", None, None)
        event = desk.handoff.audit(ticket_id=ticket.id, limit=1)[0]
        assert (event.actor, event.action, event.details["from"], event.details["agent"]) == (
            "admin", "requeued", ticket.state, "ann",
        )  # fmt: skip
    assert desk.handoff.ticket(bobs.id).ticket.agent_id == desk.bob  # nobody else's tickets move
    disabled = desk.handoff.audit(limit=1)[0]
    assert (disabled.action, disabled.details["agent"], disabled.details["requeued"]) == (
        "agent_disabled", "ann", [claimed.id, answered.id],
    )  # fmt: skip


def test_nobody_can_give_a_disabled_agent_work_or_bring_it_online(desk: Desk) -> None:
    waiting = desk.escalate()
    _set_active(desk, desk.ann, False)
    with pytest.raises(Conflict, match="disabled"):
        desk.handoff.take_next(desk.ann)
    with pytest.raises(Conflict, match="disabled"):
        desk.handoff.claim(waiting, desk.ann)
    with pytest.raises(Conflict, match="Ann Brown \\(AB\\) is disabled"):
        desk.handoff.reassign(waiting, desk.ann, by="lead.lee")
    for status in ("online", "away"):
        with pytest.raises(Conflict, match="Ann Brown \\(AB\\) is disabled"):
            desk.handoff.set_status(desk.ann, status, by="lead.lee")
    assert desk.handoff.ticket(waiting).ticket.state == "queued"
    assert [r.agent.username for r in desk.handoff.roster()] == ["bob"]  # the shift, surge proposals, reassigning
    assert {r.agent.username for r in desk.handoff.roster(include_inactive=True)} == {"ann", "bob"}


def test_the_claim_itself_refuses_an_agent_disabled_after_it_was_read(desk: Desk) -> None:
    ticket_id = desk.escalate()
    with transaction(desk.engine) as conn:
        row = desk.handoff._ticket_row(conn, ticket_id)
        agent = desk.handoff._agent_row(conn, desk.ann)
        desk.handoff.set_agent_active(conn, desk.ann, False, by="admin")
        assert desk.handoff._claim_row(conn, row, agent, actor="ann", action="claimed") is None


def test_an_enabled_agent_can_be_given_work_again_and_stays_offline_until_set_online(desk: Desk) -> None:
    desk.handoff.set_status(desk.ann, "online", by="lead.lee")
    _set_active(desk, desk.ann, False)
    _set_active(desk, desk.ann, True)
    ann = desk.handoff.agent(desk.ann)
    assert (ann.active, ann.status) == (True, "offline")
    assert desk.handoff.audit(limit=1)[0].action == "agent_enabled"
    desk.escalate()
    assert desk.take(desk.ann).agent_id == desk.ann
    assert desk.handoff.set_status(desk.ann, "online", by="lead.lee").status == "online"
