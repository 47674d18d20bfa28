"""Bad input never breaks the sandbox X: any query parameters or JSON body get an answer below 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sandbox.server import create_app

PATHS = [
    ("GET", "/2/users/me"), ("GET", "/2/users/{account}/mentions"), ("GET", "/2/tweets/search/recent"),
    ("GET", "/2/tweets"), ("GET", "/2/tweets/{value}"), ("GET", "/2/users/{value}/tweets"), ("POST", "/2/tweets"),
    ("POST", "/2/dm_conversations/with/{value}/messages"), ("GET", "/2/dm_events"),
    ("POST", "/sandbox/customer-tweets"), ("POST", "/sandbox/customer-dms"), ("GET", "/sandbox/timeline"),
    ("POST", "/sandbox/faults"), ("POST", "/"), ("POST", "/dm"), ("GET", "/"),
]  # fmt: skip
PARAMETERS = [
    "since_id", "until_id", "max_results", "pagination_token", "next_token", "query", "ids", "tweet.fields",
    "expansions", "user.fields", "dm_event.fields", "event_types", "in_reply_to_tweet_id", "limit", "reply_to",
    "start_time",
]  # fmt: skip
text = st.text(max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
bodies = st.dictionaries(
    st.sampled_from(["text", "username", "in_reply_to_tweet_id", "reply", "endpoint", "kind", "count", "hang_s"]),
    json_values, max_size=4,
) | json_values  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(PATHS), value=text, params=st.dictionaries(st.sampled_from(PARAMETERS), text, max_size=4),
    body=bodies,
)  # fmt: skip
def test_no_input_makes_the_sandbox_fail(tmp_path: Path, route: tuple[str, str], value: str,
                                         params: dict[str, str], body: Any) -> None:  # fmt: skip
    method, template = route
    app = create_app(tmp_path / "x.db")
    with TestClient(app, raise_server_exceptions=False, base_url="http://localhost") as client:
        account = str(app.state.store.account.id)
        path = template.format(account=account, value=quote(value, safe="") or "1")
        headers = {"Authorization": "Bearer t"}
        if body is not None and isinstance(body, dict) and "hang_s" in body:
            body["hang_s"] = 0
        if template in ("/", "/dm"):
            response = client.request(
                method,
                path,
                headers=headers,
                params=params,
                data={k: str(v) for k, v in body.items()} if isinstance(body, dict) else None,
            )
        else:
            response = client.request(method, path, headers=headers, params=params, json=body)
        assert response.status_code < 500, (method, path, params, body, response.text)


# ---------------------------------------------------------------- bodies, tokens and hosts a fuzzer rarely finds

AUTH = {"Authorization": "Bearer t"}
JSON = {"Content-Type": "application/json"}
X_BODY_ROUTES = ["/2/tweets", "/2/dm_conversations/with/{account}/messages"]
SANDBOX_BODY_ROUTES = ["/sandbox/customer-tweets", "/sandbox/customer-dms", "/sandbox/faults"]
BAD_BODIES = {
    "nested": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "nested-33": b'{"text": "hi", "x": ' + b"[" * 33 + b"]" * 33 + b"}",
    "lone-surrogate": b'{"username": "ann", "text": "hello \\ud800", "endpoint": "users_me", "kind": "500"}',
    "lone-surrogate-key": b'{"\\udfff": "x", "text": "hi"}',
    "nan": b'{"text": "hi", "count": NaN}',
    "infinity": b'{"text": "hi", "reset_in_s": -Infinity}',
    "huge-float": b'{"text": "hi", "hang_s": 1e400}',
    "huge-int": b'{"text": "hi", "count": ' + b"9" * 5_000 + b"}",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "x.db"), raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
        yield c


def _account(client: TestClient) -> str:
    return str(client.app.state.store.account.id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bodies_x_would_not_read_get_xs_invalid_request_and_store_nothing(client: TestClient, name: str) -> None:
    for template in X_BODY_ROUTES:
        path = template.format(account=_account(client))
        response = client.post(path, content=BAD_BODIES[name], headers={**AUTH, **JSON})
        body = response.json()
        assert response.status_code == 400, (path, response.text)
        assert body["title"] == "Invalid Request" and body["type"] == "https://api.twitter.com/2/problems/invalid-request"
        assert "not valid JSON" in body["errors"][0]["message"] and "body" in body["errors"][0]["parameters"]
    for path in SANDBOX_BODY_ROUTES:
        response = client.post(path, content=BAD_BODIES[name], headers=JSON)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["title"] == "Invalid Request" and "not valid JSON" in response.json()["detail"]
    assert client.get("/sandbox/timeline").json()["data"] == [] and client.get("/sandbox/faults").json()["faults"] == []
    assert client.app.state.store.user_by_handle("ann") is None  # type: ignore[attr-defined]


def test_a_body_32_levels_deep_is_still_read(client: TestClient) -> None:
    body = b'{"text": "deep but fine", "x": ' + b"[" * 31 + b"]" * 31 + b"}"
    assert client.post("/2/tweets", content=body, headers={**AUTH, **JSON}).status_code == 201


TOKEN_ROUTES = ["/2/users/{account}/mentions", "/2/users/{account}/tweets", "/2/dm_events", "/2/tweets/search/recent"]


@pytest.mark.parametrize(
    "token",
    ["sbx" + "z" * 13, "sbx" + "z" * 20, "sbx" + "z" * 5_000, "sbx" + "1" * 60_000, "sbx0", "sbx-1", "sbx+1", "sbx_1",
     "sbx 1", "sbxZZ", "sbx", "sbx²"],
)  # fmt: skip
def test_pagination_tokens_that_name_no_tweet_id_are_invalid_requests(client: TestClient, token: str) -> None:
    for template in TOKEN_ROUTES:
        path = template.format(account=_account(client))
        for name in ("pagination_token", "next_token") if "search" in path else ("pagination_token",):
            response = client.get(path, headers=AUTH, params={name: token, "query": "hub"})
            assert response.status_code == 400, (path, name, response.text[:200])
            assert response.json()["type"] == "https://api.twitter.com/2/problems/invalid-request"
            assert len(response.text) < 1_000


def test_the_largest_token_still_pages(client: TestClient) -> None:
    largest = {"pagination_token": "sbx1y2p0ij32e8e7"}  # 2**63 - 1 in base 36
    assert client.get(f"/2/users/{_account(client)}/tweets", headers=AUTH, params=largest).is_success


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sandbox/customer-tweets", {"username": "ann", "text": "x" * 25_001}),
        ("/sandbox/customer-tweets", {"username": "ann", "text": "   "}),
        ("/sandbox/customer-tweets", {"username": "ann", "text": "hi", "in_reply_to_tweet_id": "777"}),
        ("/sandbox/customer-tweets", {"username": "ann", "text": "hi", "in_reply_to_tweet_id": "x"}),
        ("/sandbox/customer-dms", {"username": "ann", "text": ""}),
        ("/sandbox/customer-dms", {"username": "ann", "text": "x" * 10_001}),
    ],
)
def test_a_refused_post_creates_no_customer(client: TestClient, path: str, body: dict[str, Any]) -> None:
    assert client.post(path, json=body).status_code == 400
    assert client.app.state.store.user_by_handle("ann") is None  # type: ignore[attr-defined]


def test_a_refused_post_on_the_page_creates_no_customer(client: TestClient) -> None:
    for path, form in [("/", {"username": "ann", "text": "x" * 25_001, "reply_to": ""}), ("/dm", {"username": "ann"})]:
        assert client.post(path, data=form).status_code == 400
    assert client.app.state.store.user_by_handle("ann") is None  # type: ignore[attr-defined]


def test_a_handle_with_a_final_newline_is_no_handle(client: TestClient) -> None:
    with pytest.raises(ValueError, match="not a valid X handle"):
        client.app.state.store.create_user("ann\n")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8090", "localhost", "localhost:1", "LocalHost.", "[::1]", "[::1]:8090"]
)
def test_loopback_hosts_are_answered(client: TestClient, host: str) -> None:
    assert client.get("/2/users/me", headers={**AUTH, "Host": host}).status_code == 200
    assert client.get("/sandbox/faults", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8090", "127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.2",
             "[::2]:8090", "::1", "[::1]x", "localhost:123456", "testserver", "", "local host"],
)  # fmt: skip
def test_other_hosts_are_refused_before_anything_happens(client: TestClient, host: str) -> None:
    for method, path in [("GET", "/sandbox/faults"), ("POST", "/sandbox/faults"), ("GET", "/"), ("GET", "/2/users/me")]:
        body = {"endpoint": "*", "kind": "500"} if method == "POST" else None
        response = client.request(method, path, headers={**AUTH, "Host": host}, json=body)
        assert response.status_code == 400, (method, path, host)
        refusal = response.json()
        assert refusal["title"] == "Invalid Request" and refusal["errors"][0]["parameters"] == {"Host": [host]}
    assert client.get("/sandbox/faults").json()["faults"] == [] and client.get("/sandbox/stats").json()["total"] == 0


def test_configured_hosts_are_answered_too(tmp_path: Path) -> None:
    app = create_app(tmp_path / "x.db", allowed_hosts=["care-training.lan", "192.168.1.20", "[fd00::5]"])
    with TestClient(app, base_url="http://care-training.lan:8090") as client:
        for host in ["care-training.lan:8090", "192.168.1.20", "[fd00::5]:8090", "127.0.0.1:8090"]:
            assert client.get("/sandbox/faults", headers={"Host": host}).status_code == 200, host
        assert client.get("/sandbox/faults", headers={"Host": "evil.example"}).status_code == 400
    with TestClient(create_app(tmp_path / "y.db", allowed_hosts=["*"]), base_url="http://anything.example") as client:
        assert client.get("/sandbox/faults").status_code == 200
