"""Incidents in a real browser: a lead opens one for an outage, links the suggested tickets in one click, sends one
update (posted by the real sender with tweepy to the sandbox X, each customer's worded apart), and resolves it
with a closing reply under every thread. Screenshots in var/screenshots/ (desktop, and 390 px wide)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import Served, log_in
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.channel.intake import Intake
from bot.channel.models import inbound_tweets, outbox
from bot.channel.sender import Sender
from bot.channel.x_client import XClient
from bot.sandbox.testing import RunningSandbox, running_sandbox
from bot.settings import PROJECT_ROOT
from handoff import Escalation, transaction

SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"
CUSTOMERS = ("leeds_amy", "leeds_bo", "leeds_cat", "leeds_dev", "leeds_eli")
UPDATE = "Engineers are repairing a damaged fibre cable near Leeds. We expect service back by 6pm."
CLOSING = "Service is back for everyone in Leeds. If yours isn't, restart your hub and tell us here."


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running


def _outage_in_the_sandbox(served: Served, sandbox: RunningSandbox, client: XClient) -> list[int]:
    """Customers tweet about the outage on the sandbox X (one also about their bill); intake stores the tweets and
    each becomes a ticket for people, as triage files an outage report."""
    for n, user in enumerate(CUSTOMERS):
        body = {"username": user, "text": f"@KestrelCare no internet in Leeds since 7am, fibre light red ({n})"}
        httpx.post(f"{sandbox.url}/sandbox/customer-tweets", json=body, timeout=10).raise_for_status()
    httpx.post(f"{sandbox.url}/sandbox/customer-tweets", json={"username": "bill_q", "text": "@KestrelCare how do I "
               "pay my bill <b>now</b>?"}, timeout=10).raise_for_status()  # fmt: skip
    Intake(served.desk.engine, client).read_mentions()
    ids = []
    with transaction(served.desk.engine) as conn:
        for row in conn.execute(select(inbound_tweets).order_by(inbound_tweets.c.tweet_id)).all():
            ids.append(served.desk.handoff.escalate(conn, Escalation(
                conversation_id=row.conversation_id or row.tweet_id, tweet_id=row.tweet_id, customer_id=row.author_id,
                customer_handle=row.author_username, text=row.text, created_at=row.created_at, source="mention",
                band="human", reasons=["an outage report"], priority=2, skill="general",
            )))  # fmt: skip
    return ids


def _send_all(sender: Sender, served: Served, kind: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        sender.send_due()
        with served.desk.engine.connect() as conn:
            states = conn.execute(select(outbox.c.state).where(outbox.c.kind == kind)).scalars().all()
        if len(states) == count and set(states) == {"sent"}:
            return
        assert time.monotonic() < deadline, f"the {kind} replies were not posted: {states}"
        time.sleep(0.1)


def test_a_lead_links_suggested_tickets_sends_one_update_and_resolves_the_incident(
    page: Page, served: Served, sandbox: RunningSandbox
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    settings = served.desk.settings.model_copy(update={"x_api_url": sandbox.url})
    client = XClient.from_settings(settings)
    try:
        tickets = _outage_in_the_sandbox(served, sandbox, client)
        sender = Sender(served.desk.engine, client, served.desk.handoff, reconcile_after_s=0)
        outage, bill = tickets[:5], tickets[5]

        log_in(page, served, "lee")
        page.get_by_role("link", name="Incidents").click()
        expect(page).to_have_url(f"{served.url}/incidents")
        page.get_by_label("Title").fill("Fibre outage, Leeds")
        page.get_by_label("Keywords").fill("leeds, fibre")
        page.get_by_label("Status note").fill("A fibre cable near LS6 is damaged; engineers are on site.")
        page.click("#incident-create")
        expect(page.locator(".notice-success")).to_contain_text("is open")
        suggested = page.locator("#suggested tbody tr")
        expect(suggested).to_have_count(5)
        expect(page.locator(f'tr[data-suggested="{bill}"]')).to_have_count(0)  # the bill question is no outage
        page.screenshot(path=str(SCREENSHOTS / "incident-suggested.png"), full_page=True)

        page.click("#link-ticked")  # every suggestion is ticked: one click links them all
        expect(page.locator(".notice-success")).to_contain_text("5 tickets linked")
        expect(page.locator("#linked tbody tr")).to_have_count(5)
        expect(page.locator("#suggested .empty")).to_be_visible()

        page.get_by_label("The update").fill("We're SO sorry for any inconvenience!!")
        page.click("#update-send")
        expect(page.locator(".notice-error")).to_contain_text("Not sent")
        expect(page.locator(".notice-error")).to_contain_text("sorry for any inconvenience")
        page.get_by_label("The update").fill(UPDATE)
        page.click("#update-send")
        expect(page.locator(".notice-success")).to_contain_text("5 updates queued")
        _send_all(sender, served, "incident_update", 5)
        page.reload()
        expect(page.locator("#kpi-sent")).to_have_text("5")
        for ticket_id in outage:
            expect(page.locator(f'#linked tr[data-ticket="{ticket_id}"]')).not_to_contain_text("—")  # answered
        page.screenshot(path=str(SCREENSHOTS / "incident-updated.png"), full_page=True)

        posts = httpx.get(f"{sandbox.url}/sandbox/posts", timeout=10).json()["data"]
        texts = [p["text"] for p in posts if UPDATE in p["text"]]
        assert len(texts) == 5 and len(set(texts)) == 5 and all(t.endswith(" ^LL") for t in texts)

        page.get_by_label("Closing reply").fill(CLOSING)
        page.click("#resolve-send")
        expect(page.locator(".notice-success")).to_contain_text("The incident is resolved")
        expect(page.locator("#incident-state")).to_have_text("resolved")
        _send_all(sender, served, "incident_close", 5)
        page.reload()
        expect(page.locator("#kpi-sent")).to_have_text("10")
        for ticket_id in outage:
            expect(page.locator(f'#linked tr[data-ticket="{ticket_id}"] .state')).to_have_text("resolved")
        expect(page.locator("#resolve")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOTS / "incident-resolved.png"), full_page=True)
        assert served.desk.handoff.ticket(bill).ticket.state == "queued"  # not in the incident: untouched

        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the incident page is {width} px wide at 390 px"
        page.screenshot(path=str(SCREENSHOTS / "incident-390.png"), full_page=True)
        page.goto(f"{served.url}/incidents")
        expect(page.locator("table.incidents tbody tr")).to_have_count(1)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(SCREENSHOTS / "incidents-390.png"), full_page=True)
    finally:
        client.close()
