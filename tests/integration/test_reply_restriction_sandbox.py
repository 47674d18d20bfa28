"""X's reply restriction for self-serve apps, over real HTTP: the sandbox X refuses a reply under a tweet whose
author did not summon the care account with X's 403 body, tweepy sees it as X sends it, and carebot's XClient
raises XReplyNotAllowed for it. With the restriction off (X for enterprise apps) the same reply is taken."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import tweepy
from requests.adapters import HTTPAdapter

from bot.channel.errors import XAuthError, XRejected, XReplyNotAllowed
from bot.channel.x_client import XClient
from bot.sandbox.server import REPLY_NOT_ALLOWED
from bot.sandbox.testing import RunningSandbox, running_sandbox
from bot.settings import PROJECT_ROOT, Settings

SPEC_PATH = PROJECT_ROOT.parent / "shared" / "data" / "x-api" / "openapi-2.166.json"


class SandboxAdapter(HTTPAdapter):
    """Sends tweepy's https://api.twitter.com requests to the sandbox."""

    def __init__(self, base_url: str) -> None:
        super().__init__(max_retries=0)
        self.base_url = base_url

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        request.url = request.url.replace("https://api.twitter.com", self.base_url, 1)
        kwargs["timeout"] = 5.0
        return super().send(request, **kwargs)


@dataclass
class World:
    sandbox: RunningSandbox
    http: httpx.Client
    client: XClient
    tweepy: tweepy.Client

    def tweet(self, username: str, text: str, reply_to: str | None = None) -> str:
        body: dict[str, Any] = {"username": username, "text": text}
        if reply_to:
            body["in_reply_to_tweet_id"] = reply_to
        response = self.http.post("/sandbox/customer-tweets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def posted(self) -> list[dict[str, Any]]:
        return list(self.http.get("/sandbox/posts").json()["data"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_sandbox(tmp_path / "sandbox-x.db") as sandbox, httpx.Client(base_url=sandbox.url) as http:
        settings = Settings(data_dir=tmp_path / "var", x_api_url=sandbox.url, x_timeout_s=2.0, x_max_retries=0)
        raw = tweepy.Client(consumer_key="ck", consumer_secret="cs", access_token="at", access_token_secret="ats")
        raw.session.mount("https://api.twitter.com", SandboxAdapter(sandbox.url))
        with XClient.from_settings(settings) as client:
            yield World(sandbox, http, client, raw)


def test_a_reply_under_a_tweet_that_never_mentioned_us_gets_xs_403_through_tweepy(world: World) -> None:
    keyword_hit = world.tweet("nora", "kestrel broadband has been down all evening")
    with pytest.raises(tweepy.Forbidden) as refused:
        world.tweepy.create_tweet(text="Sorry about that, can we help? ^bot", in_reply_to_tweet_id=keyword_hit)
    response = refused.value.response
    assert response.status_code == 403
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body = response.json()
    assert body == {"title": "Forbidden", "detail": REPLY_NOT_ALLOWED, "type": "about:blank", "status": 403}
    assert response.headers["x-rate-limit-remaining"]  # counted like any other post
    if SPEC_PATH.is_file():  # X's OpenAPI description: POST /2/tweets answers errors as a Problem
        spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
        content = spec["paths"]["/2/tweets"]["post"]["responses"]["default"]["content"]
        assert content["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
        jsonschema.Draft7Validator(spec["components"]["schemas"]["Problem"]).validate(body)
    assert world.posted() == []  # nothing was stored


def test_xclient_maps_the_restricted_reply_to_x_reply_not_allowed(world: World) -> None:
    keyword_hit = world.tweet("olga", "my kestrel router keeps dropping the wifi")
    with pytest.raises(XReplyNotAllowed) as refused:
        world.client.create_reply("Sorry to hear it, we can help ^bot", keyword_hit)
    error = refused.value
    assert isinstance(error, XRejected) and not isinstance(error, XAuthError)
    assert error.status == 403 and not error.duplicate
    assert error.detail == REPLY_NOT_ALLOWED and error.endpoint == "create_tweet"
    assert "X allows no reply here" in str(error)
    assert world.posted() == []


def test_replies_go_only_under_tweets_whose_author_summoned_the_account(world: World) -> None:
    mention = world.tweet("pia", "@kestrelcare my bill doubled this month")  # handles are case-insensitive
    ours = world.client.create_reply("Sorry Pia, let's look into it ^AB", mention)
    # The customer's reply under ours: on X its text starts with @KestrelCare, so it summons us.
    answer = world.tweet("pia", "it was 40 last month, now 80", reply_to=ours)
    refund = world.client.create_reply("Thanks, we can see it: a refund is on its way ^AB", answer)
    # Under our own tweet: not named by X's rule; developers report X takes it (a thread of one's own).
    world.client.create_reply("The refund shows within 3 days ^AB", refund)
    # A third person's reply under the customer's mention does not mention us.
    bystander = world.tweet("quin", "same here, mine went up too", reply_to=mention)
    with pytest.raises(XReplyNotAllowed):
        world.client.create_reply("Quin, we can help you too ^AB", bystander)
    # A name that only starts like ours is no mention.
    lookalike = world.tweet("ravi", "@KestrelCareers are you hiring?")
    with pytest.raises(XReplyNotAllowed):
        world.client.create_reply("We are! ^AB", lookalike)
    assert [post["in_reply_to_tweet_id"] for post in world.posted()] == [mention, answer, refund]


def test_a_quote_of_one_of_our_posts_summons_us_a_quote_of_anothers_does_not(world: World) -> None:
    mention = world.tweet("uli", "@KestrelCare is there an outage in York?")
    ours = world.client.create_reply("No outage in York right now ^bot", mention)
    response = world.http.post(
        "/sandbox/customer-tweets", json={"username": "vera", "text": "they say no outage. lol", "quote_tweet_id": ours}
    )
    assert response.status_code == 201, response.text
    quote = str(response.json()["id"])
    looked_up = world.tweepy.get_tweet(quote, tweet_fields=["referenced_tweets"], user_auth=True).data
    assert [(ref.type, str(ref.id)) for ref in looked_up.referenced_tweets] == [("quoted", ours)]  # as X shows it
    world.client.create_reply("Hi Vera, which street are you on? ^bot", quote)
    response = world.http.post(
        "/sandbox/customer-tweets", json={"username": "wyn", "text": "same", "quote_tweet_id": mention}
    )
    with pytest.raises(XReplyNotAllowed):
        world.client.create_reply("Wyn, can we help? ^bot", str(response.json()["id"]))
    bad = world.http.post("/sandbox/customer-tweets", json={"username": "wyn", "text": "x", "quote_tweet_id": "12"})
    assert bad.status_code == 400 and "quote_tweet_id" in bad.text


def test_with_the_restriction_off_every_reply_is_taken_as_x_takes_an_enterprise_apps(world: World) -> None:
    keyword_hit = world.tweet("sam", "kestrel fibre is so slow tonight")
    world.sandbox.app.state.reply_restriction = False
    posted = world.client.create_reply("Sorry Sam, we are on it ^bot", keyword_hit)
    assert [post["id"] for post in world.posted()] == [posted]
    world.sandbox.app.state.reply_restriction = True
    again = world.tweet("sam", "still slow")
    with pytest.raises(XReplyNotAllowed):
        world.client.create_reply("Still on it ^bot", again)


def test_the_setting_switches_the_restriction_off_from_the_start(tmp_path: Path) -> None:
    with (
        running_sandbox(tmp_path / "sandbox-x.db", reply_restriction=False) as sandbox,
        httpx.Client(base_url=sandbox.url) as http,
    ):
        hit = http.post("/sandbox/customer-tweets", json={"username": "tom", "text": "kestrel down?"}).json()
        reply = {"text": "Not here, Tom ^bot", "reply": {"in_reply_to_tweet_id": hit["id"]}}
        response = http.post("/2/tweets", json=reply, headers={"Authorization": "OAuth oauth_consumer_key=x"})
        assert response.status_code == 201, response.text
    assert Settings(data_dir=tmp_path).sandbox_reply_restriction is True  # on by default, as X is for self-serve
