"""Working whole conversations in a real browser: Move to DM ticket after ticket, a DM worked as a DM, the thread
before a "that didn't help" ticket, a draft edited before claiming, a customer's reply putting an answered ticket
back, and resolving a ticket that needs no reply."""

from __future__ import annotations

from datetime import UTC, datetime

from browser_support import PageProblems, Served, log_in
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.channel.models import outbox
from handoff import transaction


def _outbox_texts(served: Served) -> list[str]:
    with served.desk.engine.connect() as conn:
        return [str(text) for text in conn.execute(select(outbox.c.text).order_by(outbox.c.id)).scalars()]


def test_move_to_dm_on_ticket_after_ticket(page: Page, served: Served, problems: PageProblems) -> None:
    page.add_init_script("window.confirm = function () { return true; };")  # the agent confirms each time
    tickets = [
        served.desk.escalate(f"my number is 07700 90012{n} and my bill is wrong", customer_id=f"80{n}",
                             customer_handle=f"cust{n}", dm_handover=True)  # fmt: skip
        for n in range(4)  # more tickets than the tone guide has wordings for it
    ]
    log_in(page, served)
    for ticket_id in tickets:
        page.goto(f"{served.url}/tickets/{ticket_id}")
        page.click("#claim")
        page.click("text=Move to DM")
        expect(page.locator(".notice-success")).to_be_visible()
        expect(page.locator(".notice-error")).to_have_count(0)
    texts = _outbox_texts(served)
    assert len(texts) == 4 and len(set(texts)) == 4  # X refuses a text identical to a recent one
    assert all("DM" in text and text.endswith("^AB") for text in texts)
    problems.assert_none()


def test_a_dm_with_personal_data_is_answered_in_the_dm(page: Page, served: Served) -> None:
    ticket_id = served.desk.escalate("my account number is 12345678901, can you check my bill", source="dm",
                                     customer_handle="dm_dave")  # fmt: skip
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    expect(page.locator(".reply-label")).to_contain_text("Reply in the DM")
    expect(page.locator("text=Move to DM")).to_have_count(0)
    expect(page.locator("#dm-hint")).to_have_count(0)
    page.fill("#reply-body", "Thanks, account 12345678901 is on the standard plan: the bill is right.")
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")  # private: the number may be used
    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")
    assert _outbox_texts(served) == ["Thanks, account 12345678901 is on the standard plan: the bill is right. ^AB"]


def test_a_didnt_help_ticket_shows_the_question_and_the_bots_answer(page: Page, served: Served) -> None:
    desk = served.desk
    desk.bot_answered("7101", "how do I restart my hub?", "Switch the Hub off, wait 30 seconds, switch it on. ^bot")
    ticket_id = desk.escalate("that didn't help, still no internet", conversation_id="7101")
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    earlier = page.locator("#thread-before")
    expect(earlier).to_contain_text("how do I restart my hub?")
    expect(earlier).to_contain_text("Switch the Hub off")
    expect(page.locator(".thread[data-fingerprint]")).to_contain_text("that didn't help")


def test_an_edited_draft_survives_claim(page: Page, served: Served) -> None:
    draft = "Hi there! Pay by card or direct debit in the Kestrel app under Billing. ^bot"
    ticket_id = served.desk.escalate("can I pay my bill by card?", band="approve", draft_reply=draft)
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("text=Edit")
    edited = "Yes: pay by card in the Kestrel app under Billing, or set up a direct debit there."
    page.fill("#reply-body", edited)
    page.click("#claim")
    expect(page.locator("#send-reply")).to_be_enabled()
    expect(page.locator("#reply-body")).to_have_value(edited)
    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")
    assert _outbox_texts(served) == [edited + " ^AB"]


def test_a_customer_reply_reopens_the_answered_ticket(page: Page, served: Served) -> None:
    desk = served.desk
    ticket_id = desk.escalate("my router keeps rebooting")
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    page.fill("#reply-body", "Sorry about that. Please send us a DM and we'll look at the line.")
    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")
    conversation = desk.handoff.ticket(ticket_id).ticket.conversation_id
    with transaction(desk.engine) as conn:
        desk.handoff.add_customer_message(conn, conversation, tweet_id="1870000000000000009", author="maya_k",
                                          text="DM sent, thanks Ann", created_at=datetime.now(UTC))  # fmt: skip
    page.goto(f"{served.url}/queue")
    row = page.locator("table.queue tbody tr", has_text="DM sent, thanks Ann")
    expect(row).to_have_count(1)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    expect(page.locator("#resolve")).to_have_text("Resolve without reply")  # it owes a reply again
    assert desk.handoff.ticket(ticket_id).ticket.state == "claimed"


def test_resolve_without_a_reply(page: Page, served: Served) -> None:
    ticket_id = served.desk.escalate("you lot are brilliant, fastest broadband we've ever had")
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    page.click("text=Resolve without reply")
    expect(page).to_have_url(f"{served.url}/queue")
    expect(page.locator(".notice-success")).to_contain_text(f"Ticket {ticket_id} resolved")
    assert served.desk.handoff.ticket(ticket_id).ticket.state == "resolved" and _outbox_texts(served) == []
