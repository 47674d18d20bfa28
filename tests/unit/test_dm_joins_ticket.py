"""A customer is one conversation across a public thread and DMs: the worker (in-memory X, keyword NLU) joins a
customer's DM to their open public ticket, on SQLite and PostgreSQL. Which ticket it joins when there are several,
the holder keeping it, reopening, the agent answering by DM or in public from it, and a DM from a customer without
an open ticket opening a DM ticket as before."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from channel_support import ACCOUNT, FakeX
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker
from test_worker import POLICY, KeywordNlu
from web_support import emptied_postgres

from bot.channel.intake import Intake
from bot.channel.models import inbound_tweets, outbox
from bot.channel.processing import TweetProcessor
from bot.channel.replies import ReplyError, queue_agent_reply
from bot.channel.sender import Sender
from bot.channel.worker import Worker
from bot.db import make_engine, upgrade
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.kb import KnowledgeBase
from handoff.models import audit_events, tickets
from handoff.service import Handoff, transaction
from knowledge_base.search import FaqSearcher
from knowledge_base.service import KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

HANDOVER = "Happy to look into this. Please send us a DM and we'll take it from there."


@dataclass
class Scene:
    engine: Engine
    x: FakeX
    handoff: Handoff
    worker: Worker
    agent_id: int

    def run(self, steps: int = 3) -> None:
        for _ in range(steps):
            self.worker.step()

    def rows(self, table: Any, *where: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table).where(*where).order_by(*table.primary_key.columns)).all())

    def ticket_of(self, tweet_id: str) -> Any:
        [row] = self.rows(inbound_tweets, inbound_tweets.c.tweet_id == tweet_id)
        return self.handoff.ticket(row.ticket_id) if row.ticket_id is not None else None

    def public_ticket(self, username: str, text: str = "@KestrelCare my bill is wrong again") -> int:
        tweet = self.x.customer_tweet(username, text)
        self.run()
        found = self.ticket_of(tweet.id)
        assert found is not None and found.ticket.source == "mention"
        return int(found.ticket.id)

    def reply(self, ticket_id: int, text: str, *, kind: str = "agent_reply", channel: str | None = None) -> Any:
        if self.handoff.ticket(ticket_id).ticket.state in ("queued", "reopened"):
            self.handoff.claim(ticket_id, self.agent_id)
        agent = self.handoff.agent(self.agent_id)
        with transaction(self.engine) as conn:
            queued = queue_agent_reply(conn, self.handoff, ticket_id, agent, f"{text} ^AB", kind=kind, channel=channel)  # type: ignore[arg-type]
        self.run()  # the sender posts it
        return queued

    def move_to_dm(self, ticket_id: int) -> None:
        self.reply(ticket_id, HANDOVER, kind="dm_handover", channel="public")


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
    kb = KnowledgeBase(KnowledgeBaseService(sessions, embedder), FaqSearcher(sessions, embedder, refresh_interval_s=0))
    x = FakeX()
    handoff = Handoff(engine, sla_minutes=60)
    desk = Desk(KeywordNlu(), kb, load_policy(POLICY), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    worker = Worker(
        engine=engine, intake=Intake(engine, x),
        processor=TweetProcessor(engine, desk, handoff, account_id=ACCOUNT.id, nlu_wait_s=60),
        sender=Sender(engine, x, handoff, reconcile_after_s=0), search_queries=("kestrel broken",), poll_interval_s=0,
    )  # fmt: skip
    agent = handoff.add_agent("ann", "Ann Brown", "AB", status="online", capacity=50)
    try:
        yield Scene(engine, x, handoff, worker, agent.id)
    finally:
        engine.dispose()


def test_a_dm_joins_the_customers_public_ticket_which_its_holder_keeps(scene: Scene) -> None:
    public = scene.public_ticket("gus")
    scene.handoff.claim(public, scene.agent_id)
    scene.move_to_dm(public)
    assert scene.handoff.ticket(public).ticket.state == "answered"
    dm = scene.x.customer_dm("gus", "hi, here is my account KT-12345678")
    scene.run()
    joined = scene.ticket_of(f"dm-{dm.id}")
    assert joined is not None and joined.ticket.id == public  # no ticket of its own
    assert len(scene.rows(tickets)) == 1
    ticket = joined.ticket
    assert ticket.dm_conversation_id == f"dm-{scene.x.users['gus']}" and ticket.source == "mention"
    assert ticket.state == "claimed" and ticket.agent_id == scene.agent_id  # the holder owes a reply
    assert [(m.direction, m.channel, m.author) for m in joined.messages] == [
        ("in", "public", "gus"), ("out", "public", "AB"), ("in", "dm", "gus"),
    ]  # fmt: skip
    [event] = scene.rows(audit_events, audit_events.c.action == "dm_joined")
    assert event.ticket_id == public and event.details["dm_conversation_id"] == ticket.dm_conversation_id
    assert [d for d in scene.x.dms if d.sender_id == ACCOUNT.id] == []  # the bot stayed silent
    # A second DM joins the same ticket through its DM conversation.
    again = scene.x.customer_dm("gus", "and my bill number is 5561")
    scene.run()
    assert scene.ticket_of(f"dm-{again.id}").ticket.id == public
    assert len(scene.rows(audit_events, audit_events.c.action == "dm_joined")) == 1


def test_the_agent_answers_by_dm_from_the_ticket_or_in_public_when_chosen(scene: Scene) -> None:
    public = scene.public_ticket("hal")
    scene.handoff.claim(public, scene.agent_id)
    scene.move_to_dm(public)
    scene.x.customer_dm("hal", "account KT-87654321")
    scene.run()
    tweets_before = len(scene.x.our_replies())
    # By DM by default, and personal data is fine in a DM.
    queued = scene.reply(public, "Thanks, account KT-87654321 is fixed now")
    [sent] = scene.rows(outbox, outbox.c.id == queued.outbox_id)
    assert sent.state == "sent" and sent.target_tweet_id.startswith("dm-")
    [dm] = [d for d in scene.x.dms if d.sender_id == ACCOUNT.id]
    assert dm.conversation_id == f"{scene.x.users['hal']}-{ACCOUNT.id}" and "KT-87654321" in dm.text
    assert len(scene.x.our_replies()) == tweets_before  # not a public reply
    assert scene.handoff.ticket(public).messages[-1].channel == "dm"
    # In public when the agent chooses it; personal data is refused there.
    with pytest.raises(ReplyError):
        scene.reply(public, "Account KT-87654321 is fixed now", channel="public")
    scene.reply(public, "All sorted in our DMs, thanks for your patience", channel="public")
    assert len(scene.x.our_replies()) == tweets_before + 1
    assert scene.handoff.ticket(public).messages[-1].channel == "public"


def test_of_several_open_tickets_the_dm_joins_the_one_moved_to_dm_else_the_newest(scene: Scene) -> None:
    moved = scene.public_ticket("ida", "@KestrelCare my bill is wrong")
    newer = scene.public_ticket("ida", "@KestrelCare and my other bill is wrong too")
    scene.handoff.claim(moved, scene.agent_id)
    scene.move_to_dm(moved)
    dm = scene.x.customer_dm("ida", "about that bill")
    scene.run()
    assert scene.ticket_of(f"dm-{dm.id}").ticket.id == moved
    assert scene.handoff.ticket(newer).ticket.dm_conversation_id is None
    # Without a move to DM: the most recent open ticket.
    older = scene.public_ticket("jo", "@KestrelCare my bill is wrong")
    newest = scene.public_ticket("jo", "@KestrelCare another bill is wrong")
    dm = scene.x.customer_dm("jo", "my bill is still wrong")
    scene.run()
    assert scene.ticket_of(f"dm-{dm.id}").ticket.id == newest
    assert scene.handoff.ticket(older).ticket.dm_conversation_id is None


def test_a_dm_without_an_open_ticket_opens_a_dm_ticket_as_before(scene: Scene) -> None:
    closed = scene.public_ticket("kit")
    scene.handoff.claim(closed, scene.agent_id)
    scene.handoff.resolve(closed, scene.agent_id)
    dm = scene.x.customer_dm("kit", "my bill is wrong, account KT-11112222")
    scene.run()
    ticket = scene.ticket_of(f"dm-{dm.id}")
    assert ticket is not None and ticket.ticket.id != closed and ticket.ticket.source == "dm"
    assert ticket.messages[0].channel == "dm"
    assert scene.handoff.ticket(closed).ticket.state == "resolved"
    assert scene.rows(audit_events, audit_events.c.action == "dm_joined") == []


def test_a_dm_after_the_joined_ticket_is_resolved_reopens_it(scene: Scene) -> None:
    public = scene.public_ticket("lou")
    scene.handoff.claim(public, scene.agent_id)
    scene.move_to_dm(public)
    scene.x.customer_dm("lou", "here are the details of my bill")
    scene.run()
    scene.reply(public, "Corrected your bill, you'll see it tomorrow")
    scene.handoff.resolve(public, scene.agent_id)
    dm = scene.x.customer_dm("lou", "my bill is wrong again")
    scene.run()
    found = scene.ticket_of(f"dm-{dm.id}")
    assert found is not None and found.ticket.id == public and found.ticket.state == "reopened"
    assert len(scene.rows(tickets)) == 1
