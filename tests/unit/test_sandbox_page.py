"""The sandbox X's customer page: hostile customer text is shown as text, never as markup or script."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.sandbox.server import create_app

HOSTILE = [
    "<script>alert('xss')</script>",
    "<img src=x onerror=alert(document.cookie)>",
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "{{7*7}} {% include 'x' %}",
    "evil \u202egnp.exe",
    "pay\u200bpal",
    '" onmouseover="alert(1)',
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "x.db", allowed_hosts=["testserver"])) as test_client:
        yield test_client


def test_hostile_tweets_are_escaped_and_the_page_runs_no_inline_script(client: TestClient) -> None:
    for number, text in enumerate(HOSTILE):
        assert client.post("/sandbox/customer-tweets", json={"username": f"h{number}", "text": text}).status_code == 201
    page = client.get("/")
    html = page.text
    assert page.status_code == 200
    assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert '<a href="javascript:' not in html and 'onmouseover="alert' not in html
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(document.cookie)&gt;" in html
    assert "{{7*7}} {% include &#39;x&#39; %}" in html  # shown, not evaluated (no 49)
    assert "⟦U+202E⟧" in html and "⟦U+200B⟧" in html and "\u202e" not in html
    assert all(
        re.fullmatch(r'<script src="/static/[a-z]+\.js" defer>', tag) for tag in re.findall(r"<script[^>]*>", html)
    )
    assert html.count('class="text" dir="auto"') == len(HOSTILE)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"  # with no-referrer, browsers send `Origin: null`
    fragment = client.get("/timeline")
    assert fragment.status_code == 200 and "&lt;svg onload=alert(1)&gt;" in fragment.text
    assert not re.search(r"https?://", html)  # nothing from the internet


def test_threads_show_our_replies_under_the_customer(client: TestClient) -> None:
    root = client.post("/sandbox/customer-tweets", json={"username": "ann", "text": "@KestrelCare hub dead"}).json()
    reply = client.post(
        "/2/tweets", headers={"Authorization": "Bearer t"},
        json={"text": "Sorry Ann, try a restart ^AB", "reply": {"in_reply_to_tweet_id": root["id"]}},
    ).json()["data"]  # fmt: skip
    html = client.get("/").text
    assert html.index(f'id="t{root["id"]}"') < html.index(f'id="t{reply["id"]}"')
    assert re.search(rf'<li id="t{reply["id"]}" class="tweet ours reply">', html)
    assert "^AB" in html and f'href="#t{root["id"]}"' in html


def test_the_form_tweets_as_a_customer(client: TestClient) -> None:
    posted = client.post(
        "/", data={"username": "carol", "text": "@KestrelCare <b>hi</b>", "reply_to": ""},
        headers={"Origin": "http://testserver"}, follow_redirects=False,  # a browser sends its origin
    )  # fmt: skip
    assert posted.status_code == 303 and posted.headers["location"] == "/"
    timeline = client.get("/sandbox/timeline").json()["data"]
    assert [(t["author_username"], t["text"]) for t in timeline] == [("carol", "@KestrelCare <b>hi</b>")]
    reply_form = client.get(f"/?reply_to={timeline[0]['id']}").text
    assert f'name="reply_to" value="{timeline[0]["id"]}"' in reply_form


def test_a_bad_form_is_shown_again_with_the_error_and_nothing_is_lost(client: TestClient) -> None:
    text = "<script>x</script>" + "y" * 25_000
    response = client.post("/", data={"username": "carol", "text": text, "reply_to": ""})
    assert response.status_code == 400
    assert "weighted characters" in response.text and 'role="alert"' in response.text
    assert "&lt;script&gt;x&lt;/script&gt;" + "y" * 25_000 in response.text  # the text is kept for editing
    assert client.get("/sandbox/timeline").json()["data"] == []


def test_cross_site_form_posts_are_refused(client: TestClient) -> None:
    response = client.post("/", data={"username": "eve", "text": "hi"}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert client.get("/sandbox/timeline").json()["data"] == []


def test_direct_messages_are_listed_escaped_and_a_customer_can_send_one(client: TestClient) -> None:
    sent = client.post("/dm", data={"username": "dora", "text": "<img src=x onerror=alert(1)> KT-12345678"},
                       follow_redirects=False)  # fmt: skip
    assert sent.status_code == 303
    dora = client.get("/2/dm_events", headers={"Authorization": "Bearer t"},
                      params={"dm_event.fields": "sender_id"}).json()["data"][0]  # fmt: skip
    client.post(f"/2/dm_conversations/with/{dora['sender_id']}/messages", headers={"Authorization": "Bearer t"},
                json={"text": "Thanks Dora, \u202eall sorted ^AB"})  # fmt: skip
    html = client.get("/").text
    assert "&lt;img src=x onerror=alert(1)&gt; KT-12345678" in html and "<img src=x" not in html
    assert 'Thanks Dora, <span class="ctl">⟦U+202E⟧</span>all sorted ^AB' in html
    assert html.index("all sorted") < html.index("KT-12345678")  # newest first
    refused = client.post("/dm", data={"username": "dora", "text": "   "})
    assert refused.status_code == 400 and "a message needs text" in refused.text
    assert client.post("/dm", data={"username": "eve", "text": "hi"},
                       headers={"Origin": "http://evil.example"}).status_code == 403  # fmt: skip
