"""The lead view in a real browser: the shift at a glance during an outage storm, the surge warning with an on-call
agent brought online in one click, a roster change, a ticket reassigned from one agent to another (audited), and
the log-in lock-outs with the usernames as typed (hostile ones too)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from browser_support import PageProblems, Served, log_in
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from bot.channel.models import inbound_tweets
from bot.web.accounts import LoginRefused
from handoff import transaction

SCREENSHOTS = "/tmp"
_ids = itertools.count(1_895_000_000_000_000_000)


def _storm(served: Served, count: int, *, minutes_ago: float, band: str) -> None:
    """Tweets stored by the worker: `count` of them, fetched `minutes_ago`, triaged into `band`."""
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    with transaction(served.desk.engine) as conn:
        for n in range(count):
            tweet_id = str(next(_ids))
            conn.execute(insert(inbound_tweets).values(
                tweet_id=tweet_id, source="mention", author_id=str(1000 + n), author_username=f"user{n}",
                text="@KestrelCare internet down in Leeds again??", conversation_id=tweet_id, created_at=at,
                fetched_at=at, state="done", attempts=1, band=band,
            ))  # fmt: skip


def test_a_lead_sees_the_surge_brings_an_on_call_agent_online_and_reassigns_a_ticket(
    page: Page, served: Served
) -> None:
    desk = served.desk
    desk.add_user("oli", "agent", "Oli Carter", "OC", kind="on_call", capacity=6)
    ann, bob = desk.handoff.agent_by_username("ann"), desk.handoff.agent_by_username("bob")
    assert ann is not None and bob is not None
    for agent in (ann, bob):
        desk.handoff.set_status(agent.id, "online", by="test")
    held = desk.escalate("@KestrelCare my broadband has been down since Monday!!", priority=1,
                         customer_handle="maya_k", reasons=["an angry complaint", "an outage report"])  # fmt: skip
    desk.handoff.claim(held, ann.id)
    for n in range(12):
        since = datetime.now(UTC) - timedelta(minutes=5 * n)
        desk.escalate(f"@KestrelCare no internet in Leeds since 7am ({n})", priority=2, customer_handle=f"leeds{n}",
                      created_at=since, reasons=["an outage report"])  # fmt: skip
    _storm(served, 70, minutes_ago=8, band="human")
    _storm(served, 10, minutes_ago=30, band="auto")
    _storm(served, 12, minutes_ago=90, band="auto")

    log_in(page, served, "lee")
    page.goto(f"{served.url}/lead")
    surge = page.locator("#surge")
    expect(surge).to_be_visible()
    expect(surge).to_contain_text("tweets in the last hour")
    expect(surge).to_contain_text("went to people")
    expect(surge.locator(".proposals")).to_contain_text("Oli Carter")
    expect(page.locator(".kpis")).to_contain_text("13")  # open tickets
    page.screenshot(path=f"{SCREENSHOTS}/carebot-lead.png", full_page=True)

    surge.locator(".proposals button").first.click()
    expect(page.locator(".notice-success")).to_contain_text("Oli Carter (OC) is online now")
    oli = desk.handoff.agent_by_username("oli")
    assert oli is not None and oli.status == "online"

    row = page.locator(f'tr[data-ticket="{held}"]')
    expect(row).to_contain_text("^AB")
    expect(row.locator("select[name=agent_id]")).to_have_value("")  # nobody is preselected
    row.locator("button", has_text="Reassign").click()  # the browser asks for a choice first: nothing is sent
    assert desk.handoff.ticket(held).holder.username == "ann"  # type: ignore[union-attr]
    row.locator("select[name=agent_id]").select_option(str(bob.id))
    row.locator("button", has_text="Reassign").click()
    expect(page.locator(".notice-success")).to_contain_text(f"Ticket {held} is with Bob Okafor (BO) now")
    expect(page.locator(f'tr[data-ticket="{held}"]')).to_contain_text("^BO")
    detail = desk.handoff.ticket(held)
    assert detail.holder is not None and detail.holder.username == "bob"
    assert [(a.actor, a.action) for a in detail.audit][-1] == ("lee", "reassigned")
    expect(page.locator(".audit-feed")).to_contain_text(f"lee reassigned #{held} to bob from ann")

    roster_row = page.locator('tr[data-agent="bob"]')
    roster_row.locator("select[name=status]").select_option("away")  # submits on change
    expect(page.locator(".notice-success")).to_contain_text("Bob Okafor (BO) is away now")
    assert desk.handoff.agent(bob.id).status == "away"
    page.screenshot(path=f"{SCREENSHOTS}/carebot-lead-after.png", full_page=True)


def test_a_lead_sees_the_log_in_lock_outs(page: Page, served: Served, problems: PageProblems) -> None:
    accounts = served.desk.services.accounts
    for username, client in (("ann", "203.0.113.7"), ('<img src=x onerror=alert(1)>"\u202e', "203.0.113.8")):
        for _ in range(5):
            try:
                accounts.log_in(username, "guessing the password", client=client)
            except LoginRefused:
                pass
    log_in(page, served, "lee")
    page.goto(f"{served.url}/lead")
    lockouts = page.locator("#lockouts")
    expect(lockouts).to_be_visible()
    expect(lockouts.locator("tr[data-client='203.0.113.7']")).to_contain_text("ann")
    expect(lockouts.locator("tr[data-client='203.0.113.7']")).to_contain_text("5")
    hostile = lockouts.locator("tr[data-client='203.0.113.8']")
    expect(hostile).to_contain_text("<img src=x onerror=alert(1)>")
    expect(hostile).to_contain_text("no such account")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-lead-lockouts.png", full_page=True)
    problems.assert_none()


def test_a_lead_ticks_several_tickets_and_reassigns_them_at_once(page: Page, served: Served) -> None:
    desk = served.desk
    tickets = [desk.escalate(f"no broadband in Leeds since 9 ({n})", customer_id=f"60{n}") for n in range(3)]
    log_in(page, served, "lee")
    page.goto(f"{served.url}/lead")
    for ticket_id in tickets[:2]:
        page.locator(f'tr[data-ticket="{ticket_id}"] input[type=checkbox]').check()
    bob = desk.handoff.agent_by_username("bob")
    assert bob is not None
    page.select_option("#bulk-agent", str(bob.id))
    page.click("#bulk-reassign-button")
    expect(page.locator(".notice-success")).to_contain_text("2 ticket(s) are with Bob Okafor (BO) now")
    holders = [desk.handoff.ticket(t).holder for t in tickets]
    assert [h.username if h else None for h in holders] == ["bob", "bob", None]
