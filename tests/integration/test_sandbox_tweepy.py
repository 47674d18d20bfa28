"""The real tweepy client against the sandbox X over HTTP (uvicorn on a free port): every endpoint carebot uses,
X's rules, and every fault kind as tweepy and requests see it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import tweepy
from requests.adapters import HTTPAdapter

from bot.sandbox.testing import RunningSandbox, running_sandbox

TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets"]


class SandboxAdapter(HTTPAdapter):
    """Sends tweepy's https://api.twitter.com requests to the sandbox, with a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.base_url, self.timeout = base_url, timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = request.url.replace("https://api.twitter.com", self.base_url, 1)
        kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def make_client(url: str, *, timeout: float = 5.0, bearer_only: bool = False) -> tweepy.Client:
    if bearer_only:
        client = tweepy.Client(bearer_token="sandbox-bearer")
    else:
        client = tweepy.Client(consumer_key="ck", consumer_secret="cs", access_token="at", access_token_secret="ats")
    client.session.mount("https://api.twitter.com", SandboxAdapter(url, timeout))
    return client


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running


@pytest.fixture
def x(sandbox: RunningSandbox) -> tweepy.Client:
    return make_client(sandbox.url)


def customer_tweet(sandbox: RunningSandbox, username: str, text: str, reply_to: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "text": text}
    if reply_to:
        body["in_reply_to_tweet_id"] = reply_to
    response = httpx.post(f"{sandbox.url}/sandbox/customer-tweets", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def set_fault(sandbox: RunningSandbox, **fault: Any) -> None:
    assert httpx.post(f"{sandbox.url}/sandbox/faults", json=fault).status_code == 201


def posts(sandbox: RunningSandbox) -> dict[str, Any]:
    return httpx.get(f"{sandbox.url}/sandbox/posts").json()


def test_every_read_endpoint_through_tweepy(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    me = x.get_me(user_auth=True).data
    assert me.username == "KestrelCare"
    first = customer_tweet(sandbox, "ann", "@KestrelCare is fibre down in Leeds?")
    second = customer_tweet(sandbox, "bob", "kestrel outage again, nothing loading")

    mentions = x.get_users_mentions(
        me.id, since_id=None, max_results=5, tweet_fields=TWEET_FIELDS, expansions=["author_id"],
        user_fields=["username"], user_auth=True,
    )  # fmt: skip
    assert [t.id for t in mentions.data] == [int(first["id"])]
    assert mentions.data[0].author_id == int(first["author_id"]) and mentions.data[0].created_at.year >= 2026
    assert mentions.data[0].conversation_id == int(first["id"])
    assert mentions.includes["users"][0].username == "ann"
    assert mentions.meta["newest_id"] == first["id"] and mentions.meta["result_count"] == 1

    found = x.search_recent_tweets("kestrel outage", tweet_fields=TWEET_FIELDS, expansions=["author_id"],
                                   user_auth=True)  # fmt: skip
    assert [t.id for t in found.data] == [int(second["id"])] and found.includes["users"][0].username == "bob"

    looked_up = x.get_tweets([first["id"], second["id"]], tweet_fields=TWEET_FIELDS, user_auth=True)
    assert [t.text for t in looked_up.data] == [first["text"], second["text"]]
    single = x.get_tweet(first["id"], expansions=["author_id"], user_auth=True)
    assert single.data.id == int(first["id"]) and single.includes["users"][0].username == "ann"
    missing = x.get_tweet("42", user_auth=True)
    assert missing.data is None and missing.errors[0]["resource_type"] == "tweet"

    bearer = make_client(sandbox.url, bearer_only=True)
    assert [t.id for t in bearer.get_users_mentions(me.id).data] == [int(first["id"])]


def test_replies_user_tweets_and_dms_through_tweepy(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    me = x.get_me(user_auth=True).data
    root = customer_tweet(sandbox, "ann", "@KestrelCare my hub is dead")
    reply = x.create_tweet(text="Sorry Ann! Try a restart ^bot", in_reply_to_tweet_id=root["id"], user_auth=True)
    reply_id = reply.data["id"]
    assert reply.data["text"] == "Sorry Ann! Try a restart ^bot"

    own = x.get_users_tweets(me.id, tweet_fields=TWEET_FIELDS, max_results=5, user_auth=True)
    assert [t.id for t in own.data] == [int(reply_id)]
    assert own.data[0].conversation_id == int(root["id"]) and own.data[0].in_reply_to_user_id == int(root["author_id"])
    assert own.data[0].referenced_tweets[0].type == "replied_to"
    assert x.get_users_tweets(me.id, since_id=reply_id, user_auth=True).data is None

    dm_in = httpx.post(f"{sandbox.url}/sandbox/customer-dms", json={"username": "ann", "text": "KT-12345678"}).json()
    sent = x.create_direct_message(participant_id=dm_in["sender_id"], text="Thanks, looking now ^AB", user_auth=True)
    assert sent.data["dm_event_id"].isdigit()
    events = x.get_direct_message_events(
        event_types="MessageCreate", dm_event_fields=["sender_id", "created_at", "dm_conversation_id"], user_auth=True
    )
    assert [(e.text, e.sender_id) for e in events.data] == [
        ("Thanks, looking now ^AB", me.id), ("KT-12345678", int(dm_in["sender_id"])),
    ]  # fmt: skip
    assert events.data[0].dm_conversation_id == sent.data["dm_conversation_id"]


def test_pagination_with_tweepys_paginator(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    ids = [customer_tweet(sandbox, f"fan{i}", f"@KestrelCare #kestreldown number {i}")["id"] for i in range(23)]
    me = x.get_me(user_auth=True).data
    pages = list(tweepy.Paginator(x.get_users_mentions, me.id, max_results=10, user_auth=True))
    assert [len(page.data) for page in pages] == [10, 10, 3]
    assert [t.id for page in pages for t in page.data] == [int(i) for i in reversed(ids)]
    found = list(tweepy.Paginator(x.search_recent_tweets, "#kestreldown", max_results=10, user_auth=True))
    assert sum(len(page.data) for page in found) == 23


def test_x_rules_as_tweepy_errors(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    root = customer_tweet(sandbox, "ann", "@KestrelCare hi")
    x.create_tweet(text="Hello Ann ^bot", in_reply_to_tweet_id=root["id"], user_auth=True)
    with pytest.raises(tweepy.Forbidden) as duplicate:
        x.create_tweet(text="Hello Ann ^bot", in_reply_to_tweet_id=root["id"], user_auth=True)
    assert duplicate.value.api_messages == ["You are not allowed to create a Tweet with duplicate content."]
    with pytest.raises(tweepy.BadRequest):
        x.create_tweet(text="é" * 281, user_auth=True)
    with pytest.raises(tweepy.BadRequest) as unknown:
        x.create_tweet(text="to nowhere", in_reply_to_tweet_id="123456789", user_auth=True)
    assert "123456789" in str(unknown.value)
    with pytest.raises(tweepy.BadRequest):
        x.get_users_mentions(x.get_me(user_auth=True).data.id, max_results=200, user_auth=True)
    with pytest.raises(tweepy.Unauthorized):
        make_unauthorized_call(sandbox)
    assert len(posts(sandbox)["data"]) == 1


def make_unauthorized_call(sandbox: RunningSandbox) -> None:
    client = tweepy.Client(bearer_token=" ")  # a blank credential counts as none
    client.session.mount("https://api.twitter.com", SandboxAdapter(sandbox.url, 5))
    client.get_users_mentions(1)


def test_429_kinds_as_tweepy_sees_them(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    set_fault(sandbox, endpoint="mentions", kind="429", count=1, reset_in_s=120)
    with pytest.raises(tweepy.TooManyRequests) as limited:
        x.get_users_mentions(1, user_auth=True)
    assert limited.value.reset_time is not None and 110 <= limited.value.reset_time - time.time() <= 125
    set_fault(sandbox, endpoint="mentions", kind="429_no_reset", count=1)
    with pytest.raises(tweepy.TooManyRequests) as bare:
        x.get_users_mentions(1, user_auth=True)
    assert bare.value.reset_time is None
    set_fault(sandbox, endpoint="create_tweet", kind="429_24h", count=1)
    with pytest.raises(tweepy.TooManyRequests) as daily:
        x.create_tweet(text="over the daily cap", user_auth=True)
    headers = daily.value.response.headers
    assert headers["x-user-limit-24hour-remaining"] == "0" and int(headers["x-user-limit-24hour-reset"]) > time.time()
    assert posts(sandbox)["data"] == []


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors_as_tweepy_sees_them(sandbox: RunningSandbox, x: tweepy.Client, kind: str) -> None:
    set_fault(sandbox, endpoint="*", kind=kind, count=3)
    for call in (lambda: x.get_me(user_auth=True), lambda: x.search_recent_tweets("a", user_auth=True),
                 lambda: x.create_tweet(text="lost", user_auth=True)):  # fmt: skip
        with pytest.raises(tweepy.TwitterServerError) as failed:
            call()
        assert failed.value.response.status_code == int(kind)
    assert x.get_me(user_auth=True).data.username == "KestrelCare"
    assert posts(sandbox)["data"] == []


def test_hang_outlasts_the_client_timeout_and_the_post_still_happens(sandbox: RunningSandbox) -> None:
    impatient = make_client(sandbox.url, timeout=0.3)
    set_fault(sandbox, endpoint="create_tweet", kind="hang", hang_s=1.0, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient.create_tweet(text="slow but stored", user_auth=True)
    deadline = time.monotonic() + 5
    while not posts(sandbox)["data"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p["text"] for p in posts(sandbox)["data"]] == ["slow but stored"]  # an outcome the client never saw
    set_fault(sandbox, endpoint="users_me", kind="hang", hang_s=0.2, count=1)
    assert make_client(sandbox.url).get_me(user_auth=True).data.username == "KestrelCare"


def test_reset_closes_the_connection_without_a_response(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    set_fault(sandbox, endpoint="create_tweet", kind="reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError, match="without response|aborted"):
        x.create_tweet(text="never arrives", user_auth=True)
    assert posts(sandbox)["data"] == []
    set_fault(sandbox, endpoint="mentions", kind="reset", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{sandbox.url}/2/users/1/mentions", headers={"Authorization": "Bearer t"})
    assert x.create_tweet(text="fine again", user_auth=True).data["text"] == "fine again"


def test_post_then_drop_stores_the_post_but_the_client_hears_nothing(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    root = customer_tweet(sandbox, "ann", "@KestrelCare hello")
    set_fault(sandbox, endpoint="create_tweet", kind="post_then_drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        x.create_tweet(text="Hi Ann ^bot", in_reply_to_tweet_id=root["id"], user_auth=True)
    stored = posts(sandbox)["data"]
    assert [(p["text"], p["in_reply_to_tweet_id"], p["connection_dropped"]) for p in stored] == [
        ("Hi Ann ^bot", root["id"], True)
    ]
    with pytest.raises(tweepy.Forbidden):  # a blind re-send is a duplicate: reconciliation must look first
        x.create_tweet(text="Hi Ann ^bot", in_reply_to_tweet_id=root["id"], user_auth=True)
    me = x.get_me(user_auth=True).data
    found = x.get_users_tweets(me.id, tweet_fields=["referenced_tweets"], user_auth=True).data
    assert [t.referenced_tweets[0].id for t in found] == [int(root["id"])]

    dm_in = httpx.post(f"{sandbox.url}/sandbox/customer-dms", json={"username": "ann", "text": "hi"}).json()
    set_fault(sandbox, endpoint="dm_send", kind="post_then_drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        x.create_direct_message(participant_id=dm_in["sender_id"], text="DM reply ^AB", user_auth=True)
    assert [(d["text"], d["connection_dropped"]) for d in posts(sandbox)["dms"]] == [("DM reply ^AB", True)]


def test_request_counts_bound_what_a_client_did(sandbox: RunningSandbox, x: tweepy.Client) -> None:
    httpx.delete(f"{sandbox.url}/sandbox/stats")
    set_fault(sandbox, endpoint="search", kind="503")
    for _ in range(3):
        with pytest.raises(tweepy.TwitterServerError):
            x.search_recent_tweets("kestrel", user_auth=True)
    x.get_me(user_auth=True)
    stats = httpx.get(f"{sandbox.url}/sandbox/stats").json()
    assert stats == {"requests": {"search": 3, "users_me": 1}, "total": 4}


def test_concurrent_customers_get_unique_increasing_ids(sandbox: RunningSandbox) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(lambda i: customer_tweet(sandbox, f"c{i}", f"@KestrelCare {i}"), range(40)))
    ids = [int(t["id"]) for t in created]
    assert len(set(ids)) == 40
    timeline = [int(t["id"]) for t in httpx.get(f"{sandbox.url}/sandbox/timeline").json()["data"]]
    assert timeline == sorted(ids)


def test_the_store_persists_across_restarts(tmp_path: Path) -> None:
    store = tmp_path / "x.db"
    with running_sandbox(store) as first:
        kept = customer_tweet(first, "ann", "@KestrelCare remember me")
        first_me = make_client(first.url).get_me(user_auth=True).data.id
    with running_sandbox(store) as second:
        client = make_client(second.url)
        assert client.get_me(user_auth=True).data.id == first_me
        assert [t.id for t in client.get_users_mentions(first_me, user_auth=True).data] == [int(kept["id"])]
