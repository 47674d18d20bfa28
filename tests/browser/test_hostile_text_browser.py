"""Hostile customer tweets in a real browser: script tags, img onerror, svg onload, javascript: links, template
syntax, RLO and zero-width characters show as text on the queue and ticket pages, and nothing runs (a dialog,
a script error or a CSP violation fails the test; no element is injected)."""

from __future__ import annotations

from pathlib import Path

from browser_support import PageProblems, Served, log_in
from playwright.sync_api import Page, expect

from bot.web.text import invisible_characters, marker

HOSTILE_FILE = Path(__file__).resolve().parent.parent / "data" / "hostile_tweets.txt"
EXTRA = [
    '"><script>window.__pwned = 1; alert("xss")</script>',
    "<img src=x onerror=\"window.__pwned = 1; alert('img')\">",
    "<svg/onload=alert('svg')><a href=\"javascript:alert('link')\">click me</a>",
    "<iframe src=\"javascript:alert('frame')\"></iframe> <style>body{display:none}</style>",
    "{{ 7*7 }} {{ config }} ${alert(1)} <%= 7*7 %>",
    "pay attention \u202egnp.exe\u202c and hidden\u200b\u200czero\u2060width",
]

INJECTED = "script:not([src='/static/console.js']), img, svg, iframe, style, object, embed, .customer-text a"


def _with_markers(text: str) -> str:
    marked = dict(invisible_characters(text))
    return "".join(marker(char) if index in marked else char for index, char in enumerate(text))


def _pwned(page: Page) -> object:
    return page.evaluate("() => window.__pwned")


def test_hostile_tweets_render_as_text_and_run_nothing(page: Page, served: Served) -> None:
    texts = [line for line in HOSTILE_FILE.read_text().splitlines() if line] + EXTRA
    ids = [
        served.desk.escalate(text, customer_handle="<script>alert(1)</script>" if i == 0 else "mallory")
        for i, text in enumerate(texts)
    ]
    log_in(page, served)
    expect(page.locator("table.queue tbody tr")).to_have_count(len(ids))
    assert page.locator(INJECTED).count() == 0
    assert _pwned(page) is None
    expect(page.locator("table.queue")).to_contain_text("<script>alert(document.cookie)</script> is fibre down?")
    expect(page.locator("table.queue")).to_contain_text("@<script>alert(1)</script>")
    page.screenshot(path="/tmp/carebot-hostile-queue.png", full_page=True)

    for ticket_id, text in zip(ids, texts, strict=True):
        page.goto(f"{served.url}/tickets/{ticket_id}")
        shown = page.locator(".msg-in .msg-text").first
        expect(shown).to_be_visible()
        assert page.locator(INJECTED).count() == 0, text
        assert page.locator("script").count() == 1  # console.js only
        assert _pwned(page) is None
        assert shown.inner_text() == _with_markers(text)

    page.goto(f"{served.url}/tickets/{ids[-1]}")
    rendered = page.locator(".msg-in .msg-text").first.inner_text()
    assert rendered == "pay attention ⟦U+202E⟧gnp.exe⟦U+202C⟧ and hidden⟦U+200B⟧⟦U+200C⟧zero⟦U+2060⟧width"
    assert page.locator(".msg-in .msg-text > bdi[dir=auto]").count() == 1
    page.screenshot(path="/tmp/carebot-hostile-ticket.png", full_page=True)


def test_hostile_text_inserted_through_the_reply_box_stays_text(page: Page, served: Served) -> None:
    ticket_id = served.desk.escalate("hello")
    log_in(page, served)
    page.goto(f"{served.url}/tickets/{ticket_id}")
    page.click("#claim")
    page.fill("#reply-body", "<img src=x onerror=alert(1)> ^BO")
    expect(page.locator("#tone-report")).to_contain_text("^BO")
    page.click("#send-reply")
    expect(page.locator("#reply-error")).to_contain_text("Not sent")
    assert page.locator("#reply-body").input_value() == "<img src=x onerror=alert(1)> ^BO"
    assert page.locator(INJECTED).count() == 0 and _pwned(page) is None


def test_the_guard_itself_sees_dialogs_and_csp_violations(page: Page, served: Served, problems: PageProblems) -> None:
    page.goto("data:text/html,<script>alert('caught')</script>")
    assert problems.dialogs == ["alert: caught"]
    log_in(page, served)
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'alert(2)';"
                  " document.body.appendChild(s); }")  # fmt: skip
    page.wait_for_timeout(200)
    assert problems.dialogs == ["alert: caught"]  # the CSP blocked the inline script…
    assert any("Content Security Policy" in error for error in problems.errors)  # …and the guard saw it
    problems.dialogs.clear()
    problems.errors.clear()
