"""The sandbox X's recent-search query language."""

from __future__ import annotations

import pytest

from bot.sandbox.search import Candidate, QueryError, compile_query


def matches(query: str, text: str, author: str = "ann", to: str | None = None) -> bool:
    return compile_query(query)(Candidate(text, author, to))


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("outage", "big OUTAGE in Leeds", True),
        ("outage", "#outage again", True),
        ("outage", "outages everywhere", False),  # whole words only
        ("kestrel outage", "kestrel has an outage", True),
        ("kestrel outage", "kestrel is fine", False),
        ("kestrel OR fibre", "fibre down", True),
        ("kestrel -love", "I love kestrel", False),
        ('"no internet"', "there is no internet here", True),
        ('"no internet"', "no, the internet works", False),
        ("@KestrelCare", "hi @kestrelcare!", True),
        ("@KestrelCare", "email me at bob@KestrelCare.example", False),
        ("#kestreldown", "so #KestrelDown today", True),
        ("#kestreldown", "kestreldown", False),
        ("kestrel -is:retweet lang:en", "kestrel again", True),
    ],
)
def test_terms(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


def test_from_and_to() -> None:
    assert matches("from:ann hub", "my hub", author="Ann")
    assert not matches("from:bob hub", "my hub", author="ann")
    assert matches("to:KestrelCare", "thanks", to="KestrelCare")
    assert not matches("to:KestrelCare", "thanks", to=None)


@pytest.mark.parametrize("query", ["", "   ", "is:reply", "a OR", '""', "x" * 513])
def test_unusable_queries(query: str) -> None:
    with pytest.raises(QueryError):
        compile_query(query)
