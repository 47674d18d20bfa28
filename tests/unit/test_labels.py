"""Labels from the work agents already do and from customers' follow-ups, on SQLite and PostgreSQL: the worker
(in-memory X, keyword NLU) and the agent console store one label per action, about the decided tweet, its FAQ
entry, its score and its kind of message, with who gave it, and with the customer's personal data stripped. A
kind in shadow mode is drafted for agents instead of posted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from channel_support import ACCOUNT, FakeX
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker
from test_worker import POLICY, RESTART, KeywordNlu
from web_support import emptied_postgres

from bot.channel.intake import Intake
from bot.channel.processing import TweetProcessor
from bot.channel.sender import Sender
from bot.channel.worker import Worker
from bot.db import make_engine, upgrade
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.kb import KnowledgeBase
from bot.web.accounts import Account
from bot.web.console import ConsoleService
from handoff.labels import Label
from handoff.models import audit_events
from handoff.service import Handoff
from knowledge_base.search import FaqSearcher
from knowledge_base.service import EntryContent, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

ANSWER = "Hold the reset button for 10 seconds, then wait 2 minutes."


@dataclass
class Scene:
    engine: Engine
    x: FakeX
    handoff: Handoff
    worker: Worker
    console: ConsoleService
    account: Account
    entry_id: int

    def run(self, steps: int = 3) -> None:
        for _ in range(steps):
            self.worker.step()

    def labels(self) -> list[Label]:
        return list(reversed(self.console.labels.recent()))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'carebot.db'}"
        upgrade(url)
    else:
        url = emptied_postgres(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    service = KnowledgeBaseService(sessions, embedder)
    service.create_draft(
        EntryContent(
            slug="restart-hub", question=RESTART, answer=ANSWER, paraphrases=("my hub is frozen how do I reboot it",),
            tags=("hub",), language="en",
        ),  # fmt: skip
        author="editor",
    )
    service.publish("restart-hub", author="editor")
    kb = KnowledgeBase(service, FaqSearcher(sessions, embedder, refresh_interval_s=0))
    x = FakeX()
    handoff = Handoff(engine, sla_minutes=60)
    desk = Desk(KeywordNlu(), kb, load_policy(POLICY), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    worker = Worker(
        engine=engine, intake=Intake(engine, x),
        processor=TweetProcessor(engine, desk, handoff, account_id=ACCOUNT.id, nlu_wait_s=60),
        sender=Sender(engine, x, handoff, reconcile_after_s=0), search_queries=("kestrel broken",), poll_interval_s=0,
    )  # fmt: skip
    agent = handoff.add_agent("ann", "Ann Brown", "AB", status="online", capacity=50)
    account = Account(
        id=1, username="ann", display_name="Ann Brown", role="agent", initials="AB", agent_id=agent.id, active=True,
        created_at=datetime.now(UTC),
    )  # fmt: skip
    console = ConsoleService(handoff, engine, knowledge_base=lambda: kb)
    entry_id = kb.service.get("restart-hub").id
    try:
        yield Scene(engine, x, handoff, worker, console, account, entry_id)
    finally:
        engine.dispose()


def _ticket_of(scene: Scene, tweet_id: str) -> int:
    for row in scene.handoff.queue():
        if any(m.tweet_id == tweet_id for m in scene.handoff.ticket(row.ticket.id).messages):
            return int(row.ticket.id)
    raise AssertionError(f"no open ticket has tweet {tweet_id}")


def test_a_kind_in_shadow_is_drafted_and_each_agent_action_on_the_draft_is_a_label(scene: Scene) -> None:
    assert scene.console.labels.switch("kind", "product_question", "shadow", by="lead", reason="first week")
    tweets = [scene.x.customer_tweet(name, f"@KestrelCare {RESTART}") for name in ("ann", "bob", "cat", "dan")]
    scene.run()
    assert scene.x.our_replies() == []  # in shadow the bot posts nothing
    tickets = [_ticket_of(scene, t.id) for t in tweets]
    for ticket_id in tickets:
        ticket = scene.handoff.ticket(ticket_id).ticket
        assert ticket.band == "approve" and ANSWER in (ticket.draft_reply or "")
        scene.handoff.claim(ticket_id, scene.account.agent_id or 0)

    scene.console.approve_draft(tickets[0], scene.account)  # unchanged
    draft = scene.console.strip_own_signature(
        scene.console.guide.signature_pattern.sub("", scene.handoff.ticket(tickets[1]).ticket.draft_reply or ""),
        scene.account,
    ).strip()
    scene.console.reply(tickets[1], scene.account, draft + " Sorry for the wait.")  # edited
    scene.console.reject_draft(tickets[2], scene.account)
    scene.console.reply(tickets[2], scene.account, "Let me look into your hub for you.")  # written from scratch

    found = scene.labels()
    assert [(label.label, label.correct, label.ticket_id) for label in found] == [
        ("approved", True, tickets[0]), ("edited", True, tickets[1]), ("rejected", False, tickets[2]),
        ("own_reply", False, tickets[2]),
    ]  # fmt: skip
    for label in found:
        assert (label.actor, label.kind, label.faq_entry_id) == ("ann", "product_question", scene.entry_id)
        assert label.score is not None and 0 < label.score <= 1
        assert label.text == RESTART  # without the @mention
    assert found[0].edit_distance == 0 and found[1].edit_distance == len(" Sorry for the wait.")
    tally = {(t.scope, t.key): t for t in scene.console.labels.tallies()}
    assert (tally["kind", "product_question"].count, tally["kind", "product_question"].correct) == (4, 2)
    assert tally["entry", str(scene.entry_id)].complaints == 1
    with scene.engine.connect() as conn:
        [switch] = conn.execute(select(audit_events).where(audit_events.c.action == "automation_switched")).all()
    assert switch.actor == "lead" and switch.details == {
        "scope": "kind", "key": "product_question", "from": "policy", "to": "shadow", "reason": "first week",
    }  # fmt: skip


def test_customers_thanks_and_didnt_help_under_an_automatic_answer_label_that_answer(scene: Scene) -> None:
    happy = scene.x.customer_tweet("eve", f"@KestrelCare {RESTART}")
    unhappy = scene.x.customer_tweet("fay", f"@KestrelCare {RESTART}")
    scene.run()
    [answer_happy] = scene.x.replies_to(happy.id)
    [answer_unhappy] = scene.x.replies_to(unhappy.id)
    scene.x.customer_tweet("eve", "@KestrelCare thanks", in_reply_to=answer_happy.id)
    scene.x.customer_tweet("fay", "@KestrelCare that didn't help at all", in_reply_to=answer_unhappy.id)
    scene.run()
    found = {label.tweet_id: label for label in scene.labels()}
    assert (found[happy.id].label, found[happy.id].correct) == ("thanks", True)
    assert (found[unhappy.id].label, found[unhappy.id].correct) == ("didnt_help", False)
    for label in found.values():
        assert (label.actor, label.kind, label.faq_entry_id) == ("customer", "product_question", scene.entry_id)
    scene.run()
    assert len(scene.labels()) == 2  # each follow-up once


def test_a_suggestion_inserted_and_sent_is_a_label_without_the_customers_personal_data(scene: Scene) -> None:
    tweet = scene.x.customer_tweet("gus", f"@KestrelCare broken again. {RESTART} Ring me on 07700 900123")
    scene.run()
    ticket_id = _ticket_of(scene, tweet.id)
    scene.handoff.claim(ticket_id, scene.account.agent_id or 0)
    [top, *_] = scene.console.suggestions(scene.console.ticket(ticket_id).last_customer_text, scene.account,
                                          seed=ticket_id)  # fmt: skip
    assert top.entry_id == scene.entry_id
    scene.console.reply(ticket_id, scene.account, top.insert_text)
    [label] = scene.labels()
    assert (label.label, label.correct, label.faq_entry_id, label.score) == (
        "suggestion_sent", True, scene.entry_id, top.score,
    )  # fmt: skip
    assert "07700" not in label.text and "900123" not in label.text and "Kestrel hub" in label.text
    scene.run()  # the reply is posted
    scene.console.move_to_dm(ticket_id, scene.account)
    assert len(scene.labels()) == 1  # asking to move to DM says nothing about the answer
