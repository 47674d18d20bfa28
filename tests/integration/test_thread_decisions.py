"""Real-shaped threads through the sandbox X and the real worker (tweepy over HTTP, the real Rasa, the real MiniLM,
the default FAQ and the calibrated policy): where a tweet stands in its conversation decides what the bot does.

- "I did." under an agent's reply joins the agent's ticket, and the bot says nothing;
- "thanks but still no signal" under the bot's answer goes to a person, with no second reply from the bot;
- "STOP" silences the bot for that customer, and the opt-out is recorded;
- "how do I stop marketing texts" is answered from the FAQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from worker_support import fresh_database, start_worker, stop_worker, tweet, wait_for, worker_environment

from bot.channel.models import inbound_tweets, opt_outs, outbox
from bot.channel.replies import queue_agent_reply
from bot.db import make_engine
from bot.sandbox.testing import running_sandbox
from bot.settings import PROJECT_ROOT
from handoff.service import Handoff

pytestmark = pytest.mark.rasa


class Desk:
    """The running worker on a sandbox X, and ways to look at what it did."""

    def __init__(self, sandbox_url: str, database_url: str, log: Path) -> None:
        self.sandbox_url = sandbox_url
        self.database_url = database_url
        self.log = log
        self.engine = make_engine(database_url)
        self.handoff = Handoff(self.engine)

    def decided(self, tweet_id: str) -> Any:
        def done() -> bool:
            with self.engine.connect() as conn:
                state = conn.execute(
                    select(inbound_tweets.c.state).where(inbound_tweets.c.tweet_id == tweet_id)
                ).scalar()
            return state == "done"

        wait_for(done, 90, f"tweet {tweet_id} to be triaged", self.log, self.database_url)
        with self.engine.connect() as conn:
            return conn.execute(select(inbound_tweets).where(inbound_tweets.c.tweet_id == tweet_id)).one()

    def posts(self) -> list[dict[str, Any]]:
        found = httpx.get(f"{self.sandbox_url}/sandbox/posts", timeout=10).json()
        return list(found.get("data", found) if isinstance(found, dict) else found)

    def replies_to(self, tweet_id: str) -> list[dict[str, Any]]:
        return [post for post in self.posts() if _replied_to(post) == tweet_id]

    def wait_for_reply(self, tweet_id: str) -> dict[str, Any]:
        wait_for(lambda: bool(self.replies_to(tweet_id)), 90, f"a reply to {tweet_id}", self.log, self.database_url)
        return self.replies_to(tweet_id)[0]

    def nothing_pending(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(outbox.c.id).where(outbox.c.state.not_in(("sent", "failed")))).first() is None


def _replied_to(post: dict[str, Any]) -> str | None:
    if post.get("in_reply_to_tweet_id"):
        return str(post["in_reply_to_tweet_id"])
    for ref in post.get("referenced_tweets") or ():
        if ref.get("type") == "replied_to":
            return str(ref["id"])
    return None


@pytest.fixture(scope="module")
def desk(rasa_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    directory = tmp_path_factory.mktemp("threads")
    database_url = fresh_database(f"sqlite:///{directory / 'carebot.db'}")
    with running_sandbox(directory / "sandbox-x.db") as sandbox:
        env = worker_environment(
            data_dir=directory / "var", database_url=database_url, sandbox_url=sandbox.url, rasa=rasa_server,
            training_dir=PROJECT_ROOT / "training_data",
        )  # fmt: skip
        log = directory / "worker.log"
        worker = start_worker(env, log)
        the_desk = Desk(sandbox.url, database_url, log)
        try:
            yield the_desk
        finally:
            stop_worker(worker)
            the_desk.engine.dispose()


def test_i_did_under_an_agents_reply_joins_the_ticket_and_the_bot_says_nothing(desk: Desk) -> None:
    opener = tweet(desk.sandbox_url, "nia", "@KestrelCare engineer didnt turn up AGAIN, third time this month")
    row = desk.decided(opener["id"])
    assert row.band in ("human", "approve") and row.ticket_id is not None, row.decision["decision"]["reasons"]
    agent = desk.handoff.add_agent("amy", "Amy Bell", "AB", status="online")
    desk.handoff.claim(row.ticket_id, agent.id)
    with desk.engine.begin() as conn:
        queue_agent_reply(conn, desk.handoff, row.ticket_id, agent,
                          "Sorry about that. Could you restart the Hub and tell us if it helps? ^AB")  # fmt: skip
    agents_reply = desk.wait_for_reply(opener["id"])
    assert agents_reply["text"].endswith("^AB")

    follow_up = tweet(desk.sandbox_url, "nia", "@KestrelCare I did.", in_reply_to=agents_reply["id"])
    row = desk.decided(follow_up["id"])
    decision = row.decision["decision"]
    assert row.band == "human" and decision["position"] == "held_by_person", decision["reasons"]
    assert row.ignore_reason is None
    messages = desk.handoff.ticket(row.ticket_id).messages
    assert follow_up["id"] in {message.tweet_id for message in messages}
    wait_for(desk.nothing_pending, 30, "the outbox to settle")
    assert desk.replies_to(follow_up["id"]) == []


def test_thanks_but_still_broken_under_the_bots_answer_goes_to_a_person(desk: Desk) -> None:
    question = tweet(desk.sandbox_url, "olu", "@KestrelCare how do I restart my Kestrel hub?")
    row = desk.decided(question["id"])
    assert row.band == "auto", row.decision["decision"]["reasons"]
    answer = desk.wait_for_reply(question["id"])
    assert answer["text"].endswith("^bot")

    follow_up = tweet(desk.sandbox_url, "olu", "@KestrelCare thanks but still no signal", in_reply_to=answer["id"])
    row = desk.decided(follow_up["id"])
    decision = row.decision["decision"]
    assert row.band == "human" and row.ticket_id is not None, decision["reasons"]
    assert decision["position"] == "after_bot_answer" and decision["attach_thread"]
    wait_for(desk.nothing_pending, 30, "the outbox to settle")
    assert desk.replies_to(follow_up["id"]) == []  # never a second automated reply


def test_stop_silences_the_bot_and_is_recorded(desk: Desk) -> None:
    stop = tweet(desk.sandbox_url, "pat", "@KestrelCare STOP")
    row = desk.decided(stop["id"])
    assert (row.band, row.ignore_reason) == ("ignore", "opt_out"), row.decision["decision"]["reasons"]
    with desk.engine.connect() as conn:
        assert conn.execute(select(opt_outs).where(opt_outs.c.author_id == row.author_id)).first() is not None
    later = tweet(desk.sandbox_url, "pat", "@KestrelCare how do I restart my Kestrel hub?")
    row = desk.decided(later["id"])
    assert row.band != "auto" and row.decision["reply_status"] != "bot_posts"
    wait_for(desk.nothing_pending, 30, "the outbox to settle")
    assert desk.replies_to(stop["id"]) == [] and desk.replies_to(later["id"]) == []


def test_how_do_i_stop_marketing_texts_is_answered(desk: Desk) -> None:
    question = tweet(desk.sandbox_url, "quin", "@KestrelCare how do I stop marketing texts")
    row = desk.decided(question["id"])
    decision = row.decision["decision"]
    assert row.band == "auto" and decision["faq"]["slug"] == "marketing-opt-out", decision["reasons"]
    assert row.ignore_reason is None
    assert desk.wait_for_reply(question["id"])["text"].endswith("^bot")
