"""The sender keeps within X's published posting limits (bot.channel.x_limits): public replies and DMs each have
their windows, a full window holds its rows back (with one alert naming when it frees) without holding back the
other channel, satisfaction questions leave room for agents' DMs, and a 429 on DMs does not stop public replies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from channel_support import FakeX
from sqlalchemy import Engine, event, insert, select

from bot.channel.errors import XCreditsDepleted, XRateLimited
from bot.channel.models import alerts, inbound_tweets, outbox
from bot.channel.sender import Sender
from bot.channel.x_limits import TIERS, limits_for
from bot.db import make_engine, upgrade
from handoff.service import Handoff

START = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def queue_replies(engine: Engine, x: FakeX, count: int, *, kind: str = "faq_answer") -> list[str]:
    """`count` pending public replies, each to its own customer tweet on the fake X."""
    targets = []
    with engine.begin() as conn:
        for n in range(count):
            tweet = x.customer_tweet(f"c{kind}{n}", f"@KestrelCare my hub is down ({kind} {n})")
            conn.execute(insert(outbox).values(**row(tweet.id, tweet.id, kind, f"Reply {kind} {n} ^bot")))
            targets.append(tweet.id)
    return targets


def queue_dms(engine: Engine, count: int, *, kind: str, prefix: str) -> None:
    """`count` pending DMs, each in its own DM conversation with a known customer."""
    with engine.begin() as conn:
        for n in range(count):
            conversation = f"{prefix}{n}"
            conn.execute(
                insert(inbound_tweets).values(
                    tweet_id=f"9{abs(hash(conversation)) % 10**12}",
                    source="dm",
                    author_id=f"77{n}",
                    text="hello",
                    conversation_id=conversation,
                    fetched_at=START,
                    state="done",
                )  # fmt: skip
            )
            conn.execute(insert(outbox).values(**row(f"dm-{conversation}", conversation, kind, f"{kind} {n} ^bot")))


def row(target: str, conversation: str, kind: str, text: str) -> dict[str, Any]:
    return {
        "target_tweet_id": target, "conversation_id": conversation, "kind": kind, "author": "bot", "text": text,
        "state": "pending", "attempts": 0, "created_at": START, "updated_at": START,
    }  # fmt: skip


def states(engine: Engine, kind: str | None = None) -> dict[str, int]:
    with engine.connect() as conn:
        query = select(outbox.c.state)
        if kind:
            query = query.where(outbox.c.kind == kind)
        found: dict[str, int] = {}
        for state in conn.execute(query).scalars():
            found[state] = found.get(state, 0) + 1
        return found


def budget_alerts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(alerts.c.message).where(alerts.c.kind == "posting_budget")).scalars())


def sender_for(engine: Engine, x: FakeX, clock: Clock, tier: str = "pay-per-use") -> Sender:
    return Sender(engine, x, Handoff(engine), batch_size=500, clock=clock, limits=limits_for(tier))


def test_public_replies_stop_at_100_per_15_minutes_and_the_rest_go_when_the_window_frees(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_replies(engine, x, 130)
    sender = sender_for(engine, x, clock)
    report = sender.send_due()
    assert (report.sent, report.waiting_for_budget) == (100, 30)
    assert x.calls["create_tweet"] == 100 and states(engine) == {"sent": 100, "pending": 30}
    [alert] = budget_alerts(engine)
    assert "100 per 15 minutes public replies" in alert and "30 wait until 10:15 UTC" in alert
    clock.now = START + timedelta(minutes=5)
    report = sender.send_due()
    assert (report.sent, report.waiting_for_budget) == (0, 30)
    assert len(budget_alerts(engine)) == 1  # one alert per full window, not one per step
    clock.now = START + timedelta(minutes=15, seconds=1)
    assert sender.send_due().sent == 30
    assert states(engine) == {"sent": 130}


def test_while_a_window_is_full_each_step_is_one_look_at_the_outbox_and_dms_still_go(engine: Engine) -> None:
    """The sender steps ten times a second: while the public window is full it does not count X's windows
    again on every step (that cost a few milliseconds of CPU per tweet under load), yet DMs queued meanwhile go."""
    x, clock = FakeX(), Clock()
    queue_replies(engine, x, 110)
    sender = sender_for(engine, x, clock)
    assert sender.send_due().sent == 100
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    clock.now = START + timedelta(minutes=1)
    report = sender.send_due()
    assert (report.sent, report.waiting_for_budget) == (0, 10)
    assert len(statements) <= 2, statements
    queue_dms(engine, 2, kind="agent_reply", prefix="later")
    clock.now = START + timedelta(minutes=2)
    assert sender.send_due().sent == 2 and len(x.dms) == 2 and x.calls["create_tweet"] == 100
    clock.now = START + timedelta(minutes=15, seconds=1)
    assert sender.send_due().sent == 10


def test_a_full_window_of_public_replies_does_not_hold_back_dms(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_replies(engine, x, 105)
    queue_dms(engine, 3, kind="agent_reply", prefix="conv")
    report = sender_for(engine, x, clock).send_due()
    assert report.sent == 103 and len(x.dms) == 3 and x.calls["create_tweet"] == 100


def test_dms_keep_to_15_per_15_minutes_and_satisfaction_questions_leave_room_for_agents(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_dms(engine, 20, kind="csat_question", prefix="survey")
    sender = sender_for(engine, x, clock)
    sender.send_due()
    assert states(engine, "csat_question") == {"sent": 7, "pending": 13}  # half of the window, rounded down
    queue_dms(engine, 10, kind="agent_reply", prefix="agent")  # queued after the questions, sent before them
    sender.send_due()
    assert states(engine, "agent_reply") == {"sent": 8, "pending": 2}  # the 15 of the window are used up
    assert states(engine, "csat_question") == {"sent": 7, "pending": 13}
    assert any("15 per 15 minutes DMs" in message for message in budget_alerts(engine))
    clock.now = START + timedelta(minutes=16)
    sender.send_due()
    assert states(engine, "agent_reply") == {"sent": 10}
    assert states(engine, "csat_question") == {"sent": 14, "pending": 6}


def test_the_24_hour_dm_limit_counts_too(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    limits = TIERS["pay-per-use"]
    assert [w.limit for w in limits.dms] == [15, 1440]
    queue_dms(engine, 30, kind="agent_reply", prefix="d")
    sender = sender_for(engine, x, clock)
    sent = 0
    for quarter in range(3):
        clock.now = START + timedelta(minutes=16 * quarter)
        sent += sender.send_due().sent
    assert sent == 30 and len(x.dms) == 30


def test_basic_allows_100_public_replies_a_day(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_replies(engine, x, 110)
    sender = sender_for(engine, x, clock, tier="basic")
    assert sender.send_due().sent == 100
    clock.now = START + timedelta(hours=2)
    assert sender.send_due().sent == 0  # a 15-minute window would have freed by now; basic's is a day
    clock.now = START + timedelta(hours=24, seconds=1)
    assert sender.send_due().sent == 10


def test_an_unknown_tier_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown X access tier 'gold'; carebot knows basic, pay-per-use"):
        limits_for("gold")


def test_a_rate_limit_on_dms_does_not_stop_public_replies(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_dms(engine, 2, kind="agent_reply", prefix="r")
    queue_replies(engine, x, 2)
    x.fail(
        "dm_send",
        XRateLimited(
            "too many DMs", endpoint="dm_send", reset_at=(START + timedelta(minutes=15)).timestamp(), limit="window"
        ),
    )
    sender = sender_for(engine, x, clock)
    sender.send_due()
    assert x.calls["create_tweet"] == 2 and x.calls["dm_send"] == 1
    assert states(engine, "faq_answer") == {"sent": 2}
    assert states(engine, "agent_reply") == {"pending": 2}
    sender.send_due()
    assert x.calls["dm_send"] == 1  # DMs stay paused until X's reset


def test_spent_credits_hold_every_reply_back_with_one_alert_and_lose_none(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_replies(engine, x, 3)
    queue_dms(engine, 2, kind="agent_reply", prefix="p")
    x.fail("create_tweet", *[XCreditsDepleted("HTTP 402: credits spent", endpoint="create_tweet")] * 2)
    sender = sender_for(engine, x, clock)
    sender.send_due()
    assert x.calls["create_tweet"] == 1 and x.calls["dm_send"] == 0  # the credits cover DMs as well
    assert states(engine) == {"pending": 5}  # nothing failed: no reply becomes a ticket for want of credits
    for minutes in (1, 5):
        clock.now = START + timedelta(minutes=minutes)
        sender.send_due()
    assert x.calls["create_tweet"] == 1
    clock.now = START + timedelta(minutes=11)
    sender.send_due()  # still spent: a second try, no second alert
    assert x.calls["create_tweet"] == 2
    with engine.connect() as conn:
        kinds = list(conn.execute(select(alerts.c.kind)).scalars())
    assert kinds == ["credits_depleted"]
    clock.now = START + timedelta(minutes=22)  # topped up
    sender.send_due()
    assert states(engine) == {"sent": 5}
    assert sender.alerted == set()  # a later shortage is reported again


def test_the_usage_cap_pauses_both_channels(engine: Engine) -> None:
    x, clock = FakeX(), Clock()
    queue_replies(engine, x, 2)
    queue_dms(engine, 2, kind="agent_reply", prefix="u")
    reset = (START + timedelta(hours=1)).timestamp()
    x.fail("create_tweet", XRateLimited("usage cap", endpoint="create_tweet", reset_at=reset, limit="usage_cap"))
    sender = sender_for(engine, x, clock)
    sender.send_due()
    assert x.calls["create_tweet"] == 1 and x.calls["dm_send"] == 0
    assert states(engine) == {"pending": 4}
    assert "usage cap" in " ".join(m for m in _alert_messages(engine, "usage_capped"))
    clock.now = START + timedelta(hours=1, seconds=1)
    sender.send_due()
    assert states(engine) == {"sent": 4}


def _alert_messages(engine: Engine, kind: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(alerts.c.message).where(alerts.c.kind == kind)).scalars())
