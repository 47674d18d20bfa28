"""The FAQ editor in a real browser: an editor writes an entry with live checks, previews it as a draft, publishes
it, and a customer's tweet to the sandbox X right after is answered with it by the worker (real tweepy over HTTP,
its own FAQ searcher catching up on the publish). The unanswered questions page groups paraphrases of one
question together and starts a prefilled draft from a group."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from browser_support import Served, log_in, step_until, worker_on_sandbox
from playwright.sync_api import Page, expect
from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from bot.channel.models import inbound_tweets
from bot.channel.worker import Worker
from bot.decision.policy import Policy, load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.kb import KnowledgeBase
from bot.nlu.client import NluResult, parse_response
from bot.nlu.testing import canned_parse
from bot.sandbox.testing import running_sandbox
from bot.web.editor import EditorService
from handoff import Escalation, transaction
from knowledge_base.search import FaqSearcher
from knowledge_base.testing import FakeEmbedder

SCREENSHOTS = "/tmp"
QUESTION = "How do I set up an eSIM on my phone?"
ANSWER = "Open the Kestrel app, go to SIM and scan the QR code shown there. It takes about two minutes."
_ids = itertools.count(1_890_000_000_000_000_000)


class ProductQuestions:
    """Stands in for Rasa: every tweet is a product question."""

    def parse(self, text: str) -> NluResult:
        return parse_response(canned_parse(text, "product_question", 0.95), text)


def _policy(served: Served) -> Policy:
    return load_policy(served.desk.settings.training_data_dir / "policy.yml")


@pytest.fixture
def editor(served: Served) -> EditorService:
    from bot.desk import LiveAnswerModel, out_of_scope_texts

    settings = served.desk.settings
    policy = _policy(served)
    answers = LiveAnswerModel(served.desk.kb.searcher, out_of_scope_texts(settings.training_data_dir, policy))
    service = EditorService(
        lambda: served.desk.kb, policy, ToneGuide.load(settings.training_data_dir / "tone.yml"),
        answers=lambda: answers, nlu=ProductQuestions,
    )  # fmt: skip
    served.desk.app.state.editor = service
    return service


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running.url


@pytest.fixture
def worker(served: Served, sandbox: str) -> Iterator[Worker]:
    """The worker in this process with its own FAQ searcher, which sees a publish within its refresh interval."""
    searcher = FaqSearcher(
        sessionmaker(served.desk.engine), FakeEmbedder(), refresh_interval_s=served.desk.settings.kb_refresh_interval_s
    )
    kb = KnowledgeBase(served.desk.kb.service, searcher)
    desk = Desk(ProductQuestions(), kb, _policy(served), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    with worker_on_sandbox(served, sandbox, desk) as running:
        yield running


def test_an_editor_creates_previews_and_publishes_an_entry_and_the_bot_answers_with_it(
    page: Page, served: Served, editor: EditorService, sandbox: str, worker: Worker
) -> None:
    log_in(page, served, "eve")
    page.goto(f"{served.url}/faq")
    expect(page.locator("table.faq-list")).to_contain_text("How do I reset my Hub 4 router?")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-faq-list.png", full_page=True)
    page.click("#new-entry")

    page.fill("#f-question", QUESTION)
    expect(page.locator("#f-slug")).to_have_value("set-up-esim-phone")  # suggested from the question
    page.fill("#f-slug", "esim-setup")
    page.fill("#f-paraphrases", "activate my esim\nesim installation on iphone")
    page.fill("#f-answer", "x " * 150)
    expect(page.locator("#check-list")).to_contain_text("280")  # too long, said while typing
    expect(page.locator("#f-length")).to_have_class("length over")
    page.fill("#f-answer", ANSWER)
    page.fill("#f-tags", "mobile, esim")
    expect(page.locator("#check-list")).to_contain_text("No problems")
    expect(page.locator("#check-reply")).to_contain_text(ANSWER)
    expect(page.locator("#f-length")).to_have_text(f"{len(ANSWER + ' ^bot')} / 280 with ^bot")
    page.click("#save-entry")
    expect(page).to_have_url(f"{served.url}/faq/entries/esim-setup")
    expect(page.locator(".notice-success")).to_contain_text("Draft saved")

    page.fill("#preview-text", "@KestrelCare how do I set up an eSIM on my phone?")
    page.click("#preview-button")
    result = page.locator("#preview-result")
    expect(result).to_contain_text("bot answers")
    expect(result).to_contain_text("answers with this draft")
    expect(page.locator("#preview-reply")).to_contain_text(ANSWER)
    page.screenshot(path=f"{SCREENSHOTS}/carebot-faq-entry.png", full_page=True)
    assert httpx.get(f"{sandbox}/sandbox/posts").json()["data"] == []  # a preview posts nothing

    page.click("#publish")
    expect(page.locator(".notice-success")).to_contain_text("Published")
    published_at = time.monotonic()
    tweet = httpx.post(f"{sandbox}/sandbox/customer-tweets", json={
        "username": "li_wei", "text": "@KestrelCare how do I set up an eSIM on my phone?",
    }).json()  # fmt: skip

    def replies() -> list[dict[str, str]]:
        timeline = httpx.get(f"{sandbox}/sandbox/timeline", params={"in_reply_to_tweet_id": tweet["id"]}).json()
        return list(timeline["data"])

    [reply] = step_until(replies, worker, "the bot's answer on X")
    answered_in = time.monotonic() - published_at
    assert ANSWER in reply["text"] and reply["text"].endswith("^bot")
    assert reply["author_username"] == "KestrelCare"
    # The worker refits its answer model on the publish first (about a second; docs/benchmarks.md).
    assert answered_in < 10, f"answered {answered_in:.2f} s after the publish"
    with served.desk.engine.connect() as conn:
        stored = conn.execute(inbound_tweets.select().where(inbound_tweets.c.tweet_id == tweet["id"])).one()
    assert stored.band == "auto" and stored.decision["decision"]["faq"]["slug"] == "esim-setup"

    page.goto(f"{served.url}/faq/entries/esim-setup")
    page.fill("#f-answer", ANSWER.replace("about two minutes", "a minute"))
    page.click("#save-entry")
    expect(page.locator(".publish-card")).to_contain_text("changes that are not live")
    page.click("#publish")
    expect(page.locator(".notice-success")).to_contain_text("Published")
    page.click("text=History and diff")
    expect(page.locator(".versions-table tbody tr")).to_have_count(2)
    expect(page.locator("table.diff .d-remove")).to_contain_text("about two minutes")
    expect(page.locator("table.diff .d-add")).to_contain_text("a minute")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-faq-history.png", full_page=True)


ROAMING = ("@KestrelCare roaming charges in spain per day?", "roaming charges in spain per day please",
           "@KestrelCare what are the roaming charges in spain per day")  # fmt: skip
DEBIT = ("@KestrelCare change direct debit date to the 15th", "can I change my direct debit date to the 15th")


def _unanswered(served: Served, text: str, handle: str) -> int:
    """A tweet the worker sent to people because no FAQ entry was close: its ticket and its stored decision."""
    tweet_id = str(next(_ids))
    now = datetime.now(UTC)
    with transaction(served.desk.engine) as conn:
        ticket_id = served.desk.handoff.escalate(conn, Escalation(
            conversation_id=tweet_id, tweet_id=tweet_id, customer_id=tweet_id[-5:], customer_handle=handle,
            text=text, created_at=now, source="mention", band="human", reasons=["no FAQ answer is close enough"],
            priority=3, skill="general",
        ))  # fmt: skip
        conn.execute(insert(inbound_tweets).values(
            tweet_id=tweet_id, source="mention", author_id=tweet_id[-5:], author_username=handle, text=text,
            conversation_id=tweet_id, created_at=now, fetched_at=now, state="done", attempts=1, band="human",
            decision={"faq_hits": [{"entry_id": 2, "slug": "pay-bill", "score": 0.21, "text": "x"}],
                      "faq_top_score": 0.21, "decision": {"band": "human"}},
            ticket_id=ticket_id, triaged_at=now,
        ))  # fmt: skip
    return int(ticket_id)


def test_unanswered_questions_group_paraphrases_and_a_group_starts_a_draft(
    page: Page, served: Served, editor: EditorService
) -> None:
    for n, text in enumerate(ROAMING):
        ticket_id = _unanswered(served, text, f"traveller{n}")
    for n, text in enumerate(DEBIT):
        _unanswered(served, text, f"payer{n}")
    _unanswered(served, "<img src=x onerror=alert(1)> is the shop in Leeds open on sunday", "<b>x</b>")
    with transaction(served.desk.engine) as conn:
        reply = "Roaming in Spain is included in your plan at no extra cost. ^AB"
        served.desk.handoff.record_outbound(conn, ticket_id, author="AB", text=reply, outbox_id=None, kind="agent")

    log_in(page, served, "eve")
    page.goto(f"{served.url}/unanswered")
    groups = page.locator("li.group")
    expect(groups).to_have_count(3)
    expect(groups.nth(0).locator(".group-size")).to_have_text("3")
    for text in ROAMING:
        expect(groups.nth(0).locator(".examples")).to_contain_text(text)
    expect(groups.nth(0).locator(".replies")).to_contain_text("Roaming in Spain is included")
    expect(groups.nth(1).locator(".group-size")).to_have_text("2")
    for text in DEBIT:
        expect(groups.nth(1).locator(".examples")).to_contain_text(text)
    expect(groups.nth(2)).to_contain_text("<img src=x onerror=alert(1)>")  # shown as text, runs nothing
    page.screenshot(path=f"{SCREENSHOTS}/carebot-unanswered.png", full_page=True)

    groups.nth(0).locator("a.start-draft").click()
    expect(page).to_have_url(f"{served.url}/faq/new?" + page.url.split("?", 1)[1])
    page.screenshot(path=f"{SCREENSHOTS}/carebot-faq-new-from-group.png", full_page=True)
    question = page.locator("#f-question").input_value()
    assert question in [t.replace("@KestrelCare ", "") for t in ROAMING]
    paraphrases = page.locator("#f-paraphrases").input_value().splitlines()
    assert len(paraphrases) == 2 and all("roaming charges in spain per day" in p for p in paraphrases)
    assert page.locator("#f-answer").input_value() == "Roaming in Spain is included in your plan at no extra cost."
    page.click("#save-entry")
    expect(page.locator(".notice-success")).to_contain_text("Draft saved")
    page.click("#publish")
    expect(page.locator(".notice-success")).to_contain_text("Published")
    entry = editor.entry(page.url.rsplit("/", 1)[1])
    assert entry.status == "published" and len(entry.content.paraphrases) == 2

    page.goto(f"{served.url}/faq/preview")  # the bot now answers the group's question with the new entry
    page.fill("#preview-text", ROAMING[0])
    page.click("#preview-button")
    expect(page.locator("#preview-result")).to_contain_text("bot answers")
    expect(page.locator("#preview-reply")).to_contain_text("Roaming in Spain is included in your plan")


def test_what_would_the_bot_do_with_a_tweet(page: Page, served: Served, editor: EditorService) -> None:
    log_in(page, served, "eve")
    page.goto(f"{served.url}/faq/preview")
    page.fill("#preview-text", "@KestrelCare how do I reset my Hub 4 router?")
    page.click("#preview-button")
    result = page.locator("#preview-result")
    expect(result).to_contain_text("bot answers")
    expect(page.locator("#preview-reply")).to_contain_text("Hold the reset button on the back of the Hub")
    expect(result.locator("table tbody tr").first).to_contain_text("reset-hub")
    page.screenshot(path=f"{SCREENSHOTS}/carebot-faq-preview.png", full_page=True)
    page.fill("#preview-text", "<svg onload=alert(1)> CANCEL MY CONTRACT NOW")
    page.click("#preview-button")
    expect(page.locator("#preview-result .pr-tweet")).to_contain_text("<svg onload=alert(1)>")
