"""The recent-search query language of the sandbox X: the subset of X's operators a care desk monitors with.

Supported: keywords (whole words, case-insensitive; `outage` also matches `#outage`), "quoted phrases",
@handle (mentions), #hashtag, from:handle, to:handle, a leading `-` to negate any of them, and `OR` between
groups of terms (terms next to each other must all match). `is:`, `has:` and `lang:` are accepted and
ignored (the sandbox has no retweets, media or languages).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_QUERY_LENGTH = 512
_TOKEN = re.compile(r'-?"[^"]*"|\S+')
_IGNORED_OPERATORS = ("is:", "has:", "lang:")


class QueryError(ValueError):
    """The query cannot be understood; the message says why."""


@dataclass(frozen=True)
class Candidate:
    """What a query looks at in a tweet."""

    text: str
    author_username: str
    in_reply_to_username: str | None


Matcher = Callable[[Candidate], bool]


def _term(token: str) -> Matcher | None:
    negated = token.startswith("-") and len(token) > 1
    body = token[1:] if negated else token
    lowered = body.lower()
    matcher: Matcher
    if lowered.startswith(_IGNORED_OPERATORS):
        return None
    if body.startswith('"'):
        phrase = body.strip('"').strip()
        if not phrase:
            raise QueryError("an empty quoted phrase")
        pattern = re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)", re.IGNORECASE)
        matcher = lambda c: bool(pattern.search(c.text))  # noqa: E731
    elif lowered.startswith("from:"):
        handle = lowered[5:].lstrip("@")
        matcher = lambda c: c.author_username.lower() == handle  # noqa: E731
    elif lowered.startswith("to:"):
        handle = lowered[3:].lstrip("@")
        matcher = lambda c: (c.in_reply_to_username or "").lower() == handle  # noqa: E731
    elif body.startswith("@") and len(body) > 1:
        pattern = re.compile(rf"(?<![\w@]){re.escape(body)}(?!\w)", re.IGNORECASE)
        matcher = lambda c: bool(pattern.search(c.text))  # noqa: E731
    elif body.startswith("#") and len(body) > 1:
        pattern = re.compile(rf"(?<![\w#]){re.escape(body)}(?!\w)", re.IGNORECASE)
        matcher = lambda c: bool(pattern.search(c.text))  # noqa: E731
    else:
        pattern = re.compile(rf"(?<![\w@])#?{re.escape(body)}(?!\w)", re.IGNORECASE)
        matcher = lambda c: bool(pattern.search(c.text))  # noqa: E731
    if negated:
        positive = matcher
        return lambda c: not positive(c)
    return matcher


def compile_query(query: str) -> Matcher:
    """A function telling whether a tweet matches `query`; QueryError when the query is unusable."""
    if not query.strip():
        raise QueryError("the query is empty")
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryError(f"the query is longer than {MAX_QUERY_LENGTH} characters")
    groups: list[list[Matcher]] = [[]]
    for token in _TOKEN.findall(query):
        if token == "OR":
            groups.append([])
            continue
        matcher = _term(token)
        if matcher is not None:
            groups[-1].append(matcher)
    if any(not group for group in groups) and len(groups) > 1:
        raise QueryError("OR needs terms on both sides")
    if not groups[0]:
        raise QueryError("the query has no term to search for")
    return lambda candidate: any(all(term(candidate) for term in group) for group in groups)
