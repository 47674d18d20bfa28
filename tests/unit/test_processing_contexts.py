"""The conversation context of a batch of stored tweets comes from one query per kind of fact (our replies, the
customers' other conversations, opt-outs, earlier handled tweets), whatever the batch's size, and each tweet gets
its own facts: nothing of one customer or conversation leaks to another."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from channel_support import ACCOUNT
from sqlalchemy import Engine, event, select

from bot.channel.models import inbound_tweets, opt_outs, outbox
from bot.channel.processing import TweetProcessor
from bot.db import make_engine, upgrade
from bot.decision.tone import ToneGuide
from bot.decision.triage import Context
from handoff.service import Handoff

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class _Desk:
    guide = ToneGuide.load()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _tweet(tweet_id: str, author: str, text: str, conversation: str | None = None, **values: Any) -> dict[str, Any]:
    return {
        "tweet_id": tweet_id, "source": "mention", "author_id": author, "author_username": author, "text": text,
        "conversation_id": conversation or tweet_id, "created_at": NOW - timedelta(minutes=5),
        "fetched_at": NOW - timedelta(minutes=5), "state": "new", "attempts": 0, "band": None,
        "in_reply_to_tweet_id": None, **values,
    }  # fmt: skip


def _reply(target: str, conversation: str, author: str, kind: str, posted: str | None) -> dict[str, Any]:
    return {
        "target_tweet_id": target, "conversation_id": conversation, "kind": kind, "author": author, "text": "…",
        "state": "sent" if posted else "pending", "attempts": 0, "posted_tweet_id": posted, "created_at": NOW,
        "updated_at": NOW,
    }  # fmt: skip


def _world(engine: Engine) -> None:
    handled = {"state": "done", "band": "auto", "fetched_at": NOW - timedelta(hours=3)}
    with engine.begin() as conn:
        conn.execute(
            inbound_tweets.insert(),
            [
                # earlier, handled: ann asked about her bill in c1 and about roaming in c2; bob in c9 long ago
                _tweet("10", "ann", "@KestrelCare is roaming free in Spain?", "c2", **handled),
                _tweet("11", "ann", "@KestrelCare my bill is wrong", "c1", **{**handled, "band": "human"}),
                _tweet("12", "bob", "@KestrelCare hello", "c9", state="done", band="auto",
                       fetched_at=NOW - timedelta(days=40)),
                _tweet("13", "cat", "@KestrelCare STOP", "c3", **{**handled, "band": "ignore"}),
                # the batch
                _tweet("20", "ann", "@KestrelCare Is roaming free in Spain??", "c4"),
                _tweet("21", "ann", "thanks", "c1", in_reply_to_tweet_id="90"),
                _tweet("22", "bob", "that did not help", "c5", in_reply_to_tweet_id="91"),
                _tweet("23", "cat", "hello?", "c6", in_reply_to_tweet_id="92"),
                _tweet("24", ACCOUNT.id, "@ann we are on it", "c1"),
            ],
        )  # fmt: skip
        conn.execute(
            outbox.insert(),
            [
                _reply("11", "c1", "bot", "faq_answer", "90"),
                _reply("x1", "c5", "bot", "acknowledgement", "91"),
                _reply("x2", "c5", "JD", "agent_reply", None),
                _reply("x3", "c6", "JD", "agent_reply", "92"),
            ],
        )
        conn.execute(opt_outs.insert().values(author_id="cat", tweet_id="13", created_at=NOW))


def _batch(engine: Engine, ids: list[str]) -> list[Any]:
    with engine.connect() as conn:
        rows = {row.tweet_id: row for row in conn.execute(select(inbound_tweets)).all()}
    return [rows[i] for i in ids]


def _processor(engine: Engine) -> TweetProcessor:
    return TweetProcessor(engine, _Desk(), Handoff(engine, sla_minutes=60), account_id=ACCOUNT.id)  # type: ignore[arg-type]


def test_each_tweet_of_a_batch_gets_its_own_facts(engine: Engine) -> None:
    _world(engine)
    processor = _processor(engine)
    ids = ["20", "21", "22", "23", "24"]
    with engine.connect() as conn:
        batch = dict(zip(ids, processor.contexts(conn, _batch(engine, ids), NOW), strict=True))
        alone = {i: processor.context(conn, _batch(engine, [i])[0], NOW) for i in ids}
    assert batch == alone
    waited = 5.0
    assert batch["20"] == Context(prior_contacts=2, waiting_minutes=waited, duplicate_of="10")
    assert batch["21"] == Context(
        bot_already_replied_in_interaction=True, in_thread_after_bot_answer=True, prior_contacts=2,
        waiting_minutes=waited,
    )  # fmt: skip
    assert batch["22"] == Context(bot_already_replied_in_interaction=True, waiting_minutes=waited)
    assert batch["23"] == Context(in_thread_after_agent_reply=True, prior_contacts=1, opted_out=True,
                                  waiting_minutes=waited)  # fmt: skip
    assert batch["24"].from_our_account and batch["24"].bot_already_replied_in_interaction


def test_a_batch_asks_the_same_queries_whatever_its_size(engine: Engine) -> None:
    _world(engine)
    processor = _processor(engine)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    counts = []
    for ids in (["20"], ["20", "21", "22", "23", "24"]):
        rows = _batch(engine, ids)
        statements.clear()
        with engine.connect() as conn:
            processor.contexts(conn, rows, NOW)
        counts.append(sum("x_tickets" not in statement and "handoff" not in statement for statement in statements))
    event.remove(engine, "before_cursor_execute", record)
    assert counts[0] == counts[1] == 4
