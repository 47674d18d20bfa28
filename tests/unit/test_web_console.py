"""The agent console through its pages and its JSON API: the queue, take next, the ticket page, replies signed by
the server and queued in the outbox, drafts of the approve band, move to DM, resolve, return to bot, KB
suggestions and the live tone check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from web_support import WebDesk, csrf_of, web_desk

from bot.channel.models import outbox
from handoff import transaction


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    """Each test runs on SQLite and, marked `postgres`, on PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _outbox(desk: WebDesk) -> list[dict[str, object]]:
    with desk.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(outbox).order_by(outbox.c.id))]


def _take(desk: WebDesk, username: str = "ann") -> tuple[object, str, int]:
    client = desk.logged_in(username)
    csrf = csrf_of(client)
    response = client.post("/queue/take-next", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"].startswith("/tickets/")
    return client, csrf, int(response.headers["location"].rsplit("/", 1)[1])


def test_the_queue_shows_priority_reasons_holder_and_viewers(desk: WebDesk) -> None:
    urgent = desk.escalate("Whole street is offline", priority=1, reasons=["an outage report", "many reports"])
    desk.escalate("just a question", priority=4, reasons=["no FAQ entry is close"])
    bob = desk.logged_in("bob")
    bob.get(f"/tickets/{urgent}")  # Bob is looking at it
    page = desk.logged_in("ann").get("/queue")
    assert page.status_code == 200
    html = page.text
    assert html.index("Whole street is offline") < html.index("just a question")  # most urgent first
    assert "P1" in html and "an outage report" in html and "no FAQ entry is close" in html
    assert "👁 BO" in html
    api = desk.logged_in("lee").get("/api/queue").json()["tickets"]
    assert [t["id"] for t in api][0] == urgent
    assert api[0]["viewers"] == ["BO"] and api[0]["sla_left_s"] > 0 and api[0]["holder"] is None


def test_take_next_claims_the_most_urgent_ticket(desk: WebDesk) -> None:
    desk.escalate(priority=3)
    urgent = desk.escalate(priority=1)
    client, _, taken = _take(desk)
    assert taken == urgent
    assert desk.handoff.ticket(urgent).ticket.state == "claimed"
    page = client.get(f"/tickets/{urgent}")
    assert "Send reply" in page.text and "Release" in page.text and "^AB" in page.text


def test_take_next_with_nothing_waiting_says_so(desk: WebDesk) -> None:
    client = desk.logged_in("ann")
    response = client.post("/queue/take-next", data={"csrf_token": csrf_of(client)})
    assert response.headers["location"] == "/queue"
    assert "Nothing is waiting" in client.get("/queue").text


def test_a_reply_is_signed_by_the_server_and_queued_in_the_outbox(desk: WebDesk) -> None:
    ticket_id = desk.escalate("how do I reset my hub?")
    client, csrf, _ = _take(desk)
    tweet_id = desk.handoff.ticket(ticket_id).messages[0].tweet_id
    response = client.post(
        f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": "Hold the reset button for 15 seconds. ^AB"}
    )
    assert response.status_code == 303
    [row] = _outbox(desk)
    assert row["text"] == "Hold the reset button for 15 seconds. ^AB"  # a typed own signature is not doubled
    assert row["author"] == "AB" and row["target_tweet_id"] == tweet_id and row["state"] == "pending"
    detail = desk.handoff.ticket(ticket_id)
    assert detail.ticket.state == "answered" and detail.messages[-1].text == row["text"]
    assert "Reply queued" in client.get(f"/tickets/{ticket_id}").text


def test_a_reply_signed_with_someone_elses_initials_is_refused_and_kept_in_the_box(desk: WebDesk) -> None:
    ticket_id = desk.escalate()
    client, csrf, _ = _take(desk)
    body = "Sorted it for you ^BO"
    response = client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": body})
    assert response.status_code == 409
    assert "Not sent" in response.text and "^BO" in response.text
    assert f">{body}</textarea>" in response.text
    assert _outbox(desk) == []


def test_personal_data_in_a_reply_is_refused(desk: WebDesk) -> None:
    ticket_id = desk.escalate()
    client, _, _ = _take(desk)
    csrf = csrf_of(client)
    response = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": "Call us back on 07700 900123 please"},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert response.status_code == 409
    assert "personal data is never posted in public" in response.json()["error"]["detail"]
    assert _outbox(desk) == []


CARD = "4111 1111 1111 1111"


def test_a_reply_with_a_card_number_is_refused_with_the_reason_and_nothing_is_queued(desk: WebDesk) -> None:
    ticket_id = desk.escalate(f"refund to my card {CARD} please")
    client, csrf, _ = _take(desk)
    body = f"Refunded to {CARD}, it shows in 3 days"
    page = client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": body})
    assert page.status_code == 409
    reason = "Your reply contains a payment card number: personal data is never posted in public. Move to DM."
    assert reason in page.text
    api = client.post(f"/api/tickets/{ticket_id}/reply", json={"text": body}, headers={"X-CSRF-Token": csrf_of(client)})
    assert api.status_code == 409 and api.json()["error"]["detail"] == f"Not sent: {reason}"
    assert _outbox(desk) == []
    assert desk.handoff.ticket(ticket_id).ticket.state != "answered"
    check = client.post("/api/tone-check", json={"text": body, "ticket_id": ticket_id},
                        headers={"X-CSRF-Token": csrf_of(client)}).json()  # fmt: skip
    assert not check["ok"] and [v["message"] for v in check["violations"]] == [reason]


def test_a_dm_reply_may_carry_contact_details_but_never_card_details(desk: WebDesk) -> None:
    ticket_id = desk.escalate("my number changed, and I paid by card", source="dm")
    client, _, _ = _take(desk)
    csrf = csrf_of(client)
    refused = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": f"We have card {CARD} on file"},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert refused.status_code == 409
    assert "payment card number" in refused.json()["error"]["detail"]
    assert "not even in a DM" in refused.json()["error"]["detail"]
    assert _outbox(desk) == []
    sent = client.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": "We'll call you on 07700 900123 at 3pm"},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    [row] = _outbox(desk)
    assert "07700 900123" in str(row["text"]) and str(row["target_tweet_id"]).startswith("dm-")


def test_the_queue_preview_leaves_personal_data_out(desk: WebDesk) -> None:
    desk.escalate(f"charged twice on {CARD}, my name is Jane Smith, call +49 30 1234567")
    client = desk.logged_in("ann")
    html = client.get("/queue").text
    assert "[card number]" in html and "[name]" in html and "[phone number]" in html
    assert "4111" not in html and "Jane Smith" not in html and "1234567" not in html
    [item] = client.get("/api/queue").json()["tickets"]
    assert item["preview"] == "charged twice on [card number], my name is [name], call [phone number]"


def test_only_the_holder_may_reply(desk: WebDesk) -> None:
    ticket_id = desk.escalate()
    _take(desk, "ann")
    bob = desk.logged_in("bob")
    response = bob.post(
        f"/api/tickets/{ticket_id}/reply", json={"text": "I'll take this one"}, headers={"X-CSRF-Token": csrf_of(bob)}
    )
    assert response.status_code == 409 and "Claim the ticket" in response.json()["error"]["detail"]
    claim = bob.post(f"/api/tickets/{ticket_id}/claim", headers={"X-CSRF-Token": csrf_of(bob)})
    assert claim.status_code == 409 and "Ann Brown" in claim.json()["error"]["detail"]
    assert _outbox(desk) == []


def test_approving_a_draft_sends_it_signed_by_the_approving_agent(desk: WebDesk) -> None:
    draft = "Hi there! Hold the reset button for 15 seconds. ^bot"
    ticket_id = desk.escalate("reset my hub pls", band="approve", draft_reply=draft, reasons=["FAQ match to approve"])
    client = desk.logged_in("ann")
    page = client.get(f"/tickets/{ticket_id}")
    assert "Approve and send" in page.text
    response = client.post(f"/tickets/{ticket_id}/approve-draft", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 303
    [row] = _outbox(desk)
    assert row["text"] == "Hi there! Hold the reset button for 15 seconds. ^AB"
    assert desk.handoff.ticket(ticket_id).ticket.state == "answered"
    assert "Approve and send" not in client.get(f"/tickets/{ticket_id}").text
    again = client.post(f"/api/tickets/{ticket_id}/approve-draft", headers={"X-CSRF-Token": csrf_of(client)})
    assert again.status_code == 409 and "not sent again" in again.json()["error"]["detail"]
    assert len(_outbox(desk)) == 1


def test_editing_a_draft_puts_it_in_the_reply_box_without_the_bot_signature(desk: WebDesk) -> None:
    ticket_id = desk.escalate(band="approve", draft_reply="Pay in the app under Billing. ^bot")
    page = desk.logged_in("ann").get(f"/tickets/{ticket_id}?edit=1")
    assert ">Pay in the app under Billing.</textarea>" in page.text


def test_rejecting_a_draft_leaves_a_human_ticket(desk: WebDesk) -> None:
    ticket_id = desk.escalate(band="approve", draft_reply="Pay in the app under Billing. ^bot")
    client, csrf, _ = _take(desk)
    assert client.post(f"/tickets/{ticket_id}/reject-draft", data={"csrf_token": csrf}).status_code == 303
    ticket = desk.handoff.ticket(ticket_id).ticket
    assert ticket.draft_reply is None and ticket.band == "human"
    assert "Approve and send" not in client.get(f"/tickets/{ticket_id}").text


def test_move_to_dm_posts_the_tone_guides_invitation(desk: WebDesk) -> None:
    ticket_id = desk.escalate("my account number is KT-48213907 and I was charged twice", dm_handover=True)
    client, csrf, _ = _take(desk)
    assert "has personal details" in client.get(f"/tickets/{ticket_id}").text
    assert client.post(f"/tickets/{ticket_id}/move-to-dm", data={"csrf_token": csrf}).status_code == 303
    [row] = _outbox(desk)
    assert "DM" in str(row["text"]) and str(row["text"]).endswith("^AB")
    assert "48213907" not in str(row["text"])


def test_move_to_dm_works_on_ticket_after_ticket_without_repeating_a_text(desk: WebDesk) -> None:
    tickets = [
        desk.escalate(f"my number is 07700 90012{n}, why was I charged twice?", customer_id=f"90{n}",
                      customer_handle=f"customer{n}", dm_handover=True)
        for n in range(5)
    ]  # fmt: skip
    client, csrf, _ = _take(desk)
    for ticket_id in tickets:
        client.post(f"/tickets/{ticket_id}/claim", data={"csrf_token": csrf})
        assert client.post(f"/tickets/{ticket_id}/move-to-dm", data={"csrf_token": csrf}).status_code == 303
    texts = [str(row["text"]) for row in _outbox(desk)]
    assert len(texts) == len(tickets) and len(set(texts)) == len(texts)  # X refuses a repeated text


def test_a_dm_ticket_is_answered_in_the_dm_and_cannot_be_moved_to_dm(desk: WebDesk) -> None:
    ticket_id = desk.escalate("my account number is 12345678901", source="dm")
    client, csrf, _ = _take(desk)
    page = client.get(f"/tickets/{ticket_id}").text
    assert "Reply in the DM" in page and "Reply in public" not in page and "/move-to-dm" not in page
    refused = client.post(f"/api/tickets/{ticket_id}/move-to-dm", headers={"X-CSRF-Token": csrf})
    assert refused.status_code in (400, 409) and "already a direct message" in refused.text
    assert _outbox(desk) == []


def test_a_ticket_that_needs_no_reply_is_resolved_without_one(desk: WebDesk) -> None:
    ticket_id = desk.escalate("you lot are brilliant, best broadband we've had")
    client, csrf, _ = _take(desk)
    assert "Resolve without reply" in client.get(f"/tickets/{ticket_id}").text
    assert client.post(f"/tickets/{ticket_id}/resolve", data={"csrf_token": csrf}).headers["location"] == "/queue"
    assert desk.handoff.ticket(ticket_id).ticket.state == "resolved" and _outbox(desk) == []


def test_a_customer_reply_to_an_answered_ticket_puts_it_back_to_its_holder(desk: WebDesk) -> None:
    ticket_id = desk.escalate()
    client, csrf, _ = _take(desk)
    client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": "Sorry about that, checking now."})
    assert desk.handoff.ticket(ticket_id).ticket.state == "answered"
    ticket = desk.handoff.ticket(ticket_id).ticket
    desk.escalate("DM sent, thanks Ann", conversation_id=ticket.conversation_id)
    after = desk.handoff.ticket(ticket_id).ticket
    assert after.state == "claimed" and after.agent_id == ticket.agent_id and after.waiting_since is not None
    assert "Resolve without reply" in client.get(f"/tickets/{ticket_id}").text


def test_resolve_after_answering_and_return_to_bot(desk: WebDesk) -> None:
    first = desk.escalate()
    client, csrf, _ = _take(desk)
    client.post(f"/tickets/{first}/reply", data={"csrf_token": csrf, "body": "All fixed now, thanks for waiting."})
    assert client.post(f"/tickets/{first}/resolve", data={"csrf_token": csrf}).headers["location"] == "/queue"
    assert desk.handoff.ticket(first).ticket.state == "resolved"

    second = desk.escalate(customer_id="777", customer_handle="sam")
    api = client.post(f"/api/tickets/{second}/return-to-bot", headers={"X-CSRF-Token": csrf})
    assert api.json() == {"ticket_id": second, "state": "returned_to_bot", "holder": None}


def test_the_ticket_page_shows_the_thread_earlier_contacts_reasons_and_audit(desk: WebDesk) -> None:
    old = desk.escalate("first problem last week")
    client, csrf, _ = _take(desk)
    client.post(f"/tickets/{old}/reply", data={"csrf_token": csrf, "body": "Sorted, have a good day."})
    client.post(f"/tickets/{old}/resolve", data={"csrf_token": csrf})
    new = desk.escalate("still broken!", reasons=["the customer is angry"])
    page = client.get(f"/tickets/{new}").text
    assert "still broken!" in page and "the customer is angry" in page
    assert f'href="/tickets/{old}"' in page  # an earlier contact of the same customer
    detail = client.get(f"/api/tickets/{new}").json()
    assert [e["id"] for e in detail["earlier"]] == [old]
    assert detail["audit"] and detail["messages"][0]["text"] == "still broken!"


def test_a_didnt_help_ticket_shows_the_question_and_the_bots_answer_before_it(desk: WebDesk) -> None:
    desk.bot_answered("7001", "how do I restart my hub?", "Switch the Hub off, wait 30 seconds, switch it on. ^bot")
    ticket_id = desk.escalate("thanks but that didn't help, still no internet", conversation_id="7001")
    client, _, _ = _take(desk)
    page = client.get(f"/tickets/{ticket_id}").text
    earlier = page.split('id="thread-before"', 1)[1].split("</section>", 1)[0]
    assert earlier.index("how do I restart my hub?") < earlier.index("Switch the Hub off")
    detail = client.get(f"/api/tickets/{ticket_id}").json()
    assert [(m["direction"], m["author"]) for m in detail["thread_before"]] == [("in", "maya_k"), ("out", "bot")]
    assert [m["text"] for m in detail["messages"]] == ["thanks but that didn't help, still no internet"]


def test_suggestions_come_from_the_published_faq_and_insert_without_the_signature(desk: WebDesk) -> None:
    ticket_id = desk.escalate("how do I reset my hub 4 router?")
    client, _, _ = _take(desk)
    suggestions = client.get(f"/api/tickets/{ticket_id}/suggestions").json()["suggestions"]
    assert suggestions[0]["slug"] == "reset-hub"
    assert "reset button" in suggestions[0]["insert_text"] and "^AB" not in suggestions[0]["insert_text"]
    page = client.get(f"/tickets/{ticket_id}?insert={suggestions[0]['entry_id']}").text
    assert suggestions[0]["insert_text"] in page.split("<textarea", 1)[1].split("</textarea>", 1)[0]
    assert 'data-insert-text="' in page


def test_the_tone_check_endpoint_reports_the_signed_text_and_violations(desk: WebDesk) -> None:
    ticket_id = desk.escalate()
    client = desk.logged_in("ann")
    csrf = csrf_of(client)
    ok = client.post("/api/tone-check", json={"text": "Sorry about that, we're on it.", "ticket_id": ticket_id},
                     headers={"X-CSRF-Token": csrf}).json()  # fmt: skip
    assert ok["ok"] and ok["text"] == "Sorry about that, we're on it. ^AB" and ok["length"] == len(ok["text"])
    bad = client.post("/api/tone-check", json={"text": "WHY IS THIS SO HARD " * 20},
                      headers={"X-CSRF-Token": csrf}).json()  # fmt: skip
    assert {v["code"] for v in bad["violations"]} >= {"too_long", "shouting"}


def test_a_missing_ticket_is_a_clear_404(desk: WebDesk) -> None:
    client = desk.logged_in("ann")
    assert client.get("/tickets/999").status_code == 404
    response = client.get("/api/tickets/999")
    assert response.status_code == 404 and response.json()["error"]["title"] == "Not found"


def test_a_lead_can_work_the_queue_but_an_editor_cannot(desk: WebDesk) -> None:
    desk.escalate()
    _take(desk, "lee")
    editor = desk.logged_in("eve")
    assert editor.get("/queue").status_code == 403
    assert editor.get("/").status_code == 200


def test_the_openapi_description_lists_the_api_and_needs_a_log_in(desk: WebDesk) -> None:
    assert desk.client().get("/api/openapi.json").status_code == 401
    schema = desk.logged_in("eve").get("/api/openapi.json").json()
    assert "/api/tickets/{ticket_id}/reply" in schema["paths"] and "/queue" not in schema["paths"]
    assert "/api/queue" in desk.logged_in("eve").get("/api/docs").text


def test_delivery_of_a_reply_shows_in_the_thread(desk: WebDesk) -> None:
    ticket_id = desk.escalate()
    client, csrf, _ = _take(desk)
    client.post(f"/tickets/{ticket_id}/reply", data={"csrf_token": csrf, "body": "On it, one moment please."})
    [row] = _outbox(desk)
    with transaction(desk.engine) as conn:
        desk.handoff.mark_delivery(conn, int(row["id"]), "sent", "1999")  # type: ignore[call-overload]
    assert "delivery-sent" in client.get(f"/tickets/{ticket_id}").text


def test_queue_views_narrow_the_queue(desk: WebDesk) -> None:
    mine = desk.escalate("mine")
    desk.escalate("waiting one")
    _take(desk, "ann")
    late = desk.escalate("late one", created_at=datetime.now(UTC) - timedelta(hours=3))
    client = desk.logged_in("ann")
    ids = {view: [t["id"] for t in client.get(f"/api/queue?view={view}").json()["tickets"]]
           for view in ("all", "waiting", "mine", "breached")}  # fmt: skip
    assert ids["mine"] == [mine] and mine not in ids["waiting"] and late in ids["breached"]
    assert len(ids["all"]) == 3 and ids["breached"] == [late]
    page = client.get("/queue?view=mine").text
    assert 'aria-current="page"><strong>1</strong> yours' in page
    assert client.get("/api/queue?view=nonsense").status_code == 409


def test_a_broken_knowledge_base_leaves_the_ticket_page_working(desk: WebDesk) -> None:
    def broken() -> object:
        raise OSError("the embedding model is missing")

    desk.services.console._knowledge_base = broken
    ticket_id = desk.escalate("how do I reset my hub 4 router?")
    page = desk.logged_in("ann").get(f"/tickets/{ticket_id}")
    assert page.status_code == 200 and "No FAQ entry is close to this message." in page.text


def test_search_finds_tickets_by_number_handle_words_state_agent_and_date(desk: WebDesk) -> None:
    old = desk.escalate("my router keeps rebooting 50% of the time", customer_handle="maya_k")
    client, csrf, _ = _take(desk)  # ann takes the most urgent: it is `old`, the only one so far
    client.post(f"/tickets/{old}/reply", data={"csrf_token": csrf, "body": "Sorry, checking the line now."})
    client.post(f"/tickets/{old}/resolve", data={"csrf_token": csrf})
    other = desk.escalate("can I pay my bill by card?", customer_id="777", customer_handle="li_wei", skill="billing")

    def ids(**params: str) -> list[int]:
        response = client.get("/api/search", params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["tickets"]]

    assert ids(q=f"#{old}") == [old] and ids(q=str(other)) == [other]
    assert ids(q="@li_") == [other] and ids(q="ROUTER keeps") == [old]  # words, any case, closed tickets too
    assert ids(q="50%") == [old] and ids(q="%") == [old]  # % is a character, not a wildcard
    assert ids(state="closed") == [old] and ids(state="open") == [other] and ids(state="resolved") == [old]
    assert ids(skill="billing") == [other]
    assert ids(agent="AB") == [old] and ids(agent="ann", state="open") == []  # the agent who handled it
    today = datetime.now(UTC).date().isoformat()
    assert set(ids(since=today, until=today)) == {old, other} and ids(until="2000-01-01") == []
    assert client.get("/api/search", params={"state": "lost"}).status_code in (400, 409, 422)
    page = client.get("/search", params={"q": "router"}).text
    assert f'href="/tickets/{old}"' in page and f'href="/tickets/{other}"' not in page
    assert "is not a date" in client.get("/search", params={"since": "yesterday"}).text


def test_the_event_stream_sends_the_queue_counts_and_the_newest_message_on_my_tickets(desk: WebDesk) -> None:
    ticket_id = desk.escalate("my broadband is down")
    client, _, _ = _take(desk)
    desk.escalate("and my tv box too", customer_id="888", customer_handle="sam")
    response = client.get("/api/events", params={"once": "true"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    [data] = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    state = json.loads(data)
    assert state["counts"]["waiting"] == 1 and state["counts"]["mine"] == 1
    assert state["newest_on_mine"]["ticket_id"] == ticket_id
    assert desk.client().get("/api/events", params={"once": "true"}).status_code == 401


def test_macros_are_saved_tone_checked_filled_in_and_shared_only_by_leads(desk: WebDesk) -> None:
    ticket_id = desk.escalate("is the network down in Leeds?", customer_id="909", customer_handle="leeds_lad")
    client, csrf, _ = _take(desk)  # ann, an agent
    headers = {"X-CSRF-Token": csrf}
    saved = client.post("/api/macros", headers=headers, json={"title": "Status page",
                        "body": "Sorry {customer}, live updates are on our status page. {agent}"})  # fmt: skip
    assert saved.status_code == 201, saved.text
    for body, words in (
        ("We will NEVER ask for your password!!", "capitals"),
        ("Call us on 07700 900123 {customer}", "personal data"),
        ("Hello {name}", "Unknown placeholder {name}"),
    ):
        refused = client.post("/api/macros", headers=headers, json={"title": "x", "body": body})
        assert refused.status_code == 409 and words in refused.text, body
    shared = client.post("/api/macros", headers=headers, json={"title": "t", "body": "Hi {customer}", "shared": True})
    assert shared.status_code == 409 and "Only a lead" in shared.text
    lead = desk.logged_in("lee")
    lead_csrf = csrf_of(lead)
    team = lead.post("/api/macros", headers={"X-CSRF-Token": lead_csrf},
                     json={"title": "Thanks", "body": "Thanks for your patience, {customer}.", "shared": True})
    assert team.status_code == 201
    assert [m["title"] for m in client.get("/api/macros").json()["macros"]] == ["Status page", "Thanks"]

    page = client.get(f"/tickets/{ticket_id}").text
    assert "Sorry @leeds_lad, live updates are on our status page. Ann" in page  # filled in for this ticket
    other = desk.logged_in("bob")
    assert [m["title"] for m in other.get("/api/macros").json()["macros"]] == ["Thanks"]  # not ann's own
    refused = other.post(f"/api/macros/{saved.json()['id']}/delete", headers={"X-CSRF-Token": csrf_of(other)})
    assert refused.status_code == 409
    assert client.post(f"/api/macros/{saved.json()['id']}/delete", headers=headers).status_code == 200


def test_activity_is_worked_out_once_for_all_of_an_agents_open_pages(desk: WebDesk) -> None:
    console = desk.services.console
    account = desk.services.accounts.by_username("ann")
    assert account is not None
    calls = []
    real = console._current_activity

    def counted(who: object) -> dict[str, object]:
        calls.append(who)
        return real(who)  # type: ignore[arg-type]

    console._current_activity = counted  # type: ignore[method-assign]
    first, second = console.activity(account), console.activity(account)  # two pages, the same second
    assert first == second and len(calls) == 1
