"""Where a reply may go under X's reply restriction for self-serve apps: the sandbox's rule (Store.summons) and
carebot's choice of the tweet a reply goes under (bot.channel.replies), on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from bot.channel.models import inbound_tweets, outbox
from bot.channel.replies import NO_REPLY_HERE, NoPublicReply, ReplyError, queue_agent_reply, reply_target
from bot.db import make_engine, upgrade
from bot.sandbox.store import Store
from handoff.service import Escalation, Handoff, transaction

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CONVERSATION = "1000"


# the sandbox's rule


def test_a_tweet_summons_the_account_when_someone_else_mentions_it_or_replies_to_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db", "KestrelCare")
    ann = store.create_user("ann")
    bob = store.create_user("bob")
    mention = store.create_tweet(ann, "hey @kestrelcare, my bill is wrong")
    hit = store.create_tweet(ann, "kestrel bill wrong again, KestrelCare is useless")
    lookalike = store.create_tweet(ann, "@KestrelCareers hiring? email@KestrelCare.com")
    ours = store.create_tweet(store.account, "@ann sorry, we are on it", in_reply_to=mention.id)
    under_ours = store.create_tweet(ann, "thanks, still broken", in_reply_to=ours.id)
    bystander = store.create_tweet(bob, "same for me", in_reply_to=mention.id)
    assert store.summons(mention, store.account) and store.summons(under_ours, store.account)
    assert not store.summons(hit, store.account)  # the name without @ is no mention
    assert not store.summons(lookalike, store.account)
    assert not store.summons(ours, store.account)  # our own tweet never summons us
    assert not store.summons(bystander, store.account)
    assert store.summons(bystander, ann) and not store.summons(mention, ann)
    # X's other summons: a quote of one of our posts (a quote of another's post is none).
    quote = store.create_tweet(bob, "look what they told Ann", quote_of=ours.id)
    other_quote = store.create_tweet(bob, "this!", quote_of=mention.id)
    assert store.summons(quote, store.account) and not store.summons(other_quote, store.account)
    assert store.summons(other_quote, ann)
    # Where a reply may go: a tweet that summons us, or our own (as developers report X takes it).
    assert store.allows_reply(ours, store.account) and store.allows_reply(mention, store.account)
    assert not store.allows_reply(hit, store.account) and not store.allows_reply(bystander, store.account)
    store.close()


def test_a_store_made_before_quote_posts_gets_their_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(path, "KestrelCare")
    first = store.create_tweet(store.create_user("ann"), "@KestrelCare hi")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE sandbox_tweets DROP COLUMN quoted_tweet_id")
    store.close()
    reopened = Store(path, "KestrelCare")
    quote = reopened.create_tweet(reopened.create_user("bob"), "quoting", quote_of=first.id)
    assert reopened.tweets_by_id([quote.id])[quote.id].quoted_tweet_id == first.id
    assert reopened.tweets_by_id([first.id])[first.id].quoted_tweet_id is None
    reopened.close()


# carebot's choice of target


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    db = make_engine(url)
    yield db
    db.dispose()


def inbound(engine: Engine, tweet_id: str, source: str, author: str = "cara") -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(inbound_tweets).values(
                tweet_id=tweet_id, source=source, author_id="77", author_username=author, text="kestrel bill",
                conversation_id=CONVERSATION, fetched_at=NOW, state="done",
            )
        )  # fmt: skip


def ours(engine: Engine, target: str, state: str = "sent", *, posted: str | None = None, author: str = "bot",
         error: str | None = None) -> int:  # fmt: skip
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(outbox).values(
                    target_tweet_id=target, conversation_id=CONVERSATION, kind="acknowledgement", author=author,
                    text=f"reply to {target} ^bot", state=state, attempts=1, posted_tweet_id=posted, last_error=error,
                    created_at=NOW, updated_at=NOW,
                ).returning(outbox.c.id)
            ).scalar_one()
        )  # fmt: skip


def target(engine: Engine, **options: bool) -> str:
    with engine.connect() as conn:
        return reply_target(conn, CONVERSATION, dm=False, ticket_id=1, **options)


def test_the_customers_newest_tweet_that_mentions_us_and_has_no_reply_is_the_target(engine: Engine) -> None:
    inbound(engine, CONVERSATION, "mention")
    inbound(engine, "1005", "mention")
    inbound(engine, "1009", "search")  # newer, but it never mentioned us
    assert target(engine, own_replies=False) == "1005"
    ours(engine, "1005", posted="1006")
    assert target(engine, own_replies=False) == CONVERSATION
    inbound(engine, "1010", "backfill")  # a mention read through the gap backfill
    assert target(engine, own_replies=False) == "1010"


def test_our_own_reply_is_the_target_only_once_each_tweet_that_mentions_us_has_ours(engine: Engine) -> None:
    inbound(engine, CONVERSATION, "mention")
    ours(engine, CONVERSATION, posted="1002")
    assert target(engine) == "1002"
    inbound(engine, "1003", "mention")  # the customer writes again: under that, not under ours
    assert target(engine) == "1003"
    ours(engine, "1003", posted="1004")
    assert target(engine) == "1004"  # our newest
    with pytest.raises(NoPublicReply) as refused:
        target(engine, own_replies=False)
    assert str(refused.value).startswith(NO_REPLY_HERE) and "Answer @cara by DM" in str(refused.value)


def test_a_thread_of_keyword_hits_only_has_no_target_and_says_the_customer_never_mentioned_us(engine: Engine) -> None:
    inbound(engine, CONVERSATION, "search")
    ours(engine, CONVERSATION, posted="1002")  # a reply of ours there (from before X's rule): not under it either
    with pytest.raises(NoPublicReply) as refused:
        target(engine)
    message = str(refused.value)
    assert "@cara never mentioned us" in message and "a new tweet that mentions @cara" in message


def test_a_reply_still_being_posted_is_waited_for_not_refused(engine: Engine) -> None:
    inbound(engine, CONVERSATION, "mention")
    ours(engine, CONVERSATION, "pending")
    with pytest.raises(ReplyError) as waiting:
        target(engine, own_replies=False)
    assert not isinstance(waiting.value, NoPublicReply) and "still being posted" in str(waiting.value)


def test_the_agent_takes_over_the_tweet_of_a_failed_bot_reply(engine: Engine) -> None:
    inbound(engine, CONVERSATION, "mention")
    failed = ours(engine, CONVERSATION, "failed", error="X was unavailable for 0:15:00")
    assert target(engine, own_replies=False, reuse_failed=True) == CONVERSATION
    handoff = Handoff(engine, sla_minutes=60)
    agent = handoff.add_agent("ann", "Ann Brown", "AB", status="online", capacity=5)
    with transaction(engine) as conn:
        ticket = handoff.escalate(
            conn,
            Escalation(
                conversation_id=CONVERSATION, tweet_id=CONVERSATION, customer_id="77", customer_handle="cara",
                text="kestrel bill", created_at=NOW, source="mention", band="human", reasons=["test"], priority=2,
                skill="general",
            ),
        )  # fmt: skip
    handoff.claim(ticket, agent.id)
    with transaction(engine) as conn:
        queued = queue_agent_reply(conn, handoff, ticket, handoff.agent(agent.id), "Sorry Cara, sorted now ^AB")  # type: ignore[arg-type]
    assert queued.outbox_id == failed and queued.target_tweet_id == CONVERSATION  # one row per tweet, still
    with engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == failed)).one()
    assert (row.state, row.author, row.kind, row.last_error, row.ticket_id) == ("pending", "AB", "agent_reply", None,
                                                                               ticket)  # fmt: skip


def test_a_failed_reply_x_refused_by_its_rule_or_an_agents_is_not_taken_over(engine: Engine) -> None:
    inbound(engine, CONVERSATION, "mention")
    ours(engine, CONVERSATION, "failed", error=f"{NO_REPLY_HERE}: X refused it (HTTP 403)")
    with pytest.raises(NoPublicReply):
        target(engine, own_replies=False, reuse_failed=True)
    inbound(engine, "1004", "mention")
    ours(engine, "1004", "failed", author="AB", error="X refused the reply: HTTP 400")
    with pytest.raises(NoPublicReply):
        target(engine, own_replies=False, reuse_failed=True)
