"""A customer is one conversation across a public thread and DMs, in a real browser: a customer's tweet at the
sandbox X becomes a ticket through the worker (real tweepy over HTTP, the real Rasa), the agent claims it and moves
it to DM, the customer DMs on the sandbox, and the DM appears in the same ticket, marked as a DM, with the
customer's @handle; the agent answers by DM from that ticket and the sandbox X shows a DM sent to that customer,
not a public reply."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from browser_support import PageProblems, Served, log_in, step_until
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.channel.models import inbound_tweets
from bot.channel.worker import Worker
from handoff.models import tickets

pytestmark = pytest.mark.rasa


def test_the_dm_joins_the_public_ticket_and_is_answered_by_dm(
    page: Page, served: Served, sandbox: str, worker: Worker, problems: PageProblems
) -> None:
    page.add_init_script("window.confirm = function () { return true; };")  # the agent confirms Move to DM
    engine = served.desk.engine
    tweet = httpx.post(f"{sandbox}/sandbox/customer-tweets", json={
        "username": "gus_r", "text": "@KestrelCare my bill is wrong again this month, can I talk to an actual person?",
    }).json()  # fmt: skip
    customer = str(tweet["author_id"])

    def ticket_of(tweet_id: str) -> int | None:
        with engine.connect() as conn:
            found = conn.execute(select(inbound_tweets.c.ticket_id).where(inbound_tweets.c.tweet_id == tweet_id))
            return found.scalar()

    public = step_until(lambda: ticket_of(tweet["id"]), worker, "the public ticket")

    def posts() -> dict[str, list[dict[str, Any]]]:
        return dict(httpx.get(f"{sandbox}/sandbox/posts").json())

    log_in(page, served)
    page.goto(f"{served.url}/tickets/{public}")
    page.click("#claim")
    page.click("text=Move to DM")
    expect(page.locator(".notice-success")).to_be_visible()
    step_until(lambda: any("DM" in t["text"] and t["text"].endswith("^AB") for t in posts()["data"]), worker,
               "the handover reply on X")  # fmt: skip
    public_before = len(posts()["data"])

    dm = httpx.post(f"{sandbox}/sandbox/customer-dms", json={
        "username": "gus_r", "text": "Hi, it's about my bill, my account number is 12345678901",
    }).json()  # fmt: skip
    joined = step_until(lambda: ticket_of(f"dm-{dm['id']}"), worker, "the DM filed")
    assert joined == public  # the same ticket, not a DM ticket of its own
    with engine.connect() as conn:
        assert conn.execute(select(tickets.c.id)).scalars().all() == [public]

    page.goto(f"{served.url}/tickets/{public}")
    last = page.locator(".thread[data-fingerprint] .msg").last
    expect(last).to_contain_text("my account number is 12345678901")
    expect(last.locator(".author")).to_have_text("@gus_r")
    expect(last.locator(".channel-dm")).to_have_text("DM")
    expect(page.locator(".thread[data-fingerprint] .msg").first.locator(".channel-public")).to_have_text("public")
    expect(page.locator("#reply-channel input[value='dm']")).to_be_checked()  # by DM once the customer DMed
    expect(page.locator("text=Move to DM")).to_have_count(0)  # already in the DM
    expect(page.locator(".reply-label")).to_contain_text("Reply by DM")
    page.fill("#reply-body", "Thanks Gus, account 12345678901 had a double charge: I've refunded it today.")
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")  # personal data is fine in a DM
    page.locator("#reply-channel input[value='public']").check()
    expect(page.locator(".reply-label")).to_contain_text("Reply in public")
    expect(page.locator("#tone-report")).not_to_contain_text("Tone check passed")  # not in public
    page.locator("#reply-channel input[value='dm']").check()
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")
    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")

    sent = step_until(lambda: [d for d in posts()["dms"] if "double charge" in d["text"]], worker, "our DM on X")
    assert len(sent) == 1 and str(sent[0]["recipient_id"]) == customer
    assert sent[0]["text"].endswith("^AB")
    assert len(posts()["data"]) == public_before  # no public reply
    page.reload()
    ours = page.locator(".thread[data-fingerprint] .msg-out").last
    expect(ours.locator(".channel-dm")).to_have_text("DM")
    expect(ours.locator(".delivery")).to_have_text("sent")
    page.screenshot(path="/tmp/carebot-dm-joined-ticket.png", full_page=True)
    problems.assert_none()
