"""Reply targets under X's reply restriction, at the worker's level over real HTTP: carebot's worker (intake,
triage, the sender) and agents' replies through tweepy against the sandbox X with the restriction on. A keyword-search
hit that never mentioned us gets no reply attempted, the agent is told why and what to do instead; a reply later in
a thread goes under the customer's newest tweet, never under our own reply; a reply X refuses anyway fails at once
with the reason on the ticket, is not retried, and loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import sessionmaker

from bot.channel.intake import Intake
from bot.channel.models import inbound_tweets, outbox
from bot.channel.processing import TweetProcessor
from bot.channel.replies import NO_REPLY_HERE, NoPublicReply, queue_agent_reply
from bot.channel.sender import Sender
from bot.channel.worker import Worker
from bot.channel.x_client import XClient
from bot.db import make_engine, upgrade
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.kb import KnowledgeBase
from bot.nlu.client import NluResult, parse_response
from bot.nlu.testing import canned_parse
from bot.sandbox.testing import RunningSandbox, running_sandbox
from bot.settings import Settings
from handoff.service import Handoff, transaction
from knowledge_base.search import FaqSearcher
from knowledge_base.service import KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

POLICY = Path(__file__).resolve().parent.parent / "data" / "policy.yml"
SEARCH = "kestrel broken"


class BillingNlu:
    """Stands in for Rasa: every tweet is a billing issue, which goes to a person."""

    def parse(self, text: str) -> NluResult:
        return parse_response(canned_parse(text, "billing_issue", 0.95), text)


@dataclass
class Scene:
    sandbox: RunningSandbox
    http: httpx.Client
    engine: Engine
    handoff: Handoff
    worker: Worker
    agent_id: int

    def tweet(self, username: str, text: str, reply_to: str | None = None) -> str:
        body: dict[str, Any] = {"username": username, "text": text}
        if reply_to:
            body["in_reply_to_tweet_id"] = reply_to
        response = self.http.post("/sandbox/customer-tweets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def run(self, steps: int = 3) -> None:
        for _ in range(steps):
            self.worker.step()

    def ticket_of(self, tweet_id: str) -> int:
        with self.engine.connect() as conn:
            ticket_id = conn.execute(
                select(inbound_tweets.c.ticket_id).where(inbound_tweets.c.tweet_id == tweet_id)
            ).scalar_one()
        assert ticket_id is not None
        return int(ticket_id)

    def reply(self, ticket_id: int, text: str, channel: str | None = "public") -> None:
        if self.handoff.ticket(ticket_id).ticket.state in ("queued", "reopened"):
            self.handoff.claim(ticket_id, self.agent_id)
        agent = self.handoff.agent(self.agent_id)
        with transaction(self.engine) as conn:
            queue_agent_reply(conn, self.handoff, ticket_id, agent, f"{text} ^AB", channel=channel)  # type: ignore[arg-type]
        self.run()  # the sender posts it

    def posted(self) -> list[dict[str, Any]]:
        return list(self.http.get("/sandbox/posts").json()["data"])

    def post_requests(self) -> int:
        return int(self.http.get("/sandbox/stats").json()["requests"].get("create_tweet", 0))

    def outbox_rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(outbox).order_by(outbox.c.id)).all())


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = sessionmaker(engine)
    embedder = FakeEmbedder()
    kb = KnowledgeBase(KnowledgeBaseService(sessions, embedder), FaqSearcher(sessions, embedder, refresh_interval_s=0))
    handoff = Handoff(engine, sla_minutes=60)
    desk = Desk(BillingNlu(), kb, load_policy(POLICY), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    with (
        running_sandbox(tmp_path / "sandbox-x.db") as sandbox,  # X's reply restriction on, as for self-serve apps
        httpx.Client(base_url=sandbox.url) as http,
    ):
        settings = Settings(data_dir=tmp_path / "var", x_api_url=sandbox.url, x_timeout_s=5.0, x_max_retries=0)
        with XClient.from_settings(settings) as client:
            me = client.me()
            worker = Worker(
                engine=engine, intake=Intake(engine, client),
                processor=TweetProcessor(engine, desk, handoff, account_id=me.id, nlu_wait_s=60),
                sender=Sender(engine, client, handoff, reconcile_after_s=0), search_queries=(SEARCH,),
                poll_interval_s=0,
            )  # fmt: skip
            agent = handoff.add_agent("ann", "Ann Brown", "AB", status="online", capacity=50)
            try:
                yield Scene(sandbox, http, engine, handoff, worker, agent.id)
            finally:
                engine.dispose()


def test_a_keyword_search_hit_gets_no_blind_reply_and_the_agent_is_told_why(scene: Scene) -> None:
    hit = scene.tweet("uma", "kestrel broken again, third bill this month")
    scene.run()
    with scene.engine.connect() as conn:
        source = conn.execute(select(inbound_tweets.c.source).where(inbound_tweets.c.tweet_id == hit)).scalar_one()
    assert source == "search"
    ticket = scene.ticket_of(hit)
    requests_before = scene.post_requests()
    with pytest.raises(NoPublicReply) as refused:
        scene.reply(ticket, "Sorry Uma, we can sort the bill out")
    message = str(refused.value)
    assert message.startswith(NO_REPLY_HERE) and "@uma never mentioned us" in message
    assert "by DM if their DMs are open" in message and "a new tweet that mentions @uma" in message
    assert scene.outbox_rows() == [] and scene.posted() == []
    # The alternative: by default the agent's reply goes by DM to the customer, who never wrote to us by DM.
    scene.reply(ticket, "Sorry Uma, we can sort the bill out here", channel=None)
    [dm_row] = scene.outbox_rows()
    assert dm_row.state == "sent" and dm_row.target_tweet_id.startswith("dm-") and scene.posted() == []
    [dm] = scene.http.get("/sandbox/posts").json()["dms"]
    uma = scene.http.get("/sandbox/timeline").json()["data"][0]["author_id"]
    assert dm["recipient_id"] == uma and "sort the bill out" in dm["text"]
    assert scene.handoff.ticket(ticket).messages[-1].channel == "dm"
    # A reply queued under it anyway (by carebot before this rule, say) is not sent blindly: it fails at once.
    now = datetime.now(UTC)
    with scene.engine.begin() as conn:
        conn.execute(
            insert(outbox).values(
                target_tweet_id=hit, conversation_id=hit, kind="acknowledgement", author="bot",
                text="We're on it ^bot", state="pending", attempts=0, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    scene.run()
    row = scene.outbox_rows()[-1]
    assert row.state == "failed" and row.last_error.startswith(NO_REPLY_HERE) and "@uma" in row.last_error
    assert scene.post_requests() == requests_before and scene.posted() == []  # never asked X to post it
    assert row.ticket_id == ticket  # the person who has the customer's ticket has this tweet too


def test_a_reply_later_in_the_thread_goes_under_the_customers_newest_tweet(scene: Scene) -> None:
    opener = scene.tweet("vic", "@KestrelCare my bill is wrong again")
    scene.run()
    ticket = scene.ticket_of(opener)
    scene.reply(ticket, "Sorry Vic, which month is it?")
    [first] = scene.posted()
    assert first["in_reply_to_tweet_id"] == opener
    # The customer answers under our reply (on X it starts with @KestrelCare): it joins the ticket.
    answer = scene.tweet("vic", "November, it says 80 instead of 40", reply_to=first["id"])
    scene.run()
    assert scene.ticket_of(answer) == ticket
    scene.reply(ticket, "Thanks Vic, the 40 is refunded today")
    posted = scene.posted()
    assert [post["in_reply_to_tweet_id"] for post in posted] == [opener, answer]  # not under our first reply
    # With every tweet of theirs answered: under our own newest reply, which the sandbox takes as X is reported to.
    scene.reply(ticket, "Anything else we can do, Vic?")
    assert [post["in_reply_to_tweet_id"] for post in scene.posted()] == [opener, answer, posted[1]["id"]]
    assert all(row.state == "sent" for row in scene.outbox_rows())


def test_a_reply_x_refuses_fails_once_with_the_reason_on_the_ticket(scene: Scene) -> None:
    opener = scene.tweet("wes", "@KestrelCare my bill is wrong again")
    scene.run()
    ticket = scene.ticket_of(opener)
    scene.reply(ticket, "Sorry Wes, we are looking at it")
    # A reply queued under a bystander's tweet carebot never read (as an older carebot might have): X refuses it.
    bystander = scene.tweet("xia", "same problem here", reply_to=opener)
    now = datetime.now(UTC)
    with transaction(scene.engine) as conn:
        outbox_id = conn.execute(
            insert(outbox).values(
                target_tweet_id=bystander, conversation_id=opener, kind="agent_reply", author="AB",
                text="Update: it is fixed ^AB", state="pending", attempts=0, ticket_id=ticket, created_at=now,
                updated_at=now,
            ).returning(outbox.c.id)
        ).scalar_one()  # fmt: skip
        scene.handoff.record_outbound(
            conn, ticket, author="AB", text="Update: it is fixed ^AB", outbox_id=outbox_id, kind="agent_reply"
        )
    scene.run()
    requests_after = scene.post_requests()
    row = next(r for r in scene.outbox_rows() if r.id == outbox_id)
    assert row.state == "failed" and row.attempts == 1
    assert row.last_error.startswith(NO_REPLY_HERE) and "HTTP 403" in row.last_error and "@wes" in row.last_error
    message = scene.handoff.ticket(ticket).messages[-1]
    assert message.outbox_id == outbox_id and message.delivery == "failed"
    scene.run()
    assert scene.post_requests() == requests_after  # not retried
    assert len(scene.posted()) == 1
