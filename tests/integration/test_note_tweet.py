"""Long posts over real HTTP: a customer's 600-character post on the sandbox X is served as X serves it (`text` cut
to 280 weighted characters, the whole text in `note_tweet` only when tweet.fields asks for it), and reaches
carebot's database whole through the real tweepy client, from mentions and from recent search."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.channel.intake import Intake
from bot.channel.models import inbound_tweets
from bot.channel.x_client import SANDBOX_CREDENTIALS, XClient
from bot.db import make_engine, upgrade
from bot.sandbox.testing import RunningSandbox, running_sandbox
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

# 600 characters (the emoji weighs 2): the part past 280 names what the customer actually needs.
LONG_POST = (
    "@KestrelCare Third week of this 😡 The fibre line at our flat drops every evening between seven and eleven, "
    + "the router shows a red light and reconnects after a few minutes, then drops again. "
    + "We already restarted it, swapped the cable and ran the line test on your site twice. "
    + "I work from home and cannot keep losing calls. "
)
LONG_POST += ("The light is still red as I write this. " * 10)[: 600 - len(LONG_POST) - 44]
LONG_POST += " Please book an engineer visit for Saturday."


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("note") / "sandbox-x.db") as running:
        yield running


@pytest.fixture(scope="module")
def posted(sandbox: RunningSandbox) -> dict[str, str]:
    response = httpx.post(f"{sandbox.url}/sandbox/customer-tweets", json={"username": "dana", "text": LONG_POST})
    assert response.status_code == 201, response.text
    assert response.json()["text"] == LONG_POST  # the sandbox's own view: whole
    return response.json()


def _client(sandbox: RunningSandbox) -> XClient:
    """carebot's X client (tweepy inside) against the sandbox, as the worker builds it without X credentials."""
    consumer_key, consumer_secret, access_token, access_token_secret = SANDBOX_CREDENTIALS
    return XClient(
        sandbox.url, consumer_key=consumer_key, consumer_secret=consumer_secret, access_token=access_token,
        access_token_secret=access_token_secret,
    )  # fmt: skip


def test_x_serves_a_long_post_cut_with_note_tweet_on_request(sandbox: RunningSandbox, posted: dict[str, str]) -> None:
    assert len(LONG_POST) == 600 and weighted_length(LONG_POST) > MAX_WEIGHTED_LENGTH
    with _client(sandbox) as client:
        me = client.me()
    auth = {"Authorization": "OAuth sandbox"}
    url = f"{sandbox.url}/2/users/{me.id}/mentions"
    plain = httpx.get(url, params={"tweet.fields": "author_id"}, headers=auth).json()["data"][0]
    assert plain["id"] == posted["id"] and "note_tweet" not in plain
    assert weighted_length(plain["text"]) == MAX_WEIGHTED_LENGTH and LONG_POST.startswith(plain["text"])
    assert "Saturday" not in plain["text"]
    asked = httpx.get(url, params={"tweet.fields": "author_id,note_tweet"}, headers=auth).json()["data"][0]
    assert asked["note_tweet"]["text"] == LONG_POST and asked["text"] == plain["text"]
    short = httpx.post(f"{sandbox.url}/sandbox/customer-tweets", json={"username": "eli", "text": "@KestrelCare hi"})
    found = httpx.get(url, params={"tweet.fields": "note_tweet"}, headers=auth).json()["data"]
    (short_tweet,) = [tweet for tweet in found if tweet["id"] == short.json()["id"]]
    assert short_tweet == {
        "id": short_tweet["id"],
        "text": "@KestrelCare hi",
        "edit_history_tweet_ids": [short_tweet["id"]],
    }


def test_a_long_post_reaches_carebot_whole(sandbox: RunningSandbox, posted: dict[str, str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'carebot.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with _client(sandbox) as client:
            (mention,) = [tweet for tweet in client.mentions(None).tweets if tweet.id == posted["id"]]
            assert mention.text == LONG_POST
            (hit,) = client.search_recent("engineer visit")
            assert hit.id == posted["id"] and hit.text == LONG_POST
            Intake(engine, client).read_mentions()
        with engine.connect() as conn:
            stored = conn.execute(select(inbound_tweets.c.text).where(inbound_tweets.c.tweet_id == posted["id"]))
            assert stored.scalar_one() == LONG_POST
    finally:
        engine.dispose()
