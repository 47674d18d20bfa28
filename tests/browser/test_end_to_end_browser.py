"""The whole path in a real browser: a customer tweets at the sandbox X, the worker (real tweepy over HTTP, the
real Rasa) files a ticket, an agent logged in to the console takes it, answers and resolves it, and the reply
appears in the sandbox X timeline under the customer's thread, signed with that agent's initials."""

from __future__ import annotations

import httpx
import pytest
from browser_support import Served, log_in, step_until
from playwright.sync_api import Page, expect

from bot.channel.worker import Worker

pytestmark = pytest.mark.rasa


def test_a_tweet_is_taken_answered_and_resolved_and_the_reply_appears_on_x(
    page: Page, served: Served, sandbox: str, worker: Worker
) -> None:
    tweet = httpx.post(f"{sandbox}/sandbox/customer-tweets", json={
        "username": "maya_k", "text": "@KestrelCare my fibre is down again, can I talk to an actual person please?",
    }).json()  # fmt: skip

    def replies_to(tweet_id: str) -> list[dict[str, str]]:
        timeline = httpx.get(f"{sandbox}/sandbox/timeline", params={"in_reply_to_tweet_id": tweet_id}).json()
        return list(timeline["data"])

    [acknowledgement] = step_until(lambda: replies_to(tweet["id"]), worker, "the bot's acknowledgement")  # type: ignore[misc]
    assert acknowledgement["text"].endswith("^bot")

    log_in(page, served)
    expect(page.locator("table.queue")).to_contain_text("can I talk to an actual person please?")
    page.click("#take-next")
    expect(page.locator(".thread")).to_contain_text("my fibre is down again")
    expect(page.locator(".msg-out")).to_contain_text(acknowledgement["text"])
    page.fill("#reply-body", "Sorry Maya, I'm Ann from the team. There's a fault in your area; an engineer is on it.")
    expect(page.locator("#tone-report")).to_contain_text("Tone check passed")
    page.click("#send-reply")
    expect(page.locator(".notice-success")).to_contain_text("Reply queued")

    [reply] = step_until(lambda: replies_to(acknowledgement["id"]), worker, "the agent's reply on X")  # type: ignore[misc]
    assert reply["text"] == "Sorry Maya, I'm Ann from the team. There's a fault in your area; an engineer is on it. ^AB"
    assert reply["author_username"] == "KestrelCare" and reply["conversation_id"] == tweet["id"]
    page.reload()
    expect(page.locator(".msg-out .delivery").last).to_have_text("sent")

    page.click("#resolve")
    expect(page.locator(".notice-success")).to_contain_text("resolved")
    page.goto(sandbox + "/")
    expect(page.locator("body")).to_contain_text("an engineer is on it. ^AB")
    page.screenshot(path="/tmp/carebot-sandbox-timeline.png", full_page=True)
