"""Personal data stays out of what the desk shows in lists and exports: the unanswered questions' groups (titles,
examples, agents' replies, slugs, draft links), the training-examples export and the lead's ticket list."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import insert, update
from web_support import WebDesk, web_desk

from bot.channel.models import inbound_tweets
from bot.web.unanswered import UnansweredQuestions, suggested_slug
from handoff import Escalation, transaction
from handoff.models import tickets

_ids = itertools.count(1_880_000_000_000_000_000)

CARD = "4111 1111 1111 1111"
SECRETS = ("4111", "Jane", "Smith", "Acacia", "SW1A", "12345678901", "1234567", "jane@example.com")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[WebDesk]:
    with web_desk(tmp_path) as desk:
        yield desk


def _unanswered(desk: WebDesk) -> UnansweredQuestions:
    service: UnansweredQuestions = desk.app.state.unanswered
    return service


def _stored_tweet(desk: WebDesk, text: str) -> int:
    """An escalated tweet no FAQ entry was close to, and its ticket."""
    tweet_id = str(next(_ids))
    now = datetime.now(UTC)
    with transaction(desk.engine) as conn:
        ticket_id = desk.handoff.escalate(conn, Escalation(
            conversation_id=tweet_id, tweet_id=tweet_id, customer_id=tweet_id[-6:], customer_handle="cust",
            text=text, created_at=now, source="mention", band="human", reasons=["no FAQ answer is close"],
            priority=3, skill="general", intent="billing_issue",
        ))  # fmt: skip
        conn.execute(insert(inbound_tweets).values(
            tweet_id=tweet_id, source="mention", author_id=tweet_id[-6:], author_username="cust", text=text,
            conversation_id=tweet_id, created_at=now, fetched_at=now, state="done", attempts=1, band="human",
            decision={"faq_hits": [], "faq_top_score": None}, ticket_id=ticket_id, triaged_at=now,
        ))  # fmt: skip
    return ticket_id


def _answer(desk: WebDesk, ticket_id: int, reply: str, *, resolve: bool = False) -> None:
    agent = desk.handoff.agent_by_username("ann")
    assert agent is not None
    desk.handoff.claim(ticket_id, agent.id)
    with transaction(desk.engine) as conn:
        desk.handoff.record_outbound(conn, ticket_id, author="AB", text=reply, outbox_id=None, kind="agent_reply")
        desk.handoff.mark_answered(conn, ticket_id, agent.id)
    if resolve:
        desk.handoff.resolve(ticket_id, agent.id)


def test_unanswered_groups_show_placeholders_instead_of_personal_data(desk: WebDesk) -> None:
    first = _stored_tweet(desk, f"@KestrelCare my name is Jane Smith, you charged my card {CARD} twice")
    _stored_tweet(desk, "@KestrelCare I live at 14 Acacia Avenue SW1A 1AA and was charged twice")
    _stored_tweet(desk, "@KestrelCare account 12345678901 charged twice, call +49 30 1234567")
    _answer(desk, first, "Sorry about that, DM us on jane@example.com? ^AB")  # as a DM might say it

    groups = _unanswered(desk).groups()
    assert groups
    shown: list[str] = []
    for group in groups:
        shown += [group.question, group.answer, group.slug, group.draft_link, *group.paraphrases]
        shown += [tweet.text for tweet in group.tweets] + [reply.text for reply in group.replies]
    everything = "\n".join(shown)
    for secret in SECRETS:
        assert secret not in everything
    assert "[card number]" in everything and "[name]" in everything and "[address]" in everything
    assert "[postcode]" in everything and "[account number]" in everything and "[phone number]" in everything
    assert "[e-mail]" in everything
    assert suggested_slug("my name is [name], my card [card number] was charged") == "name-card-was-charged"

    page = desk.logged_in("eve").get("/unanswered")
    assert page.status_code == 200 and "[card number]" in page.text
    for secret in SECRETS:
        assert secret not in page.text


def test_the_training_export_leaves_out_every_tweet_with_personal_data(desk: WebDesk) -> None:
    texts = {
        "plain": "@KestrelCare why was I charged twice this month",
        "card": f"@KestrelCare charged twice on {CARD}",
        "cvv": "@KestrelCare you asked for my cvv 123 and charged twice",
        "foreign phone": "@KestrelCare charged twice, ring me on +1 415 555 0134",
        "address": "@KestrelCare charged twice at 22 Mill Lane",
        "postcode": "@KestrelCare charged twice in EC1V 9HX",
        "name": "@KestrelCare this is Priya Patel from Leeds, charged twice",
        "account": "@KestrelCare charged twice on account 12345678901",
    }
    for text in texts.values():
        ticket_id = _stored_tweet(desk, text)
        with transaction(desk.engine) as conn:
            conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(intent="billing_issue"))
        _answer(desk, ticket_id, "Refund on its way. ^AB", resolve=True)

    examples = _unanswered(desk).training_examples()
    assert [example.text for example in examples] == ["why was I charged twice this month"]
    download = desk.logged_in("eve").get("/faq/training-examples.yml")
    assert download.status_code == 200
    assert yaml.safe_load(download.text)["nlu"] == [
        {"intent": "billing_issue", "examples": "- why was I charged twice this month\n"}
    ]
    for secret in ("4111", "123", "415", "Mill", "EC1V", "Priya", "12345678901"):
        assert secret not in download.text.split("\n", 3)[-1]  # past the header with its time stamp


def test_the_leads_ticket_list_leaves_personal_data_out(desk: WebDesk) -> None:
    desk.escalate(f"card {CARD} charged twice, I'm at 221b Baker Street")
    page = desk.logged_in("lee").get("/lead")
    assert page.status_code == 200
    assert "card [card number] charged twice, I&#39;m at [address]" in page.text
    assert "4111" not in page.text and "Baker" not in page.text
