"""The X adapter with the real tweepy against the sandbox X over HTTP: every method, and every fault kind the sandbox
injects mapped to the right error with a bounded number of requests (counted by the sandbox's /sandbox/stats).
Backoff sleeps are recorded, not slept; timeouts are real but short."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from bot.channel.errors import (
    XAuthError,
    XCreditsDepleted,
    XError,
    XOutcomeUnknown,
    XOutsideSearchWindow,
    XRateLimited,
    XRejected,
    XUnavailable,
)
from bot.channel.intake import Intake
from bot.channel.models import alerts, inbound_tweets
from bot.channel.store import get_checkpoint, id_at, set_checkpoint
from bot.channel.worker import Worker
from bot.channel.x_client import MENTIONS_REACHABLE, XClient
from bot.db import make_engine, upgrade
from bot.sandbox.store import snowflake_time
from bot.sandbox.testing import RunningSandbox, running_sandbox
from bot.settings import Settings

MAX_RETRIES = 2
TIMEOUT_S = 0.4
HANG_S = 1.5


@dataclass
class World:
    sandbox: RunningSandbox
    http: httpx.Client
    client: XClient
    sleeps: list[float]

    def tweet(self, username: str, text: str, reply_to: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"username": username, "text": text}
        if reply_to:
            body["in_reply_to_tweet_id"] = reply_to
        response = self.http.post("/sandbox/customer-tweets", json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def dm(self, username: str, text: str) -> dict[str, Any]:
        response = self.http.post("/sandbox/customer-dms", json={"username": username, "text": text})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def fault(self, endpoint: str, kind: str, **options: Any) -> None:
        response = self.http.post("/sandbox/faults", json={"endpoint": endpoint, "kind": kind, **options})
        assert response.status_code == 201, response.text

    def clear(self) -> None:
        """Start a measured step: no faults, no counted requests, no recorded backoff from the set-up calls."""
        self.http.delete("/sandbox/faults").raise_for_status()
        self.http.delete("/sandbox/stats").raise_for_status()
        self.sleeps.clear()

    def requests(self, endpoint: str | None = None) -> int:
        stats = self.http.get("/sandbox/stats").json()
        return int(stats["total"] if endpoint is None else stats["requests"].get(endpoint, 0))

    def posts(self) -> dict[str, Any]:
        return self.http.get("/sandbox/posts").json()  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_sandbox(tmp_path / "sandbox-x.db") as sandbox, httpx.Client(base_url=sandbox.url) as http:
        settings = Settings(
            data_dir=tmp_path / "var", x_api_url=sandbox.url, x_timeout_s=TIMEOUT_S, x_max_retries=MAX_RETRIES
        )
        sleeps: list[float] = []
        with XClient.from_settings(settings, sleep=sleeps.append) as client:
            yield World(sandbox, http, client, sleeps)


# every method


def test_me_is_the_care_account(world: World) -> None:
    me = world.client.me()
    account = world.http.get("/sandbox/timeline").json()["account"]
    assert (me.id, me.username) == (account["id"], "KestrelCare")


def test_mentions_since_a_checkpoint_in_threads(world: World) -> None:
    first = world.tweet("alice", "@KestrelCare my broadband is down")
    second = world.tweet("bob", "hey @kestrelcare how do I pay my bill?")
    world.tweet("carol", "no mention of anyone here")
    reply = world.client.create_reply("Sorry to hear that, we are on it ^bot", first["id"])
    follow_up = world.tweet("alice", "still down!", reply_to=reply)

    everything = world.client.mentions(None)
    assert [t.id for t in everything.tweets] == [first["id"], second["id"], follow_up["id"]]
    assert everything.complete and everything.newest_id == follow_up["id"]
    latest = everything.tweets[-1]
    assert latest.author_username == "alice" and latest.in_reply_to_tweet_id == reply
    assert latest.conversation_id == first["id"] and latest.in_reply_to_user_id == world.client.me().id
    assert latest.created_at is not None and latest.created_at.tzinfo is not None

    newer = world.client.mentions(first["id"])
    assert [t.id for t in newer.tweets] == [second["id"], follow_up["id"]] and newer.complete
    nothing = world.client.mentions(follow_up["id"])
    assert nothing.tweets == [] and nothing.newest_id is None and nothing.complete


def _seed_mentions(world: World, count: int) -> list[str]:
    """Many mentions at once, written straight into the sandbox's store (HTTP would take minutes)."""
    store = world.sandbox.app.state.store
    author = store.create_user("storm")
    return [str(store.create_tweet(author, f"@KestrelCare outage report {i}").id) for i in range(count)]


def test_mentions_page_through_more_than_one_page(world: World) -> None:
    ids = _seed_mentions(world, 230)
    world.client.me()
    world.clear()
    read = world.client.mentions(ids[9])
    assert [t.id for t in read.tweets] == ids[10:] and read.complete
    assert world.requests("mentions") == 3


def test_mentions_beyond_the_800_reachable_report_a_gap(world: World) -> None:
    ids = _seed_mentions(world, MENTIONS_REACHABLE + 40)
    gap = world.client.mentions(ids[0])
    assert not gap.complete
    assert [t.id for t in gap.tweets] == ids[-MENTIONS_REACHABLE:] and gap.newest_id == ids[-1]
    within = world.client.mentions(ids[60])
    assert within.complete and len(within.tweets) == len(ids) - 61


def test_search_recent_finds_keywords_without_a_mention(world: World) -> None:
    old = world.tweet("dave", "kestrel outage in Leeds again")
    world.tweet("erin", "lovely weather")
    new = world.tweet("frank", "Is there a Kestrel outage? nothing works")
    found = world.client.search_recent("outage")
    assert [t.id for t in found] == [old["id"], new["id"]]
    assert found[0].author_username == "dave" and found[0].in_reply_to_tweet_id is None
    assert [t.id for t in world.client.search_recent("outage", since_id=old["id"])] == [new["id"]]
    assert [t.id for t in world.client.search_recent("outage", until_id=new["id"])] == [old["id"]]


# recent search reaches back 7 days


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    db = make_engine(url)
    yield db
    db.dispose()


def _checkpoint_at(engine: Engine, name: str, since_id: str) -> None:
    with engine.begin() as conn:
        set_checkpoint(conn, name, since_id)


def test_a_search_since_an_8_day_old_id_gets_xs_400(world: World) -> None:
    world.tweet("dave", "kestrel outage in Leeds again")
    stale = id_at(datetime.now(UTC) - timedelta(days=8))
    world.client.me()
    world.clear()
    with pytest.raises(XOutsideSearchWindow) as caught:
        world.client.search_recent("outage", since_id=stale)
    assert caught.value.status == 400 and caught.value.parameters == ("since_id",)
    assert "must be a tweet id created after" in caught.value.detail
    window_start = datetime.fromtimestamp(caught.value.window_start or 0, UTC)
    assert timedelta(days=7) <= datetime.now(UTC) - window_start < timedelta(days=7, minutes=2)
    assert world.requests("search") == 1 and world.sleeps == []  # a refusal, not retried
    response = world.http.get("/2/tweets/search/recent", params={"query": "outage", "since_id": stale},
                              headers={"Authorization": "Bearer t"})  # fmt: skip
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"


def test_the_worker_reads_a_stale_keyword_again_inside_the_7_days_and_keeps_reading(
    world: World, engine: Engine
) -> None:
    inside = world.tweet("erin", "is the kestrel outage over?")
    _checkpoint_at(engine, "search:outage", id_at(datetime.now(UTC) - timedelta(days=8)))
    triage = SimpleNamespace(step=lambda: SimpleNamespace(triaged=0, waiting=0), batch_size=10)
    worker = Worker(
        engine=engine, intake=Intake(engine, world.client), processor=triage,  # type: ignore[arg-type]
        sender=None, search_queries=("outage",), poll_interval_s=0,  # type: ignore[arg-type]
    )  # fmt: skip
    world.client.me()
    world.clear()
    worker.intake_and_triage_step()
    assert world.requests("search") == 2  # refused, then asked again from inside X's 7 days
    assert worker.polls["search:outage"].failures == 0
    with engine.connect() as conn:
        stored = list(conn.execute(select(inbound_tweets.c.tweet_id, inbound_tweets.c.source)))
        kinds = list(conn.execute(select(alerts.c.kind)).scalars())
        moved = get_checkpoint(conn, "search:outage")
    assert stored == [(inside["id"], "search")] and kinds == ["search_window"]
    assert moved is not None and datetime.now(UTC) - snowflake_time(int(moved)) < timedelta(minutes=6)
    later = world.tweet("frank", "another kestrel outage tonight")
    worker.intake_and_triage_step()
    assert world.requests("search") == 3  # the moved checkpoint is accepted
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(inbound_tweets.c.tweet_id)).scalars())
        assert list(conn.execute(select(alerts.c.kind)).scalars()) == ["search_window"]
    assert ids == sorted([inside["id"], later["id"]])  # each stored once


def test_a_mention_gap_after_8_days_is_backfilled_from_inside_the_7_days(world: World, engine: Engine) -> None:
    ids = _seed_mentions(world, MENTIONS_REACHABLE + 40)
    _checkpoint_at(engine, "mentions", id_at(datetime.now(UTC) - timedelta(days=8)))
    report = Intake(engine, world.client).read_mentions()
    assert report.gap and report.reanchored
    with engine.connect() as conn:
        stored = dict(conn.execute(select(inbound_tweets.c.tweet_id, inbound_tweets.c.source)).all())
        (alert,) = conn.execute(select(alerts)).all()
        assert get_checkpoint(conn, "mentions") == ids[-1]
    assert set(stored) == set(ids) and list(stored.values()).count("backfill") == 40
    assert alert.kind == "mention_gap" and "40 were backfilled" in alert.message


def test_get_tweets_returns_those_that_exist(world: World) -> None:
    one = world.tweet("gina", "@KestrelCare one")
    two = world.tweet("hal", "@KestrelCare two")
    found = world.client.get_tweets([two["id"], "1234567890123", one["id"]])
    assert [(t.id, t.author_username) for t in found] == [(two["id"], "hal"), (one["id"], "gina")]


def test_replies_appear_in_our_own_tweets_and_the_post_log(world: World) -> None:
    target = world.tweet("ivy", "@KestrelCare when does my contract end?")
    reply_id = world.client.create_reply("You can see it in the app under Contract ^bot", target["id"])
    (own,) = world.client.own_tweets()
    assert own.id == reply_id and own.in_reply_to_tweet_id == target["id"]
    assert own.author_username == "KestrelCare" and own.conversation_id == target["id"]
    assert world.client.own_tweets(since_id=reply_id) == []
    assert [post["id"] for post in world.posts()["data"]] == [reply_id]


def test_x_rules_reject_duplicates_unknown_targets_and_long_texts(world: World) -> None:
    first = world.tweet("jack", "@KestrelCare hello")
    second = world.tweet("kim", "@KestrelCare hello too")
    world.client.create_reply("Hi! How can we help? ^bot", first["id"])
    with pytest.raises(XRejected) as duplicate:
        world.client.create_reply("Hi! How can we help? ^bot", second["id"])
    assert duplicate.value.duplicate and duplicate.value.status == 403
    assert not isinstance(duplicate.value, XAuthError)
    with pytest.raises(XRejected) as unknown:
        world.client.create_reply("Hi there ^bot", "1234567890123")
    assert unknown.value.status == 400 and not unknown.value.duplicate
    with pytest.raises(XRejected) as too_long:
        world.client.create_reply("x" * 281, second["id"])
    assert too_long.value.status == 400 and "too long" in too_long.value.detail
    assert len(world.posts()["data"]) == 1


def test_direct_messages_both_ways(world: World) -> None:
    first = world.dm("lena", "my customer number is 12345678")
    world.dm("max", "hello?")
    received = world.client.dm_events()
    assert [(m.id, m.text) for m in received][0] == (first["id"], "my customer number is 12345678")
    assert len(received) == 2 and received[0].sender_id == first["sender_id"]
    assert [m.sender_username for m in received] == ["lena", "max"]
    assert received[0].conversation_id and received[0].created_at is not None
    sent = world.client.send_dm(first["sender_id"], "Thanks, we are looking at your account ^AB")
    assert [dm["id"] for dm in world.posts()["dms"]] == [sent]
    assert [m.id for m in world.client.dm_events()] == [m.id for m in received]  # our own message is not "received"


def test_dm_to_the_care_account_itself_is_rejected(world: World) -> None:
    with pytest.raises(XRejected) as caught:
        world.client.send_dm(world.client.me().id, "talking to myself")
    assert caught.value.status == 400


def test_requests_without_credentials_are_refused_by_the_sandbox(world: World) -> None:
    assert world.http.get("/2/users/me").status_code == 401


# faults: reads


def _read_calls(world: World, target: dict[str, Any]) -> dict[str, Any]:
    """One call of each read method, by the sandbox's name for its endpoint."""
    return {
        "users_me": lambda: _fresh_me(world),
        "mentions": lambda: world.client.mentions(None),
        "search": lambda: world.client.search_recent("broadband"),
        "tweet_lookup": lambda: world.client.get_tweets([target["id"]]),
        "user_tweets": lambda: world.client.own_tweets(),
        "dm_events": lambda: world.client.dm_events(),
    }


def _fresh_me(world: World) -> None:
    """users/me through a new client (a client asks it once, then remembers)."""
    settings = Settings(x_api_url=world.sandbox.url, x_timeout_s=TIMEOUT_S, x_max_retries=MAX_RETRIES)
    with XClient.from_settings(settings, sleep=world.sleeps.append) as client:
        client.me()


READS = ["users_me", "mentions", "search", "tweet_lookup", "user_tweets", "dm_events"]


@pytest.mark.parametrize("kind", ["500", "503", "reset", "hang"])
@pytest.mark.parametrize("endpoint", READS)
def test_a_failing_read_is_retried_a_bounded_number_of_times(world: World, endpoint: str, kind: str) -> None:
    target = world.tweet("nina", "@KestrelCare broadband question")
    world.client.me()
    world.clear()
    world.fault(endpoint, kind, hang_s=HANG_S)
    with pytest.raises(XUnavailable) as caught:
        _read_calls(world, target)[endpoint]()
    assert caught.value.endpoint == endpoint
    assert world.requests(endpoint) == MAX_RETRIES + 1
    assert world.requests() == MAX_RETRIES + 1
    assert len(world.sleeps) == MAX_RETRIES


@pytest.mark.parametrize("endpoint", READS)
def test_a_read_recovers_when_the_fault_passes(world: World, endpoint: str) -> None:
    target = world.tweet("olga", "@KestrelCare broadband question")
    world.client.me()
    world.clear()
    world.fault(endpoint, "503", count=MAX_RETRIES)
    _read_calls(world, target)[endpoint]()
    assert world.requests(endpoint) == MAX_RETRIES + 1


@pytest.mark.parametrize(("kind", "limit"), [("429", "window"), ("429_no_reset", "unknown"), ("429_24h", "24h")])
@pytest.mark.parametrize("endpoint", READS)
def test_a_rate_limited_read_is_not_retried(world: World, endpoint: str, kind: str, limit: str) -> None:
    target = world.tweet("pete", "@KestrelCare broadband question")
    world.client.me()
    world.clear()
    world.fault(endpoint, kind, reset_in_s=120)
    before = time.time()
    with pytest.raises(XRateLimited) as caught:
        _read_calls(world, target)[endpoint]()
    assert caught.value.limit == limit and caught.value.endpoint == endpoint
    assert before + 50 <= caught.value.reset_at <= before + 130
    assert world.requests() == 1 and world.sleeps == []


@pytest.mark.parametrize(("kind", "most_s"), [("429", 16 * 60), ("429_24h", 24 * 3600 + 60)])
def test_a_reset_time_far_in_the_future_is_a_rate_limit_of_at_most_xs_window(
    world: World, kind: str, most_s: float
) -> None:
    world.fault("users_me", kind, reset_in_s=1e12)
    before = time.time()
    with pytest.raises(XRateLimited) as caught:
        world.client.me()
    assert before < caught.value.reset_at <= time.time() + most_s


# faults: writes


def _write_calls(world: World, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "create_tweet": lambda: world.client.create_reply("We are looking into it ^bot", target["id"]),
        "dm_send": lambda: world.client.send_dm(target["author_id"], "Please send us your account number ^bot"),
    }


def _posted(world: World, endpoint: str) -> list[dict[str, Any]]:
    return world.posts()["data" if endpoint == "create_tweet" else "dms"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["500", "503", "reset", "hang", "post_then_drop"])
@pytest.mark.parametrize("endpoint", ["create_tweet", "dm_send"])
def test_a_write_in_doubt_is_outcome_unknown_and_tried_once(world: World, endpoint: str, kind: str) -> None:
    target = world.tweet("quinn", "@KestrelCare my bill is wrong")
    world.client.me()
    world.clear()
    world.fault(endpoint, kind, hang_s=HANG_S)
    with pytest.raises(XOutcomeUnknown) as caught:
        _write_calls(world, target)[endpoint]()
    assert caught.value.endpoint == endpoint
    assert world.requests() == 1 and world.sleeps == []
    if kind == "post_then_drop":
        (posted,) = _posted(world, endpoint)
        assert posted["connection_dropped"] is True


def test_a_reply_dropped_after_posting_is_found_on_our_timeline(world: World) -> None:
    target = world.tweet("rose", "@KestrelCare router blinking red")
    world.fault("create_tweet", "post_then_drop", count=1)
    with pytest.raises(XOutcomeUnknown):
        world.client.create_reply("Please restart it once ^bot", target["id"])
    assert [t.in_reply_to_tweet_id for t in world.client.own_tweets()] == [target["id"]]
    with pytest.raises(XRejected) as again:  # a blind re-send would be a second reply; X calls it a duplicate
        world.client.create_reply("Please restart it once ^bot", target["id"])
    assert again.value.duplicate


@pytest.mark.parametrize(("kind", "limit"), [("429", "window"), ("429_no_reset", "unknown"), ("429_24h", "24h")])
@pytest.mark.parametrize("endpoint", ["create_tweet", "dm_send"])
def test_a_rate_limited_write_is_not_sent(world: World, endpoint: str, kind: str, limit: str) -> None:
    target = world.tweet("sam", "@KestrelCare hello")
    world.client.me()
    world.clear()
    world.fault(endpoint, kind)
    with pytest.raises(XRateLimited) as caught:
        _write_calls(world, target)[endpoint]()
    assert caught.value.limit == limit
    assert world.requests() == 1 and _posted(world, endpoint) == []


@pytest.mark.parametrize("endpoint", ["create_tweet", "dm_send", "mentions"])
def test_spent_credits_are_their_own_error_and_nothing_is_posted(world: World, endpoint: str) -> None:
    target = world.tweet("una", "@KestrelCare hello")
    world.client.me()
    world.clear()
    world.fault(endpoint, "402")
    calls = {**_write_calls(world, target), "mentions": lambda: world.client.mentions(None)}
    with pytest.raises(XCreditsDepleted, match="HTTP 402: the account's credits are spent") as caught:
        calls[endpoint]()
    assert not isinstance(caught.value, XRejected)  # a reply that waits for credits is not a refused reply
    assert world.requests() == 1 and world.sleeps == []
    if endpoint != "mentions":
        assert _posted(world, endpoint) == []


@pytest.mark.parametrize("endpoint", ["create_tweet", "mentions"])
def test_the_usage_cap_is_not_the_15_minute_window(world: World, endpoint: str) -> None:
    target = world.tweet("vic", "@KestrelCare hello")
    world.client.me()
    world.clear()
    world.fault(endpoint, "429_usage_cap")
    calls = {**_write_calls(world, target), "mentions": lambda: world.client.mentions(None)}
    before = time.time()
    with pytest.raises(XRateLimited, match="usage cap") as caught:
        calls[endpoint]()
    assert caught.value.limit == "usage_cap"
    assert before + 3500 <= caught.value.reset_at <= time.time() + 3601  # asked again in an hour, not at the reset
    assert world.requests() == 1


def test_a_fault_storm_on_every_endpoint_stays_bounded(world: World) -> None:
    target = world.tweet("tom", "@KestrelCare anyone there?")
    world.client.me()
    world.clear()
    world.fault("*", "503")
    calls = {**_read_calls(world, target), **_write_calls(world, target)}
    for call in calls.values():
        with pytest.raises(XError):
            call()
    reads = len(READS) * (MAX_RETRIES + 1)
    assert world.requests() == reads + 2
    assert len(world.sleeps) == len(READS) * MAX_RETRIES
