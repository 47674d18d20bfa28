"""Fault injection in the sandbox X: validation, counting, precedence, and each kind's answer in-process.

Dropped connections need a real server; in-process they surface as ConnectionDropped (the integration tests
check what tweepy sees over HTTP)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.sandbox.faults import FaultError, Faults, make_fault
from bot.sandbox.server import ConnectionDropped, create_app

AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "x.db"), base_url="http://127.0.0.1:8090") as test_client:
        yield test_client


def set_fault(client: TestClient, **fault: Any) -> dict[str, Any]:
    response = client.post("/sandbox/faults", json=fault)
    assert response.status_code == 201, response.text
    return response.json()["fault"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"endpoint": "timeline", "kind": "500"}, "endpoint must be one of"),
        ({"endpoint": "mentions", "kind": "404"}, "kind must be one of"),
        ({"endpoint": "mentions", "kind": "post_then_drop"}, "create_tweet or dm_send"),
        ({"endpoint": "*", "kind": "post_then_drop"}, "create_tweet or dm_send"),
        ({"endpoint": "mentions", "kind": "500", "count": 0}, "count must be"),
        ({"endpoint": "mentions", "kind": "500", "count": "2"}, "count must be"),
        ({"endpoint": "mentions", "kind": "hang", "hang_s": -1}, "hang_s"),
        ({"endpoint": "mentions", "kind": "500", "colour": "red"}, "unknown fields: colour"),
        ([], "expected a JSON object"),
        ({"endpoint": "users_me", "kind": "429", "reset_in_s": float("inf")}, "reset_in_s must be"),
        ({"endpoint": "users_me", "kind": "429", "reset_in_s": float("-inf")}, "reset_in_s must be"),
        ({"endpoint": "users_me", "kind": "429", "reset_in_s": float("nan")}, "reset_in_s must be"),
        ({"endpoint": "users_me", "kind": "429_24h", "reset_in_s": 1e300}, "reset_in_s must be"),
        ({"endpoint": "users_me", "kind": "429_24h", "reset_in_s": 10**400}, "reset_in_s must be"),
    ],
)
def test_invalid_faults_are_refused_with_a_reason(data: Any, problem: str) -> None:
    with pytest.raises(FaultError, match=problem):
        make_fault(data)


def test_a_counted_fault_fires_that_often_and_the_endpoints_own_fault_wins_over_star() -> None:
    faults = Faults()
    faults.set(make_fault({"endpoint": "*", "kind": "503"}))
    faults.set(make_fault({"endpoint": "mentions", "kind": "429", "count": 2}))
    kinds = [getattr(faults.take("mentions"), "kind", None) for _ in range(3)]
    assert kinds == ["429", "429", "503"]
    assert faults.take("search").kind == "503"  # type: ignore[union-attr]
    faults.set(make_fault({"endpoint": "create_tweet", "kind": "post_then_drop", "count": 1}))
    assert faults.take("create_tweet").kind == "post_then_drop"  # type: ignore[union-attr]
    assert faults.take("create_tweet").kind == "503"  # type: ignore[union-attr]
    faults.clear()
    assert faults.take("mentions") is None
    assert faults.stats() == {"requests": {"mentions": 4, "search": 1, "create_tweet": 2}, "total": 7}


def test_faults_can_be_listed_and_cleared_at_run_time(client: TestClient) -> None:
    set_fault(client, endpoint="search", kind="500")
    set_fault(client, endpoint="search", kind="503", count=3)  # replaces the endpoint's fault
    assert client.get("/sandbox/faults").json()["faults"] == [
        {"endpoint": "search", "kind": "503", "count": 3, "hang_s": 30.0, "reset_in_s": None}
    ]
    assert client.post("/sandbox/faults", json={"endpoint": "search", "kind": "nope"}).status_code == 400
    assert client.delete("/sandbox/faults").json() == {"faults": []}
    assert client.get("/2/tweets/search/recent?query=x", headers=AUTH).status_code == 200


def test_429_announces_its_reset(client: TestClient) -> None:
    set_fault(client, endpoint="mentions", kind="429", count=1, reset_in_s=42)
    account = client.get("/2/users/me", headers=AUTH).json()["data"]["id"]
    response = client.get(f"/2/users/{account}/mentions", headers=AUTH)
    assert response.status_code == 429 and response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                               "status": 429}  # fmt: skip
    assert response.headers["x-rate-limit-remaining"] == "0"
    assert abs(int(response.headers["x-rate-limit-reset"]) - (time.time() + 42)) <= 2
    assert client.get(f"/2/users/{account}/mentions", headers=AUTH).status_code == 200  # count used up


def test_429_without_reset_header_and_the_24_hour_cap(client: TestClient) -> None:
    set_fault(client, endpoint="users_me", kind="429_no_reset", count=1)
    bare = client.get("/2/users/me", headers=AUTH)
    assert bare.status_code == 429 and "x-rate-limit-reset" not in bare.headers
    set_fault(client, endpoint="create_tweet", kind="429_24h")
    capped = client.post("/2/tweets", headers=AUTH, json={"text": "hello"})
    assert capped.status_code == 429
    assert capped.headers["x-user-limit-24hour-remaining"] == "0"
    assert int(capped.headers["x-user-limit-24hour-reset"]) >= math.floor(time.time()) + 86_000
    assert int(capped.headers["x-rate-limit-remaining"]) > 0  # the window is fine; the day is not
    assert client.get("/sandbox/posts").json()["data"] == []


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e400", "1e14"])
def test_a_reset_that_is_not_a_finite_number_is_refused_and_users_me_still_answers(
    client: TestClient, value: str
) -> None:
    body = '{"endpoint": "users_me", "kind": "429", "reset_in_s": ' + value + "}"
    refused = client.post("/sandbox/faults", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.json()["title"] == "Invalid Request"
    assert client.get("/sandbox/faults").json()["faults"] == []
    assert client.get("/2/users/me", headers=AUTH).status_code == 200


def test_a_reset_far_in_the_future_is_announced_as_a_whole_number(client: TestClient) -> None:
    set_fault(client, endpoint="users_me", kind="429", reset_in_s=1e12)
    set_fault(client, endpoint="create_tweet", kind="429_24h", reset_in_s=-1e12)
    far = client.get("/2/users/me", headers=AUTH)
    assert far.status_code == 429 and int(far.headers["x-rate-limit-reset"]) >= 10**12
    past = client.post("/2/tweets", headers=AUTH, json={"text": "hello"})
    assert past.status_code == 429 and int(past.headers["x-user-limit-24hour-reset"]) < 0


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors(client: TestClient, kind: str) -> None:
    set_fault(client, endpoint="*", kind=kind, count=2)
    assert client.get("/2/tweets/1", headers=AUTH).status_code == int(kind)
    failed = client.post("/2/tweets", headers=AUTH, json={"text": "never stored"})
    assert failed.status_code == int(kind) and failed.json()["status"] == int(kind)
    assert failed.headers["content-type"] == "application/problem+json"
    assert client.get("/sandbox/posts").json()["data"] == []
    assert client.get("/2/users/me", headers=AUTH).status_code == 200


def test_hang_waits_then_answers_normally(client: TestClient) -> None:
    set_fault(client, endpoint="users_me", kind="hang", hang_s=0.3, count=1)
    started = time.monotonic()
    response = client.get("/2/users/me", headers=AUTH)
    assert response.status_code == 200 and time.monotonic() - started >= 0.3


def test_reset_answers_nothing_and_post_then_drop_stores_first(client: TestClient) -> None:
    set_fault(client, endpoint="dm_events", kind="reset", count=1)
    with pytest.raises(ConnectionDropped):
        client.get("/2/dm_events", headers=AUTH)
    set_fault(client, endpoint="create_tweet", kind="post_then_drop", count=1)
    with pytest.raises(ConnectionDropped):
        client.post("/2/tweets", headers=AUTH, json={"text": "stored but unanswered"})
    posts = client.get("/sandbox/posts").json()["data"]
    assert [(p["text"], p["connection_dropped"]) for p in posts] == [("stored but unanswered", True)]


def test_stats_count_every_request_per_endpoint_including_failed_ones(client: TestClient) -> None:
    set_fault(client, endpoint="search", kind="503", count=1)
    client.get("/2/tweets/search/recent?query=a", headers=AUTH)
    client.get("/2/tweets/search/recent?query=a", headers=AUTH)
    client.get("/2/users/me")  # refused (no credentials), still a request
    client.get("/sandbox/timeline")  # sandbox endpoints are not counted
    assert client.get("/sandbox/stats").json() == {"requests": {"search": 2, "users_me": 1}, "total": 3}
    assert client.delete("/sandbox/stats").json() == {"requests": {}, "total": 0}
