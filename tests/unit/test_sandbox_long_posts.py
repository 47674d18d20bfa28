"""The sandbox X's long posts: `text` cut to 280 weighted characters at a grapheme boundary, the whole text in
note_tweet only when asked for, and the sandbox's own view whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.sandbox.server import create_app, cut_to_weighted
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

AUTH = {"Authorization": "Bearer sandbox", "Host": "127.0.0.1"}
FAMILY = "👩‍👩‍👧‍👦"  # one grapheme of seven code points, weighing 2


@pytest.mark.parametrize(
    "text",
    [
        "a" * 600,
        "我" * 300,  # weight 2 each: 140 fit
        "a" * 279 + FAMILY + "b" * 50,  # the family would end at 281: cut before it, not inside it
        "see https://kestrel.co.uk/help/fibre " * 20,  # every URL weighs 23
    ],
)
def test_the_cut_is_the_longest_start_within_280(text: str) -> None:
    cut = cut_to_weighted(text)
    assert text.startswith(cut) and weighted_length(cut) <= MAX_WEIGHTED_LENGTH
    longer = text[: len(cut) + len(FAMILY)] if text[len(cut) :].startswith(FAMILY) else text[: len(cut) + 1]
    assert weighted_length(longer) > MAX_WEIGHTED_LENGTH
    assert FAMILY not in text or cut.count("\u200d") % 3 == 0  # no family split


def test_short_texts_are_not_cut() -> None:
    assert cut_to_weighted("hello") == "hello"
    assert cut_to_weighted("a" * 280) == "a" * 280


def test_note_tweet_only_for_long_posts_and_only_when_asked(tmp_path: Path) -> None:
    client = TestClient(create_app(tmp_path / "x.db"), base_url="http://127.0.0.1")
    long_text, short_text = "@KestrelCare " + "no signal " * 60, "@KestrelCare no signal"
    for text in (long_text, short_text):
        posted = client.post("/sandbox/customer-tweets", json={"username": "ann", "text": text})
        assert posted.status_code == 201 and posted.json()["text"] == text
    me = client.get("/2/users/me", headers=AUTH).json()["data"]["id"]
    asked = client.get(f"/2/users/{me}/mentions", params={"tweet.fields": "note_tweet"}, headers=AUTH).json()
    short, long = asked["data"]
    assert long["note_tweet"] == {"text": long_text} and long["text"] == cut_to_weighted(long_text)
    assert "note_tweet" not in short and short["text"] == short_text
    plain = client.get(f"/2/users/{me}/mentions", headers=AUTH).json()["data"]
    assert all("note_tweet" not in tweet for tweet in plain) and plain[1]["text"] == long["text"]
    search = client.get("/2/tweets/search/recent", params={"query": "signal", "tweet.fields": "note_tweet"},
                        headers=AUTH).json()["data"]  # fmt: skip
    assert [tweet.get("note_tweet") for tweet in search] == [None, {"text": long_text}]
    timeline = client.get("/sandbox/timeline").json()["data"]
    assert [tweet["text"] for tweet in timeline] == [long_text, short_text]
