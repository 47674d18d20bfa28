"""The sandbox X's API in-process (FastAPI's TestClient over a SQLite file): X's JSON shapes and rules, the
sandbox-only endpoints, and the store surviving a restart."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.sandbox.server import MENTIONS_REACHABLE, create_app
from bot.sandbox.store import snowflake_at, snowflake_time

LOCAL = "http://127.0.0.1:8090"  # the sandbox answers loopback hosts only, like tweepy's requests to it
AUTH = {"Authorization": "Bearer sandbox-token"}
OAUTH = {"Authorization": 'OAuth oauth_consumer_key="k", oauth_signature="s"'}
FIELDS = {"tweet.fields": "author_id,conversation_id,created_at,in_reply_to_user_id,referenced_tweets"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "x.db"), base_url=LOCAL) as test_client:
        yield test_client


def tweet(client: TestClient, username: str, text: str, reply_to: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "text": text}
    if reply_to is not None:
        body["in_reply_to_tweet_id"] = reply_to
    response = client.post("/sandbox/customer-tweets", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def me(client: TestClient) -> dict[str, Any]:
    return client.get("/2/users/me", headers=AUTH).json()["data"]


def post(client: TestClient, text: str, reply_to: str | None = None) -> Any:
    body: dict[str, Any] = {"text": text}
    if reply_to is not None:
        body["reply"] = {"in_reply_to_tweet_id": reply_to}
    return client.post("/2/tweets", json=body, headers=OAUTH)


def test_without_credentials_every_x_endpoint_answers_401(client: TestClient) -> None:
    account = me(client)["id"]
    requests = [
        ("GET", "/2/users/me"), ("GET", f"/2/users/{account}/mentions"), ("GET", "/2/tweets/search/recent?query=a"),
        ("GET", "/2/tweets?ids=1"), ("GET", "/2/tweets/1"), ("GET", f"/2/users/{account}/tweets"),
        ("POST", "/2/tweets"), ("POST", "/2/dm_conversations/with/1/messages"), ("GET", "/2/dm_events"),
    ]  # fmt: skip
    for method, path in requests:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
            response = client.request(method, path, headers=headers, json={"text": "x"})
            assert response.status_code == 401, (method, path, headers)
            assert response.json() == {"title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank",
                                       "status": 401}  # fmt: skip


def test_users_me_is_the_care_account(client: TestClient) -> None:
    response = client.get("/2/users/me", headers=OAUTH, params={"user.fields": "created_at"})
    data = response.json()["data"]
    assert data["username"] == "KestrelCare" and data["name"] == "Kestrel Care" and data["id"].isdigit()
    assert data["created_at"].endswith("Z")
    assert response.headers["x-rate-limit-limit"] == "75"


def test_mentions_have_x_shapes_newest_first_with_expanded_authors(client: TestClient) -> None:
    first = tweet(client, "ann", "@KestrelCare my hub is flashing red")
    tweet(client, "bob", "nothing to do with anyone")
    second = tweet(client, "cat", "hey @kestrelcare, is fibre down in Leeds?")
    account = me(client)["id"]
    response = client.get(
        f"/2/users/{account}/mentions", headers=AUTH, params={**FIELDS, "expansions": "author_id", "max_results": 5}
    )
    body = response.json()
    assert [t["id"] for t in body["data"]] == [second["id"], first["id"]]
    assert body["data"][1] == {
        "id": first["id"], "text": "@KestrelCare my hub is flashing red", "edit_history_tweet_ids": [first["id"]],
        "author_id": first["author_id"], "conversation_id": first["id"], "created_at": first["created_at"],
    }  # fmt: skip
    assert {u["username"] for u in body["includes"]["users"]} == {"ann", "cat"}
    assert body["meta"] == {"result_count": 2, "newest_id": second["id"], "oldest_id": first["id"]}
    remaining = int(response.headers["x-rate-limit-remaining"])
    again = client.get(f"/2/users/{account}/mentions", headers=AUTH)
    assert int(again.headers["x-rate-limit-remaining"]) == remaining - 1
    assert "author_id" not in again.json()["data"][0] and "includes" not in again.json()


def test_mentions_since_id_and_an_empty_answer(client: TestClient) -> None:
    first = tweet(client, "ann", "@KestrelCare one")
    second = tweet(client, "ann", "@KestrelCare two")
    account = me(client)["id"]
    newer = client.get(f"/2/users/{account}/mentions", headers=AUTH, params={"since_id": first["id"]}).json()
    assert [t["id"] for t in newer["data"]] == [second["id"]]
    older = client.get(f"/2/users/{account}/mentions", headers=AUTH, params={"until_id": second["id"]}).json()
    assert [t["id"] for t in older["data"]] == [first["id"]]
    empty = client.get(f"/2/users/{account}/mentions", headers=AUTH, params={"since_id": second["id"]})
    assert empty.status_code == 200 and empty.json() == {"meta": {"result_count": 0}}


def test_mentions_pagination_walks_every_page_once(client: TestClient) -> None:
    ids = [tweet(client, f"user{i}", f"@KestrelCare question {i}")["id"] for i in range(12)]
    account = me(client)["id"]
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"max_results": 5}
        if token:
            params["pagination_token"] = token
        body = client.get(f"/2/users/{account}/mentions", headers=AUTH, params=params).json()
        seen += [t["id"] for t in body["data"]]
        pages += 1
        token = body["meta"].get("next_token")
        if token is None:
            break
    assert pages == 3 and seen == list(reversed(ids))


def test_only_the_800_most_recent_mentions_are_reachable(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    customer = store.create_user("flood")
    created = [store.create_tweet(customer, f"@KestrelCare #{i}").id for i in range(MENTIONS_REACHABLE + 30)]
    account = me(client)["id"]
    reachable: list[int] = []
    params: dict[str, Any] = {"max_results": 100, "since_id": str(created[0])}
    while True:
        body = client.get(f"/2/users/{account}/mentions", headers=AUTH, params=params).json()
        reachable += [int(t["id"]) for t in body["data"]]
        if "next_token" not in body["meta"]:
            break
        params["pagination_token"] = body["meta"]["next_token"]
    assert len(reachable) == MENTIONS_REACHABLE
    assert reachable == sorted(created, reverse=True)[:MENTIONS_REACHABLE]  # the 29 after since_id are a gap


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"max_results": "4"}, "max_results"), ({"max_results": "101"}, "max_results"),
        ({"since_id": "abc"}, "since_id"), ({"pagination_token": "bogus"}, "pagination_token"),
        ({"tweet.fields": "author_id,colour"}, "tweet.fields"), ({"expansions": "everything"}, "expansions"),
    ],
)  # fmt: skip
def test_invalid_parameters_get_xs_invalid_request(client: TestClient, params: dict[str, str], parameter: str) -> None:
    response = client.get(f"/2/users/{me(client)['id']}/mentions", headers=AUTH, params=params)
    body = response.json()
    assert response.status_code == 400
    assert body["title"] == "Invalid Request" and body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    assert parameter in body["errors"][0]["parameters"] and body["errors"][0]["message"]


def test_unknown_user_is_a_not_found_error_in_a_200(client: TestClient) -> None:
    response = client.get("/2/users/12345/mentions", headers=AUTH)
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["title"] == "Not Found Error" and error["resource_type"] == "user" and error["value"] == "12345"


def test_search_finds_keywords_and_handles_with_pagination(client: TestClient) -> None:
    outage = [tweet(client, f"p{i}", f"is kestrel down in Leeds? #outage {i}")["id"] for i in range(12)]
    mention = tweet(client, "zed", "hello @KestrelCare")["id"]
    tweet(client, "other", "kestrels are birds of prey")
    found: list[str] = []
    params: dict[str, Any] = {"query": "kestrel outage", "max_results": 10}
    while True:
        body = client.get("/2/tweets/search/recent", headers=AUTH, params=params).json()
        found += [t["id"] for t in body["data"]]
        assert body["meta"]["result_count"] == len(body["data"])
        if "next_token" not in body["meta"]:
            break
        params["next_token"] = body["meta"]["next_token"]
    assert found == list(reversed(outage))
    by_handle = client.get("/2/tweets/search/recent", headers=AUTH, params={"query": "@KestrelCare"}).json()
    assert [t["id"] for t in by_handle["data"]] == [mention]
    since = client.get("/2/tweets/search/recent", headers=AUTH, params={"query": "Leeds", "since_id": outage[-2]})
    assert [t["id"] for t in since.json()["data"]] == [outage[-1]]
    assert client.get("/2/tweets/search/recent", headers=AUTH, params={"query": "a", "max_results": 9}).status_code \
        == 400  # fmt: skip
    assert client.get("/2/tweets/search/recent", headers=AUTH, params={"query": " "}).status_code == 400


INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"


def search(client: TestClient, **params: Any) -> Any:
    return client.get("/2/tweets/search/recent", headers=AUTH, params={"query": "kestrel", **params})


@pytest.mark.parametrize("parameter", ["since_id", "until_id"])
def test_search_refuses_an_id_older_than_7_days_like_x(client: TestClient, parameter: str) -> None:
    tweet(client, "ann", "kestrel hub down")
    stale = str(snowflake_at(datetime.now(UTC) - timedelta(days=8)))
    response = search(client, **{parameter: stale})
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Invalid Request" and body["type"] == INVALID_REQUEST
    assert body["detail"] == "One or more parameters to your request was invalid."
    (error,) = body["errors"]
    assert error["parameters"] == {parameter: [stale]}
    matched = re.fullmatch(
        rf"'{parameter}' must be a tweet id created after (\S+)Z\. Please use a '{parameter}' that is larger than "
        r"([0-9]+)",
        error["message"],
    )
    assert matched is not None, error["message"]
    oldest = datetime.fromisoformat(matched[1]).replace(tzinfo=UTC)
    assert timedelta(days=7) <= datetime.now(UTC) - oldest < timedelta(days=7, minutes=2)
    smallest = int(matched[2])
    assert abs(snowflake_time(smallest) - (datetime.now(UTC) - timedelta(days=7))) < timedelta(seconds=30)


def test_search_takes_ids_and_a_start_time_inside_the_7_days(client: TestClient) -> None:
    hits = [tweet(client, f"c{n}", f"kestrel outage {n}")["id"] for n in range(3)]
    six_days = datetime.now(UTC) - timedelta(days=6, hours=23)
    assert [t["id"] for t in search(client, since_id=str(snowflake_at(six_days))).json()["data"]] == hits[::-1]
    assert [t["id"] for t in search(client, since_id=hits[0]).json()["data"]] == hits[:0:-1]
    assert [t["id"] for t in search(client, start_time=six_days.strftime("%Y-%m-%dT%H:%M:%SZ")).json()["data"]] == (
        hits[::-1]
    )
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert "data" not in search(client, start_time=later).json()
    both = search(client, since_id=hits[0], start_time=six_days.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert both.status_code == 400 and "since_id" in both.json()["errors"][0]["parameters"]


def test_search_refuses_a_start_time_older_than_7_days_or_not_a_time(client: TestClient) -> None:
    old = (datetime.now(UTC) - timedelta(days=7, minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = search(client, start_time=old)
    assert response.status_code == 400 and response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert list(error["parameters"]) == ["start_time"]
    assert re.fullmatch(r"Invalid 'start_time':'\S+Z'\. 'start_time' must be on or after \S+Z", error["message"])
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9" * 500):
        refused = search(client, start_time=bad)
        assert refused.status_code == 400 and refused.json()["type"] == INVALID_REQUEST, bad


def test_errors_are_problem_json_and_answers_plain_json(client: TestClient) -> None:
    ok = client.get("/2/users/me", headers=AUTH)
    assert ok.headers["content-type"] == "application/json"
    errors = [
        client.get("/2/users/me"),  # 401
        client.get("/2/tweets/search/recent", headers=AUTH),  # 400: no query
        post(client, "x" * 300),  # 400: too long
        client.get("/2/no/such/route", headers=AUTH),  # 404
        client.post("/2/users/me", headers=AUTH),  # 405
        client.post("/sandbox/customer-tweets", json={"username": "a"}),  # 400 of the sandbox's own endpoints
        client.get("/2/users/me", headers={**AUTH, "Host": "evil.example"}),  # a host the sandbox does not answer
    ]
    post(client, "the same text")
    errors.append(post(client, "the same text"))  # 403 duplicate
    assert [r.status_code for r in errors] == [401, 400, 400, 404, 405, 400, 400, 403]
    for response in errors:
        assert response.headers["content-type"] == "application/problem+json", response.request.url
        body = response.json()
        assert isinstance(body, dict) and body["title"] and body["detail"]
    assert errors[4].headers["allow"] == "GET"


def test_tweet_lookup_by_ids_and_by_id(client: TestClient) -> None:
    a = tweet(client, "ann", "@KestrelCare one")
    b = tweet(client, "bob", "@KestrelCare two")
    many = client.get("/2/tweets", headers=AUTH, params={"ids": f"{b['id']},999,{a['id']}", **FIELDS}).json()
    assert [t["id"] for t in many["data"]] == [b["id"], a["id"]]
    assert [e["value"] for e in many["errors"]] == ["999"] and many["errors"][0]["resource_type"] == "tweet"
    one = client.get(f"/2/tweets/{a['id']}", headers=AUTH, params={"expansions": "author_id"}).json()
    assert one["data"]["id"] == a["id"] and one["includes"]["users"][0]["username"] == "ann"
    missing = client.get("/2/tweets/42", headers=AUTH).json()
    assert "data" not in missing and missing["errors"][0]["detail"] == "Could not find tweet with id: [42]."
    assert client.get("/2/tweets", headers=AUTH, params={"ids": ""}).status_code == 400


def test_replies_keep_the_conversation_and_point_at_their_target(client: TestClient) -> None:
    root = tweet(client, "ann", "@KestrelCare my hub is dead")
    ours = post(client, "Sorry to hear that! Try a restart first ^bot", root["id"])
    assert ours.status_code == 201
    data = ours.json()["data"]
    assert set(data) == {"id", "text", "edit_history_tweet_ids"} and int(data["id"]) > int(root["id"])
    follow_up = tweet(client, "ann", "@KestrelCare still dead", reply_to=data["id"])
    found = client.get("/2/tweets", headers=AUTH, params={"ids": f"{data['id']},{follow_up['id']}", **FIELDS}).json()
    reply, again = found["data"]
    assert reply["conversation_id"] == root["id"] == again["conversation_id"]
    assert reply["in_reply_to_user_id"] == root["author_id"]
    assert reply["referenced_tweets"] == [{"type": "replied_to", "id": root["id"]}]
    assert again["referenced_tweets"] == [{"type": "replied_to", "id": data["id"]}]
    mentions = client.get(f"/2/users/{me(client)['id']}/mentions", headers=AUTH).json()
    assert mentions["data"][0]["id"] == follow_up["id"]


def test_create_tweet_counts_280_weighted_characters(client: TestClient) -> None:
    assert post(client, "a" * 280).status_code == 201
    too_long = post(client, "b" * 281)
    assert too_long.status_code == 400 and "281" in too_long.json()["errors"][0]["message"]
    assert post(client, "界" * 140).status_code == 201  # CJK weighs 2
    assert post(client, "界" * 141).status_code == 400
    url = "https://www.kestrel.example.co.uk/help/a/very/long/path/that/counts/as/twenty-three"
    assert post(client, "c" * 256 + " " + url).status_code == 201  # 256 + 1 + 23 = 280
    assert post(client, "😀" * 140).status_code == 201
    assert post(client, "").status_code == 400
    assert client.post("/2/tweets", headers=AUTH, content=b"{not json").status_code == 400


def test_duplicate_text_by_the_care_account_is_refused_with_403(client: TestClient) -> None:
    root = tweet(client, "ann", "@KestrelCare hi")
    assert post(client, "Thanks for getting in touch ^bot", root["id"]).status_code == 201
    duplicate = post(client, "Thanks for getting in touch ^bot")
    assert duplicate.status_code == 403
    assert duplicate.json() == {
        "title": "Forbidden", "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank", "status": 403,
    }  # fmt: skip
    assert post(client, "Thanks for getting in touch! ^bot").status_code == 201
    tweet(client, "bob", "same words")
    tweet(client, "bob", "same words")  # customers are not checked: the sandbox only polices the care account
    assert len(client.get("/sandbox/posts").json()["data"]) == 2


def test_reply_to_an_unknown_tweet_is_400_and_stores_nothing(client: TestClient) -> None:
    response = post(client, "hello", "1234567")
    assert response.status_code == 400
    assert response.json()["errors"][0]["parameters"] == {"reply.in_reply_to_tweet_id": ["1234567"]}
    assert client.get("/sandbox/posts").json()["data"] == []


def test_user_tweets_are_the_accounts_own_posts_newest_first(client: TestClient) -> None:
    root = tweet(client, "ann", "@KestrelCare hi")
    ids = [post(client, f"reply number {i} ^bot", root["id"]).json()["data"]["id"] for i in range(7)]
    account = me(client)["id"]
    first = client.get(f"/2/users/{account}/tweets", headers=AUTH, params={"max_results": 5, **FIELDS}).json()
    assert [t["id"] for t in first["data"]] == list(reversed(ids))[:5]
    assert all(t["author_id"] == account for t in first["data"])
    rest = client.get(
        f"/2/users/{account}/tweets", headers=AUTH, params={"pagination_token": first["meta"]["next_token"]}
    ).json()
    assert [t["id"] for t in rest["data"]] == list(reversed(ids))[5:] and "next_token" not in rest["meta"]
    since = client.get(f"/2/users/{account}/tweets", headers=AUTH, params={"since_id": ids[4]}).json()
    assert [t["id"] for t in since["data"]] == [ids[6], ids[5]]


def test_direct_messages_both_ways(client: TestClient) -> None:
    received = client.post("/sandbox/customer-dms", json={"username": "ann", "text": "my number is KT-12345678"})
    assert received.status_code == 201
    ann = received.json()["sender_id"]
    sent = client.post(f"/2/dm_conversations/with/{ann}/messages", headers=OAUTH, json={"text": "Thanks, checking ^AB"})
    assert sent.status_code == 201
    data = sent.json()["data"]
    assert set(data) == {"dm_conversation_id", "dm_event_id"} and ann in data["dm_conversation_id"].split("-")
    events = client.get(
        "/2/dm_events", headers=AUTH,
        params={"event_types": "MessageCreate", "dm_event.fields": "sender_id,created_at,dm_conversation_id",
                "expansions": "sender_id"},
    ).json()  # fmt: skip
    assert [e["text"] for e in events["data"]] == ["Thanks, checking ^AB", "my number is KT-12345678"]
    assert events["data"][1]["sender_id"] == ann and events["data"][1]["event_type"] == "MessageCreate"
    assert events["data"][0]["dm_conversation_id"] == data["dm_conversation_id"]
    assert {u["username"] for u in events["includes"]["users"]} == {"ann", "KestrelCare"}
    paged = client.get("/2/dm_events", headers=AUTH, params={"max_results": 1}).json()
    assert paged["meta"]["result_count"] == 1 and "next_token" in paged["meta"]
    assert client.post("/2/dm_conversations/with/999/messages", headers=AUTH, json={"text": "x"}).status_code == 400
    assert client.post(f"/2/dm_conversations/with/{ann}/messages", headers=AUTH, json={}).status_code == 400
    assert [dm["text"] for dm in client.get("/sandbox/posts").json()["dms"]] == ["Thanks, checking ^AB"]


def test_customer_tweets_are_checked(client: TestClient) -> None:
    bad = [
        {"username": "not a handle", "text": "hi"}, {"username": "KestrelCare", "text": "impersonating"},
        {"username": "ann", "text": "  "}, {"username": "ann", "text": "x" * 25_001},
        {"username": "ann", "text": "hi", "in_reply_to_tweet_id": "777"}, {"username": "ann", "text": "hi", "x": 1},
        {"text": "no user"},
    ]  # fmt: skip
    for body in bad:
        response = client.post("/sandbox/customer-tweets", json=body)
        assert response.status_code == 400, body
        assert response.json()["detail"]
    json_type = {"Content-Type": "application/json"}
    assert client.post("/sandbox/customer-tweets", content=b"[", headers=json_type).status_code == 400
    form = client.post("/sandbox/customer-tweets", content=b'{"username": "eve", "text": "hi"}',
                       headers={"Content-Type": "text/plain"})  # fmt: skip
    assert form.status_code == 415 and "application/json" in form.json()["detail"]
    assert client.get("/sandbox/timeline").json()["data"] == []
    assert tweet(client, "@Ann_1", "hello")["author_username"] == "Ann_1"


def test_timeline_is_oldest_first_with_usernames_and_filters(client: TestClient) -> None:
    root = tweet(client, "ann", "@KestrelCare a")
    reply = post(client, "b ^bot", root["id"]).json()["data"]
    later = tweet(client, "bob", "c")
    timeline = client.get("/sandbox/timeline").json()
    assert [(t["author_username"], t["text"]) for t in timeline["data"]] == [
        ("ann", "@KestrelCare a"), ("KestrelCare", "b ^bot"), ("bob", "c"),
    ]  # fmt: skip
    assert timeline["account"]["username"] == "KestrelCare"
    assert [t["id"] for t in client.get(f"/sandbox/timeline?since_id={reply['id']}").json()["data"]] == [later["id"]]
    replies = client.get(f"/sandbox/timeline?in_reply_to_tweet_id={root['id']}").json()["data"]
    assert [t["id"] for t in replies] == [reply["id"]] and replies[0]["in_reply_to_tweet_id"] == root["id"]
    assert client.get("/sandbox/timeline?since_id=abc").status_code == 400


def test_ids_are_increasing_snowflakes_and_the_store_survives_a_restart(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "x.db"), base_url=LOCAL) as first:
        account = me(first)
        ids = [tweet(first, "ann", f"@KestrelCare {i}")["id"] for i in range(5)]
        posted = post(first, "reply ^bot", ids[0]).json()["data"]["id"]
    assert ids == sorted(ids, key=int) and all(len(i) >= 18 for i in ids)
    assert abs(snowflake_time(int(ids[0])).timestamp() - time.time()) < 60
    with TestClient(create_app(tmp_path / "x.db"), base_url=LOCAL) as second:
        assert me(second) == account
        newer = tweet(second, "ann", "@KestrelCare after the restart")["id"]
        assert int(newer) > int(posted)
        mentions = second.get(f"/2/users/{account['id']}/mentions", headers=AUTH).json()
        assert [t["id"] for t in mentions["data"]] == [newer, *reversed(ids)]
        assert post(second, "reply ^bot").status_code == 403  # the duplicate check remembers
        assert [p["id"] for p in second.get("/sandbox/posts").json()["data"]] == [posted]


def test_search_reads_past_many_non_matching_tweets(client: TestClient) -> None:
    store = client.app.state.store  # type: ignore[attr-defined]
    customer = store.create_user("chatty")
    wanted = store.create_tweet(customer, "broadband down in Leeds").id
    for i in range(1200):  # more than two of the search's store batches
        store.create_tweet(customer, f"unrelated chatter {i}")
    body = client.get("/2/tweets/search/recent", headers=AUTH, params={"query": "broadband Leeds"}).json()
    assert [t["id"] for t in body["data"]] == [str(wanted)] and "next_token" not in body["meta"]


def test_timeline_limit_keeps_the_most_recent(client: TestClient) -> None:
    ids = [tweet(client, "ann", f"tweet {i}")["id"] for i in range(5)]
    assert [t["id"] for t in client.get("/sandbox/timeline?limit=2").json()["data"]] == ids[3:]
    assert client.get("/sandbox/timeline?limit=0").status_code == 400


def test_only_the_most_recent_own_tweets_are_reachable(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.sandbox.server.USER_TWEETS_REACHABLE", 10)  # X: 3200
    store = client.app.state.store  # type: ignore[attr-defined]
    ids = [str(store.create_tweet(store.account, f"post {i}", via_api=True).id) for i in range(14)]
    account = me(client)["id"]
    body = client.get(f"/2/users/{account}/tweets", headers=AUTH, params={"max_results": 100}).json()
    assert [t["id"] for t in body["data"]] == list(reversed(ids))[:10]
    since = client.get(f"/2/users/{account}/tweets", headers=AUTH, params={"since_id": ids[0]}).json()
    assert since["meta"]["result_count"] == 10 and since["meta"]["oldest_id"] == ids[4]


@pytest.mark.parametrize("bad_id", ["²", "١٢٣", "99999999999999999999", "9223372036854775808", "-1"])
def test_odd_ids_are_refused_not_crashing(client: TestClient, bad_id: str) -> None:
    account = me(client)["id"]
    assert client.get(f"/2/tweets/{bad_id}", headers=AUTH).status_code == 400
    assert client.get("/2/tweets", headers=AUTH, params={"ids": bad_id}).status_code == 400
    assert client.get(f"/2/users/{account}/mentions", headers=AUTH, params={"since_id": bad_id}).status_code == 400
    assert client.get(f"/2/users/{account}/mentions", headers=AUTH, params={"max_results": bad_id}).status_code == 400
    assert client.get(f"/2/users/{bad_id}/tweets", headers=AUTH).status_code == 400
    assert post(client, "hi", bad_id).status_code == 400
    customer = client.post(
        "/sandbox/customer-tweets", json={"username": "a", "text": "b", "in_reply_to_tweet_id": bad_id}
    )
    assert customer.status_code == 400
    assert client.get(f"/sandbox/timeline?since_id={bad_id}").status_code == 400
    assert client.get("/sandbox/posts").json()["data"] == []
