"""X's reply restriction on the agent's ticket page: a reply X would refuse is not queued and the agent reads why and
what to do instead; a reply that failed shows its reason under it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from web_support import WebDesk, csrf_of, web_desk

from bot.channel.models import outbox
from bot.channel.replies import no_reply_reason
from handoff import transaction


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _claimed(desk: WebDesk, ticket_id: int) -> tuple[TestClient, str]:
    agent = desk.handoff.agent_by_username("ann")
    assert agent is not None
    desk.handoff.claim(ticket_id, agent.id)
    client = desk.logged_in("ann")
    return client, csrf_of(client)


def test_a_reply_to_a_keyword_hit_is_not_queued_and_the_agent_reads_why_and_what_instead(desk: WebDesk) -> None:
    ticket_id = desk.escalate("kestrel broadband down all day", source="search")
    client, csrf = _claimed(desk, ticket_id)
    page = client.get(f"/tickets/{ticket_id}").text  # said before the agent writes a word
    assert '<p class="notice notice-error" id="no-public-reply">X allows no reply here: @maya_k never' in page
    assert client.get(f"/api/tickets/{ticket_id}").json()["no_public_reply"].startswith("X allows no reply here")
    body = "Sorry to hear it, we are looking into it"
    response = client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": body, "channel": "public"})
    assert response.status_code == 409
    assert "X allows no reply here" in response.text and "@maya_k never mentioned us" in response.text
    assert "by DM if their DMs are open" in response.text and "a new tweet that mentions @maya_k" in response.text
    assert f">{body}</textarea>" in response.text  # the text is kept
    with desk.engine.connect() as conn:
        assert conn.execute(select(outbox)).all() == []
    # The reply box offers the DM instead, and sends by DM by default.
    assert "Reply by DM" in page
    response = client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": body})
    assert response.status_code == 303
    with desk.engine.connect() as conn:
        [row] = conn.execute(select(outbox)).all()
    assert row.target_tweet_id.startswith("dm-") and row.conversation_id == "dm-501" and row.state == "pending"


def test_a_failed_reply_shows_its_reason_under_it(desk: WebDesk) -> None:
    ticket_id = desk.escalate("@KestrelCare my bill is wrong")
    client, csrf = _claimed(desk, ticket_id)
    assert 'id="no-public-reply"' not in client.get(f"/tickets/{ticket_id}").text  # a mention may be answered
    response = client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": "Looking at it now"})
    assert response.status_code == 303
    reason = no_reply_reason("maya_k", "X refused it (HTTP 403): the author of that tweet did not mention or quote us")
    with transaction(desk.engine) as conn:  # as the sender records X's refusal
        row_id = conn.execute(select(outbox.c.id)).scalar_one()
        conn.execute(update(outbox).where(outbox.c.id == row_id).values(state="failed", last_error=reason))
        desk.handoff.mark_delivery(conn, row_id, "failed", None)
    page = client.get(f"/tickets/{ticket_id}").text
    assert "Not posted: X allows no reply here: X refused it (HTTP 403)" in page
    assert "Answer @maya_k by DM if their DMs are open" in page
    ticket = client.get(f"/api/tickets/{ticket_id}")  # the JSON view carries the same reason
    assert ticket.status_code == 200 and ticket.json()["messages"][-1]["failure"] == reason
