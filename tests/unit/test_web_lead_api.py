"""The team lead's JSON API (/api/lead) over the real app and HTTP, on SQLite and PostgreSQL: the shift picture the
lead view shows, the roster, status and capacity changes and reassignments (one ticket and several) checked in the
handoff queue and its audit, lock-outs, leads only, CSRF on every POST, and errors as the API's JSON."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from web_support import WebDesk, csrf_of, log_in, web_desk

from bot.channel.models import inbound_tweets
from bot.web.lead import LeadService
from handoff import transaction
from handoff.models import agents

_ids = itertools.count(1_895_000_000_000_000_000)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    """Each test runs on SQLite and, marked `postgres`, on PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


class Api:
    """A logged-in API client that sends the session's CSRF token with every POST."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = csrf_of(client)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})


@pytest.fixture
def lee(desk: WebDesk) -> Api:
    return Api(desk.logged_in("lee"))


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status and error["title"] and error["detail"]
    return error


def _lead(desk: WebDesk) -> LeadService:
    lead: LeadService = desk.app.state.lead
    return lead


def _agent_id(desk: WebDesk, username: str) -> int:
    agent = desk.handoff.agent_by_username(username)
    assert agent is not None
    return agent.id


def _inbound(desk: WebDesk, count: int, *, minutes_ago: float, band: str = "human", reason: str | None = None) -> None:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    with transaction(desk.engine) as conn:
        for _ in range(count):
            tweet_id = str(next(_ids))
            conn.execute(insert(inbound_tweets).values(
                tweet_id=tweet_id, source="mention", author_id="9", author_username="c", text="down again",
                conversation_id=tweet_id, created_at=at, fetched_at=at, state="done", attempts=1, band=band,
                ignore_reason=reason,
            ))  # fmt: skip


# ---------------------------------------------------------------- reading


def test_the_shift_is_what_the_lead_view_shows(desk: WebDesk, lee: Api) -> None:
    now = datetime.now(UTC)
    old = desk.escalate("waiting for ages", priority=2, created_at=now - timedelta(minutes=90))
    desk.escalate("fresh one", priority=1)
    _inbound(desk, 40, minutes_ago=10)
    _inbound(desk, 5, minutes_ago=80)
    _inbound(desk, 3, minutes_ago=5, band="ignore", reason="spam")
    desk.handoff.set_status(_agent_id(desk, "ann"), "online", by="test")
    on_call = desk.add_user("olu", "agent", "Olu On-Call", "OO", kind="on_call")
    assert on_call

    shift = lee.get("/api/lead/shift").json()
    picture = _lead(desk).shift()
    assert shift["open_by_priority"] == {"1": 1, "2": 1, "3": 0, "4": 0} and shift["open_total"] == 2
    assert (shift["waiting"], shift["breached"], shift["oldest_waiting_id"]) == (2, 1, old)
    assert shift["oldest_waiting_s"] >= 89 * 60
    assert shift["volume"]["last_hour"] == picture.volume.last_hour == 45  # 40 + 3 ignored + 2 escalated tweets
    assert shift["volume"]["hour_before"] == 5
    assert (shift["online"], shift["free_capacity"]) == (picture.online, picture.free_capacity) == (1, 5)
    assert shift["surge"]["active"] and shift["surge"]["reasons"] == picture.surge.reasons
    assert [a["username"] for a in shift["surge"]["bring_online"]] == ["olu"]
    assert shift["channel"]["ignored_today"] == [{"reason": "spam or off-topic", "count": 3}]
    assert shift["channel"]["worker_seen_s"] is None and shift["channel"]["worker_stale"]
    page = desk.logged_in("lee").get("/lead").text
    assert "Surge" in page and "Olu On-Call" in page  # the page shows the same surge


def test_the_roster_tickets_and_audit_are_the_lead_services(desk: WebDesk, lee: Api) -> None:
    ticket = desk.escalate("call me on 07700 900123 about my bill")
    ann = _agent_id(desk, "ann")
    desk.handoff.claim(ticket, ann)
    roster = lee.get("/api/lead/roster").json()["agents"]
    expected = _lead(desk).roster()
    assert [(a["username"], a["status"], a["capacity"], a["holding"], a["free"]) for a in roster] == [
        (row.agent.username, row.agent.status, row.agent.capacity, row.open_tickets, row.free) for row in expected
    ]
    assert next(a for a in roster if a["username"] == "ann")["holding"] == 1
    [listed] = lee.get("/api/lead/tickets").json()["tickets"]
    assert listed["id"] == ticket and listed["holder"]["username"] == "ann" and listed["state"] == "claimed"
    assert "07700" not in listed["latest_message"] and "[phone number]" in listed["latest_message"]
    events = lee.get("/api/lead/audit", limit=5).json()["events"]
    assert [(e["action"], e["ticket_id"]) for e in events] == [
        (e.action, e.ticket_id) for e in _lead(desk).audit(limit=5)
    ]
    _error(lee.get("/api/lead/audit", limit=0), 422)
    _error(lee.get("/api/lead/tickets", limit=5000), 422)


def test_lockouts_are_the_clients_that_reached_a_log_in_limit(desk: WebDesk, lee: Api) -> None:
    assert lee.get("/api/lead/lockouts").json() == {"lockouts": []}
    stranger = desk.client("203.0.113.9")
    for _ in range(5):
        log_in(stranger, "ann", "wrong password")
    [lockout] = lee.get("/api/lead/lockouts").json()["lockouts"]
    assert (lockout["client"], lockout["username"], lockout["failures"]) == ("203.0.113.9", "ann", 5)
    assert lockout["account_exists"] and lockout["waits_until"] is not None
    assert [x.client for x in desk.services.accounts.lockouts()] == ["203.0.113.9"]


# ---------------------------------------------------------------- changes


def test_status_and_capacity_change_as_on_the_page_and_are_audited(desk: WebDesk, lee: Api) -> None:
    bob = _agent_id(desk, "bob")
    away = lee.post(f"/api/lead/agents/{bob}/status", {"status": "away"})
    assert away.status_code == 200 and away.json()["status"] == "away"
    smaller = lee.post(f"/api/lead/agents/{bob}/capacity", {"capacity": 2})
    assert smaller.status_code == 200 and smaller.json()["capacity"] == 2
    with desk.engine.connect() as conn:
        row = conn.execute(select(agents.c.status, agents.c.capacity).where(agents.c.id == bob)).one()
    assert (row.status, row.capacity) == ("away", 2)
    audit = [(e.actor, e.action, e.details.get("to")) for e in desk.handoff.audit(limit=5)]
    assert ("lee", "agent_status_changed", "away") in audit and ("lee", "agent_capacity_changed", 2) in audit

    for body in ({"status": "asleep"}, {}, {"status": None}):
        _error(lee.post(f"/api/lead/agents/{bob}/status", body), 422)
    for body in ({"capacity": 101}, {"capacity": -1}, {"capacity": "many"}):
        _error(lee.post(f"/api/lead/agents/{bob}/capacity", body), 422)
    assert "no agent 999" in _error(lee.post("/api/lead/agents/999/status", {"status": "online"}), 404)["detail"]
    _error(lee.post(f"/api/lead/agents/{2**63}/status", {"status": "online"}), 422)
    assert desk.handoff.agent(bob).status == "away" and desk.handoff.agent(bob).capacity == 2


def test_a_lead_reassigns_one_ticket_and_is_told_what_the_queue_refuses(desk: WebDesk, lee: Api) -> None:
    ticket = desk.escalate("please help")
    ann, bob = _agent_id(desk, "ann"), _agent_id(desk, "bob")
    desk.handoff.claim(ticket, ann)
    moved = lee.post(f"/api/lead/tickets/{ticket}/reassign", {"agent_id": bob})
    assert moved.status_code == 200 and moved.json()["holder"]["username"] == "bob"
    assert desk.handoff.ticket(ticket).holder.username == "bob"  # type: ignore[union-attr]
    event = desk.handoff.audit(limit=1)[0]
    assert (event.actor, event.action, event.details.get("from_agent")) == ("lee", "reassigned", "ann")

    assert "already held" in _error(lee.post(f"/api/lead/tickets/{ticket}/reassign", {"agent_id": bob}), 409)["detail"]
    desk.handoff.set_capacity(ann, 0, by="test")
    full = _error(lee.post(f"/api/lead/tickets/{ticket}/reassign", {"agent_id": ann}), 409)
    assert "capacity" in full["detail"]
    _error(lee.post("/api/lead/tickets/999999/reassign", {"agent_id": bob}), 404)
    _error(lee.post(f"/api/lead/tickets/{ticket}/reassign", {"agent_id": 999}), 404)
    _error(lee.post(f"/api/lead/tickets/{ticket}/reassign", {}), 422)
    _error(lee.post(f"/api/lead/tickets/{ticket}/reassign", {"agent_id": 2**63}), 422)
    assert desk.handoff.ticket(ticket).holder.username == "bob"  # type: ignore[union-attr]


def test_an_outages_tickets_move_at_once_within_capacity_and_what_cannot_is_named(desk: WebDesk, lee: Api) -> None:
    tickets = [desk.escalate(f"no broadband in Leeds {n}", customer_id=f"70{n}") for n in range(4)]
    bob = _agent_id(desk, "bob")
    desk.handoff.set_capacity(bob, 3, by="test")
    result = lee.post("/api/lead/tickets/reassign", {"agent_id": bob, "ticket_ids": [*tickets, tickets[0]]})
    assert result.status_code == 200
    body = result.json()
    assert body["moved"] == tickets[:3] and body["agent"]["username"] == "bob"
    [refused] = body["refused"]
    assert refused["ticket_id"] == tickets[3] and refused["status"] == 409 and "capacity" in refused["detail"]
    holders = [desk.handoff.ticket(t).holder for t in tickets]
    assert [h.username if h else None for h in holders] == ["bob", "bob", "bob", None]
    assert sum(1 for e in desk.handoff.audit(limit=20) if e.action == "reassigned" and e.actor == "lee") == 3

    unknown = lee.post("/api/lead/tickets/reassign", {"agent_id": _agent_id(desk, "ann"), "ticket_ids": [999999]})
    assert unknown.json()["moved"] == [] and unknown.json()["refused"][0]["status"] == 404
    _error(lee.post("/api/lead/tickets/reassign", {"agent_id": 999, "ticket_ids": [tickets[3]]}), 404)
    assert desk.handoff.ticket(tickets[3]).holder is None  # nothing moved for an unknown agent
    for body in ({"agent_id": bob, "ticket_ids": []}, {"agent_id": bob, "ticket_ids": list(range(1, 202))},
                 {"agent_id": bob, "ticket_ids": [2**63]}, {"agent_id": bob}, {"ticket_ids": [1]}):  # fmt: skip
        _error(lee.post("/api/lead/tickets/reassign", body), 422)


# ---------------------------------------------------------------- who may call it


def test_only_leads_with_the_csrf_token_may_use_it(desk: WebDesk, lee: Api) -> None:
    bob = _agent_id(desk, "bob")
    ticket = desk.escalate("please help")
    calls = [("GET", "/api/lead/shift", None), ("GET", "/api/lead/roster", None), ("GET", "/api/lead/lockouts", None),
             ("POST", f"/api/lead/agents/{bob}/status", {"status": "offline"}),
             ("POST", f"/api/lead/agents/{bob}/capacity", {"capacity": 0}),
             ("POST", f"/api/lead/tickets/{ticket}/reassign", {"agent_id": bob}),
             ("POST", "/api/lead/tickets/reassign", {"agent_id": bob, "ticket_ids": [ticket]})]  # fmt: skip
    for username in ("ann", "eve"):
        other = Api(desk.logged_in(username))
        for method, path, body in calls:
            refused = other.get(path) if method == "GET" else other.post(path, body)
            assert "role" in _error(refused, 403)["detail"], (username, path)
    for method, path, body in calls:
        assert desk.client().request(method, path, json=body).status_code == 401
        if method == "POST":
            for headers in ({}, {"X-CSRF-Token": "forged"}):
                forged = lee.client.post(path, json=body, headers=headers)
                assert _error(forged, 403)["title"] == "Form out of date", path
    agent = desk.handoff.agent(bob)
    assert (agent.status, agent.capacity) == ("offline", 5) and desk.handoff.ticket(ticket).holder is None


def test_the_openapi_lists_the_leads_operations_with_summaries(desk: WebDesk, lee: Api) -> None:
    paths = lee.get("/api/openapi.json").json()["paths"]
    wanted = {
        ("get", "/api/lead/shift"), ("get", "/api/lead/roster"), ("get", "/api/lead/tickets"),
        ("get", "/api/lead/audit"), ("get", "/api/lead/lockouts"), ("post", "/api/lead/agents/{agent_id}/status"),
        ("post", "/api/lead/agents/{agent_id}/capacity"), ("post", "/api/lead/tickets/{ticket_id}/reassign"),
        ("post", "/api/lead/tickets/reassign"),
    }  # fmt: skip
    for method, path in wanted:
        operation = paths[path][method]
        assert operation["summary"] and operation["tags"] == ["team lead"], (method, path)
        assert {"403", "404", "409", "422"} <= set(operation["responses"]), (method, path)
    status = paths["/api/lead/agents/{agent_id}/status"]["post"]["parameters"][0]["schema"]
    assert status["minimum"] == 1 and status["maximum"] == 2**63 - 1
    assert "/api/lead/tickets/reassign" in lee.client.get("/api/docs").text
