"""The agent console in a real browser: log in, take the next ticket, insert a KB suggestion, watch the live tone
check, send the reply (it lands in the outbox signed with the agent's initials), approve a draft, resolve."""

from __future__ import annotations

from datetime import UTC, datetime

from browser_support import Served, log_in
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.channel.models import outbox
from handoff import transaction

SCREENSHOTS = "/tmp"


def _outbox_texts(served: Served) -> list[str]:
    with served.desk.engine.connect() as conn:
        return [str(text) for text in conn.execute(select(outbox.c.text).order_by(outbox.c.id)).scalars()]


def test_log_in_take_next_insert_a_suggestion_and_send_the_reply(page: Page, served: Served) -> None:
    desk = served.desk
    desk.escalate("my broadband keeps dropping every evening, third complaint!!", priority=2, customer_handle="tom_r",
                  reasons=["an angry complaint", "asked for a human"])  # fmt: skip
    ticket_id = desk.escalate("@KestrelCare how do I reset my hub 4 router to factory settings?", priority=1,
                              reasons=["no FAQ answer is certain enough"])  # fmt: skip
    desk.escalate("can I pay my bill by card?", priority=4, customer_handle="li_wei", reasons=["low confidence"])

    log_in(page, served)
    expect(page).to_have_url(f"{served.url}/queue")
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    page.screenshot(path=f"{SCREENSHOTS}/carebot-queue.png", full_page=True)

    page.click("#take-next")
    expect(page).to_have_url(f"{served.url}/tickets/{ticket_id}")
    expect(page.locator(".thread")).to_contain_text("reset my hub 4 router")
    suggestion = page.locator(".suggestion").first
    expect(suggestion).to_contain_text("How do I reset my Hub 4 router?")

    suggestion.locator("a.insert").click()
    box = page.locator("#reply-body")
    inserted = box.input_value()
    assert "Hold the reset button" in inserted and "^AB" not in inserted
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")
    expect(page.locator("#tone-report")).to_contain_text(inserted + " ^AB")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-ticket.png", full_page=True)

    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")
    assert _outbox_texts(served) == [inserted + " ^AB"]
    detail = desk.handoff.ticket(ticket_id)
    assert detail.ticket.state == "answered" and detail.messages[-1].text == inserted + " ^AB"
    expect(page.locator(".msg-out")).to_contain_text(inserted + " ^AB")
    expect(page.locator(".msg-out .delivery")).to_have_text("pending")

    page.click("#resolve")
    expect(page).to_have_url(f"{served.url}/queue")
    expect(page.locator(".notice-success")).to_contain_text(f"Ticket {ticket_id} resolved")
    assert desk.handoff.ticket(ticket_id).ticket.state == "resolved"


def test_the_live_tone_check_flags_problems_while_typing(page: Page, served: Served) -> None:
    ticket_id = served.desk.escalate("my bill is wrong")
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    page.fill("#reply-body", "Ring us back on 07700 900123 and we will sort it ^BO")
    report = page.locator("#tone-report")
    expect(report).to_contain_text("signature ^BO")
    expect(report).to_contain_text("personal data is never posted in public")
    polite = "So sorry about this. Please DM us and we'll check the bill."
    page.fill("#reply-body", polite)
    expect(report).to_contain_text("Tone check passed")
    expect(page.locator("#reply-length")).to_have_text(f"{len(polite + ' ^AB')} / 280")
    page.fill("#reply-body", "x" * 300)
    expect(report).to_contain_text("the limit is 280")
    expect(page.locator("#reply-length")).to_have_class("length over")


def test_approve_a_draft_in_one_click(page: Page, served: Served) -> None:
    draft = "Hi there! Pay by card or direct debit in the Kestrel app under Billing. ^bot"
    ticket_id = served.desk.escalate("can I pay my bill by card?", band="approve", draft_reply=draft,
                                     reasons=["an FAQ answer that needs approval"])  # fmt: skip
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    expect(page.locator(".draft")).to_contain_text("Pay by card")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-draft.png", full_page=True)
    page.click("text=Approve and send")
    expect(page.locator(".notice-success")).to_contain_text("Draft approved")
    assert _outbox_texts(served) == ["Hi there! Pay by card or direct debit in the Kestrel app under Billing. ^AB"]


def test_a_wrong_password_and_the_log_out(page: Page, served: Served) -> None:
    log_in(page, served, "ann", "not my password")
    expect(page.locator(".form-error")).to_have_text("Wrong username or password.")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-login.png")
    log_in(page, served)
    expect(page.locator(".whoami")).to_contain_text("Ann Brown")
    page.click("text=Log out")
    expect(page).to_have_url(f"{served.url}/login")
    page.goto(f"{served.url}/queue")
    expect(page).to_have_url(f"{served.url}/login?next=%2Fqueue")


def test_the_ticket_page_says_when_the_customer_writes_again(page: Page, served: Served) -> None:
    desk = served.desk
    ticket_id = desk.escalate("my router keeps rebooting")
    log_in(page, served)
    page.clock.install()
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.clock.fast_forward("00:11")
    expect(page.locator("#new-activity")).to_be_hidden()
    conversation = desk.handoff.ticket(ticket_id).ticket.conversation_id
    with transaction(desk.engine) as conn:
        desk.handoff.add_customer_message(conn, conversation, tweet_id="1870000000000000001", author="maya_k",
                                          text="hello?? anyone there", created_at=datetime.now(UTC))  # fmt: skip
    page.clock.fast_forward("00:11")
    expect(page.locator("#new-activity")).to_be_visible()
    page.click("#reload-ticket")
    expect(page.locator(".thread")).to_contain_text("hello?? anyone there")
    expect(page.locator("#new-activity")).to_be_hidden()
