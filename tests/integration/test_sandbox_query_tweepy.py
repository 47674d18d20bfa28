"""A malformed keyword search through the real tweepy client over HTTP: the sandbox X answers X's 400 (problem JSON,
`errors[0].parameters.query`, a message naming the problem), carebot's client raises XRejected with that message
and sends it once, and the worker alerts the lead and goes on reading mentions and its other keyword."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from bot.channel.errors import XOutsideSearchWindow, XRejected
from bot.channel.intake import Intake
from bot.channel.models import alerts, inbound_tweets
from bot.channel.worker import REFUSED_QUERY_RECHECK_S, Worker
from bot.channel.x_client import XClient
from bot.db import make_engine, upgrade
from bot.sandbox.server import INVALID_REQUEST_TYPE
from bot.sandbox.testing import RunningSandbox, running_sandbox
from bot.settings import Settings

BAD = "(outage OR down"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("x") / "sandbox-x.db") as running:
        yield running


@pytest.fixture(scope="module")
def http(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url) as client:
        yield client


@pytest.fixture(scope="module")
def client(sandbox: RunningSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[XClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("var"), x_api_url=sandbox.url, x_max_retries=2)
    with XClient.from_settings(settings, sleep=lambda _s: None) as x:
        yield x


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    db = make_engine(url)
    yield db
    db.dispose()


def tweet(http: httpx.Client, username: str, text: str) -> dict[str, Any]:
    response = http.post("/sandbox/customer-tweets", json={"username": username, "text": text})
    assert response.status_code == 201, response.text
    return response.json()


def searches(http: httpx.Client) -> int:
    return int(http.get("/sandbox/stats").json()["requests"].get("search", 0))


def test_the_sandbox_answers_xs_400_for_an_unbalanced_parenthesis(http: httpx.Client) -> None:
    response = http.get("/2/tweets/search/recent", params={"query": BAD}, headers={"Authorization": "Bearer t"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == INVALID_REQUEST_TYPE and body["title"] == "Invalid Request"
    [error] = body["errors"]
    assert error["parameters"] == {"query": [BAD]}
    assert error["message"] == (
        "There were errors processing your request: Missing closing parenthesis (at position 1)"
    )


def test_the_refusal_reaches_carebot_as_a_clear_error_sent_once(client: XClient, http: httpx.Client) -> None:
    tweet(http, "dave", "kestrel outage in Leeds")
    client.me()
    http.delete("/sandbox/stats").raise_for_status()
    with pytest.raises(XRejected) as refused:
        client.search_recent(BAD)
    assert not isinstance(refused.value, XOutsideSearchWindow)
    assert refused.value.status == 400 and refused.value.endpoint == "search"
    assert "Missing closing parenthesis (at position 1)" in refused.value.detail
    assert "Missing closing parenthesis" in str(refused.value)
    assert searches(http) == 1  # a refusal is not retried
    found = client.search_recent("(outage OR down) kestrel -is:retweet")  # the same words, well formed
    assert [t.text for t in found] == ["kestrel outage in Leeds"]


def test_a_refused_keyword_alerts_the_lead_and_stops_neither_mentions_nor_other_keywords(
    client: XClient, http: httpx.Client, engine: Engine
) -> None:
    mention = tweet(http, "erin", "@KestrelCare my hub blinks red")
    hit = tweet(http, "frank", "fibre broken in Hull again")
    triage = SimpleNamespace(step=lambda: SimpleNamespace(triaged=0, waiting=0), batch_size=10)
    clock = [1000.0]
    worker = Worker(
        engine=engine, intake=Intake(engine, client), processor=triage,  # type: ignore[arg-type]
        sender=None, search_queries=(BAD, "fibre broken"), poll_interval_s=0,  # type: ignore[arg-type]
        monotonic=lambda: clock[0],
    )  # fmt: skip
    http.delete("/sandbox/stats").raise_for_status()
    worker.intake_and_triage_step()
    with engine.connect() as conn:
        stored = {row.tweet_id: row.source for row in conn.execute(select(inbound_tweets))}
        [alert] = conn.execute(select(alerts)).all()
    assert stored[mention["id"]] == "mention" and stored[hit["id"]] == "search"
    assert alert.kind == "search_query_refused"
    assert (
        f"X refuses the keyword search {BAD!r}: There were errors processing your request: Missing closing "
        "parenthesis (at position 1)." in alert.message
    )
    assert "One or more parameters" not in alert.message and alert.details["query"] == BAD
    assert searches(http) == 2  # the bad query once, the good one once

    later = tweet(http, "gina", "fibre broken since noon")
    clock[0] += 60  # a poll later: the good keyword is read again, the refused one waits
    worker.intake_and_triage_step()
    assert searches(http) == 3
    with engine.connect() as conn:
        assert conn.execute(select(inbound_tweets.c.source).where(inbound_tweets.c.tweet_id == later["id"])).scalar()
    clock[0] += REFUSED_QUERY_RECHECK_S
    worker.intake_and_triage_step()
    assert searches(http) == 5  # asked again after the wait, refused again ...
    with engine.connect() as conn:
        assert len(conn.execute(select(alerts)).all()) == 1  # ... and not alerted again the same day
