"""The worker's reads stay within X's per-user read limits of its access tier, over real HTTP (tweepy) against a
sandbox X that enforces the same tier: X's 429 is never met. The worker's clock is simulated, so 90 s (or, on basic,
15 minutes) of polling take a few seconds; the sandbox counts every request that reaches it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import Engine, select

from bot.channel.intake import Intake
from bot.channel.models import alerts, inbound_tweets
from bot.channel.worker import Worker
from bot.channel.x_client import XClient
from bot.channel.x_limits import read_limits_for
from bot.db import make_engine, upgrade
from bot.sandbox.testing import running_sandbox
from bot.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _worker(engine: Engine, client: XClient, tier: str, clock: Clock) -> Worker:
    triage = SimpleNamespace(step=lambda: SimpleNamespace(triaged=0, waiting=0), batch_size=10)
    return Worker(
        engine=engine, intake=Intake(engine, client), processor=triage,  # type: ignore[arg-type]
        sender=None, search_queries=("kestrel outage",), poll_interval_s=0.2,  # type: ignore[arg-type]
        read_limits=read_limits_for(tier), monotonic=clock,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tier", "seconds", "step_s", "most_mentions", "most_searches", "fewest_mentions"),
    [
        # X allows 300 mention reads and 300 searches in 15 minutes: 30 of each in 90 s. The loop's idle sleep.
        ("pay-per-use", 90, 0.1, 30, 30, 20),
        ("basic", 900, 1.0, 10, 60, 8),  # basic: 10 mention reads and 60 searches in 15 minutes
    ],
)
def test_the_worker_polls_within_the_tiers_read_limits_and_meets_no_429(
    tier: str, seconds: int, step_s: float, most_mentions: int, most_searches: int, fewest_mentions: int,
    engine: Engine, tmp_path: Path,
) -> None:  # fmt: skip
    with (
        running_sandbox(tmp_path / "sandbox-x.db", tier=tier) as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
        XClient.from_settings(Settings(data_dir=tmp_path / "var", x_api_url=sandbox.url, x_tier=tier)) as client,  # type: ignore[arg-type]
    ):
        http.post("/sandbox/customer-tweets", json={"username": "ann", "text": "@KestrelCare my hub is down"})
        http.post("/sandbox/customer-dms", json={"username": "bob", "text": "my account number is in here"})
        clock = Clock()
        worker = _worker(engine, client, tier, clock)
        while clock.now < seconds:
            worker.intake_and_triage_step()
            clock.now += step_s
            if abs(clock.now - seconds / 2) < step_s / 2:  # a customer tweets mid-way
                http.post("/sandbox/customer-tweets", json={"username": "cy", "text": "@KestrelCare still down"})
        requests = http.get("/sandbox/stats").json()["requests"]
    with engine.connect() as conn:
        stored = sorted(conn.execute(select(inbound_tweets.c.source)).scalars())
        alert_kinds = list(conn.execute(select(alerts.c.kind)).scalars())
    assert fewest_mentions <= requests["mentions"] <= most_mentions, requests
    assert requests["dm_events"] == 1, requests  # pay-per-use: 1.5 in 90 s; basic: 1 a day
    assert requests["search"] <= most_searches, requests
    assert stored == ["dm", "mention", "mention"]  # every message was read
    assert "rate_limited" not in alert_kinds  # X's limit was never reached
    assert all(poll.failures == 0 for poll in worker.polls.values())


def test_the_sandbox_enforces_its_tier_with_xs_429_and_the_client_waits_for_the_reset(tmp_path: Path) -> None:
    from bot.channel.errors import XRateLimited

    with (
        running_sandbox(tmp_path / "sandbox-x.db", tier="basic") as sandbox,
        XClient.from_settings(Settings(data_dir=tmp_path / "var", x_api_url=sandbox.url, x_tier="basic")) as client,
    ):
        for _ in range(10):
            client.mentions(None)
        with pytest.raises(XRateLimited) as limited:
            client.mentions(None)
        assert 800 < limited.value.reset_at - time.time() <= 902  # the 15-minute window's reset
        client.dm_events()
        with pytest.raises(XRateLimited) as daily:
            client.dm_events()
        assert limited.value.reset_at < daily.value.reset_at  # DM events: 1 in 24 hours on basic
        assert client.requests_made("mentions") == 11 and client.requests_made("dm_events") == 2


def test_dm_paging_stops_at_the_newest_event_already_stored(tmp_path: Path) -> None:
    with (
        running_sandbox(tmp_path / "sandbox-x.db") as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
        XClient.from_settings(Settings(data_dir=tmp_path / "var", x_api_url=sandbox.url)) as client,
    ):
        for n in range(230):
            response = http.post("/sandbox/customer-dms", json={"username": f"c{n % 7}", "text": f"message {n}"})
            assert response.status_code == 201
        everything = client.dm_events()
        assert len(everything) == 230 and client.requests_made("dm_events") == 3  # three pages of 100
        newest = everything[-1].id
        http.post("/sandbox/customer-dms", json={"username": "c1", "text": "one more"})
        newer = client.dm_events(stop_at=newest)
        assert client.requests_made("dm_events") == 4  # one page reaches the stored newest
        assert [e.text for e in newer if int(e.id) > int(newest)] == ["one more"]


def test_every_page_and_backfill_request_counts_so_a_spent_window_defers_the_next_read(engine: Engine) -> None:
    made = {"mentions": 0}
    clock = Clock()
    reads: list[float] = []

    def read_paging_100_times() -> None:  # e.g. a gap backfill after an outage
        made["mentions"] += 100
        reads.append(clock.now)

    client = SimpleNamespace(requests_made=lambda endpoint: made.get(endpoint, 0))
    triage = SimpleNamespace(step=lambda: SimpleNamespace(triaged=0, waiting=0), batch_size=10)
    worker = Worker(
        engine=engine, intake=SimpleNamespace(client=client), processor=triage,  # type: ignore[arg-type]
        sender=None, poll_interval_s=0.2, read_limits=read_limits_for("pay-per-use"),  # type: ignore[arg-type]
        monotonic=clock,
    )  # fmt: skip
    while clock.now < 1000:
        worker._read("mentions", read_paging_100_times)
        clock.now += 1.0
    # 300 requests in 15 minutes: three such reads, then nothing until the first leaves the window at 900 s
    assert reads[:3] == [0.0, 4.0, 8.0] and 900 <= reads[3] <= 901
    assert worker.budget_used()["mentions"][0] <= 300
