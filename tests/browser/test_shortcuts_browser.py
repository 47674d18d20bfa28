"""Keyboard shortcuts in a real browser: ? lists them, t takes the next ticket, the reply box has the focus,
Ctrl+Enter sends, r resolves an answered ticket, n opens the next ticket in the queue."""

from __future__ import annotations

from browser_support import PageProblems, Served, log_in
from playwright.sync_api import Page, expect


def test_take_reply_send_resolve_and_next_from_the_keyboard(page: Page, served: Served, problems: PageProblems) -> None:
    desk = served.desk
    first = desk.escalate("my broadband keeps dropping", priority=1, customer_handle="tom_r")
    second = desk.escalate("how do I pay by card?", priority=4, customer_handle="li_wei")
    log_in(page, served)
    page.goto(f"{served.url}/queue")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator("#shortcuts")).to_contain_text("Take the next ticket")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()

    page.keyboard.press("t")
    expect(page).to_have_url(f"{served.url}/tickets/{first}")
    expect(page.locator("#reply-body")).to_be_focused()
    page.keyboard.type("Sorry about the drops. We're checking the line now.")
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")
    assert desk.handoff.ticket(first).ticket.state == "answered"

    page.locator("h1").click()  # out of the reply box: letters are shortcuts again
    page.keyboard.press("r")
    expect(page).to_have_url(f"{served.url}/queue")
    assert desk.handoff.ticket(first).ticket.state == "resolved"

    page.goto(f"{served.url}/tickets/{first}")
    page.locator("h1").click()
    page.keyboard.press("n")
    expect(page).to_have_url(f"{served.url}/tickets/{second}")
    problems.assert_none()


def test_letters_typed_in_the_reply_box_are_text_not_shortcuts(page: Page, served: Served) -> None:
    ticket_id = served.desk.escalate("my bill is wrong")
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    page.click("#reply-body")
    page.keyboard.type("tnrq?")
    expect(page).to_have_url(f"{served.url}/tickets/{ticket_id}")
    expect(page.locator("#reply-body")).to_have_value("tnrq?")
    expect(page.locator("#shortcuts")).to_be_hidden()


def test_search_from_the_queue_with_the_slash_key(page: Page, served: Served) -> None:
    desk = served.desk
    wanted = desk.escalate("my router keeps rebooting at night", customer_handle="night_owl")
    desk.escalate("can I pay my bill by card?", customer_id="777", customer_handle="li_wei")
    log_in(page, served)
    page.goto(f"{served.url}/queue")
    page.keyboard.press("/")
    expect(page.locator("#queue-search")).to_be_focused()
    page.keyboard.type("rebooting")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{served.url}/search?q=rebooting")
    results = page.locator("table.search-results tbody tr")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("@night_owl")
    page.select_option("#search-state", "closed")
    page.click("#search-button")
    expect(page.locator("#search-count")).to_have_text("No ticket matches.")
    page.screenshot(path="/tmp/carebot-search.png", full_page=True)
    page.goto(f"{served.url}/search?q=%23{wanted}")
    expect(page.locator("table.search-results tbody tr")).to_have_count(1)


def test_the_tab_title_counts_waiting_tickets_without_a_reload(page: Page, served: Served) -> None:
    desk = served.desk
    desk.escalate("my broadband is down")
    log_in(page, served)
    page.goto(f"{served.url}/queue")
    expect(page).to_have_title("(1) Queue · carebot")
    page.evaluate("window.notReloaded = true")
    desk.escalate("and my tv box too", customer_id="888", customer_handle="sam")
    expect(page).to_have_title("(2) Queue · carebot", timeout=3000)  # within 3 s of the new ticket
    assert page.evaluate("window.notReloaded") is True


def test_save_a_macro_and_insert_it_into_a_reply(page: Page, served: Served, problems: PageProblems) -> None:
    ticket_id = served.desk.escalate("is the network down in Leeds?", customer_handle="leeds_lad")
    log_in(page, served)
    page.goto(f"{served.url}/macros")
    page.fill("#macro-title", "Outage")
    page.fill("#macro-body", "SORRY {customer}!!! We know about it.")
    page.click("#macro-save")
    expect(page.locator(".notice-error")).to_contain_text("Not saved")  # the tone check, before it is kept
    page.fill("#macro-title", "Outage")
    page.fill("#macro-body", "Sorry {customer}, we know about the fault in your area and the fix is under way. {agent}")
    page.click("#macro-save")
    expect(page.locator(".notice-success")).to_contain_text("Saved the macro")
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    page.locator("#macros a.insert").first.click()
    filled = "Sorry @leeds_lad, we know about the fault in your area and the fix is under way. Ann"
    expect(page.locator("#reply-body")).to_have_value(filled)
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")
    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")
    problems.assert_none()
