"""Bad input never breaks the sandbox X: any query parameters or JSON body get an answer below 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

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
    with TestClient(app, raise_server_exceptions=False) as client:
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
