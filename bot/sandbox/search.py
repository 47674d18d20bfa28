"""The recent-search query language of the sandbox X: X's query grammar, parsed and checked the way X documents it
(docs.x.com, "Build a query" and "Search operators"), so a query X refuses is refused here too.

Grammar: terms next to each other must all match (AND); `OR` (upper case) between them means either, and binds
looser than AND (`apple OR iphone ipad` is `apple OR (iphone ipad)`); parentheses group; a leading `-` negates a
term. Terms: keywords (whole words, case-insensitive; `outage` also matches `#outage`), "quoted phrases",
@handle, #hashtag, $cashtag, from:handle, to:handle, url:…, and X's other operators.

Refused, as X refuses them (QueryError; the message names the problem and its position, 1-based, as X's do): an
empty query or one over MAX_QUERY_LENGTH; unbalanced parentheses; an unterminated quote; empty parentheses; an
OR without a term on each side; a negated group (`-(snow OR day)`: X says negate each term instead); a query, or
a side of an OR, with no positive standalone term (only negated terms, or only is:/has:/lang:, which X calls
conjunction-required); `and`/`AND` used as a word (X calls it ambiguous: a space already means AND); an operator
X does not have (`filter:replies`), an is:/has: value X does not list, `is:nullcast` not negated, an operator
without its value.

What the sandbox cannot see it does not pretend to: is:, has: and lang: are accepted and ignored (it has no
retweets, media or languages), and the operators on places, annotations, lists, conversations, retweets and
quotes (place:, context:, list:, conversation_id:, retweets_of:, …) are accepted and match no tweet.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# X's limit for recent search on self-serve access (pay-per-use, basic); its OpenAPI description says only
# maxLength 4096, the enterprise figure, and points to the documentation for the limit that applies.
MAX_QUERY_LENGTH = 512
OPERATORS_PAGE = "https://docs.x.com/x-api/posts/search/integrate/operators"

# X's operators that take a value after the colon (docs.x.com, "Search operators"), aliases included.
_MATCHED_OPERATORS = frozenset({"from", "to", "url"})
_UNSEEN_OPERATORS = frozenset({
    "retweets_of", "in_reply_to_tweet_id", "in_reply_to_status_id", "retweets_of_tweet_id",
    "retweets_of_status_id", "quotes_of_tweet_id", "quotes_of_status_id", "context", "entity", "conversation_id",
    "list", "place", "place_country", "point_radius", "bounding_box", "geo_bounding_box",
})  # fmt: skip
_BRACKETED_OPERATORS = frozenset({"point_radius", "bounding_box", "geo_bounding_box"})
_IS_VALUES = frozenset({"retweet", "reply", "quote", "verified", "nullcast"})
_HAS_VALUES = frozenset({
    "hashtags", "cashtags", "links", "mentions", "media", "media_link", "images", "video_link", "videos", "geo",
})  # fmt: skip
_CONJUNCTION_REQUIRED = frozenset({"is", "has", "lang"})
_OPERATOR = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)
_WORD_END = re.compile(r'[\s()"]')


class QueryError(ValueError):
    """The query cannot be understood; the message says why and where."""

    def __init__(self, problem: str, position: int | None = None) -> None:
        super().__init__(problem if position is None else f"{problem} (at position {position})")
        self.problem = problem
        self.position = position


@dataclass(frozen=True)
class Candidate:
    """What a query looks at in a tweet."""

    text: str
    author_username: str
    in_reply_to_username: str | None


Matcher = Callable[[Candidate], bool]
# A node's verdict on a tweet: True, False, or None where the sandbox cannot tell (is:, has:, lang:); an AND or
# an OR leaves an unknown out, and a query whose verdict is unknown matches.
_Verdict = Callable[[Candidate], bool | None]


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "-" "OR" "term"
    text: str
    position: int  # 1-based, as in X's messages


def _tokens(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, char, i + 1))
            i += 1
        elif char == "-" and i + 1 < n and not query[i + 1].isspace():
            tokens.append(_Token("-", char, i + 1))
            i += 1
        elif char == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError("Missing closing quote", i + 1)
            tokens.append(_Token("term", query[i : end + 1], i + 1))
            i = end + 1
        else:
            found = _WORD_END.search(query, i)
            end = found.start() if found else n
            word = query[i:end]
            operator = _OPERATOR.fullmatch(word)
            if operator and end < n and query[end] == '"' and not operator[2]:  # url:"…", entity:"…", place:"…"
                close = query.find('"', end + 1)
                if close < 0:
                    raise QueryError("Missing closing quote", end + 1)
                end = close + 1
            elif operator and operator[1].lower() in _BRACKETED_OPERATORS and operator[2].startswith("["):
                close = query.find("]", i)
                if close < 0:
                    raise QueryError(f"Missing closing bracket of {operator[1]}:", i + 1)
                end = close + 1
            word = query[i:end]
            tokens.append(_Token("OR" if word == "OR" else "term", word, i + 1))
            i = end
    return tokens


@dataclass(frozen=True)
class _Node:
    verdict: _Verdict
    anchored: bool  # every way of matching it needs a positive standalone term (X: a query must have one)
    position: int
    loose_at: int = 0  # not anchored: where the part that matches without a positive standalone term starts

    def __post_init__(self) -> None:
        if not self.anchored and not self.loose_at:
            object.__setattr__(self, "loose_at", self.position)


def _phrase(text: str) -> _Verdict:
    pattern = re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)
    return lambda c: bool(pattern.search(c.text))


def _term(token: _Token) -> _Node:
    text, at = token.text, token.position
    if text.startswith('"'):
        phrase = text[1:-1].strip()
        if not phrase:
            raise QueryError("An empty quoted phrase", at)
        return _Node(_phrase(phrase), True, at)
    if text.lower() == "and":
        raise QueryError(
            'Ambiguous use of and as a keyword. Use a space to logically join two clauses, or "and" (quoted) to '
            "find occurrences of and in text",
            at,
        )
    operator = _OPERATOR.fullmatch(text)
    if operator:
        return _operator(operator[1].lower(), operator[2], at)
    lowered = text.lower()
    if text[0] in "@#$" and len(text) > 1:
        pattern = re.compile(rf"(?<![\w{re.escape(text[0])}]){re.escape(text)}(?!\w)", re.IGNORECASE)
    else:
        pattern = re.compile(rf"(?<![\w@])#?{re.escape(lowered)}(?!\w)", re.IGNORECASE)
    return _Node(lambda c: bool(pattern.search(c.text)), True, at)


def _operator(name: str, value: str, at: int) -> _Node:
    known = name in _MATCHED_OPERATORS | _UNSEEN_OPERATORS | _CONJUNCTION_REQUIRED
    if (
        not known
        or (name == "is" and value.lower() not in _IS_VALUES)
        or (name == "has" and value.lower() not in _HAS_VALUES)
    ):
        shown = f"{name}:{value}" if name in ("is", "has") else f"{name}:"
        raise QueryError(
            f"Reference to invalid operator '{shown}'; X's search operators are listed at {OPERATORS_PAGE}", at
        )
    if not value.strip('"'):
        raise QueryError(f"The operator {name}: needs a value right after the colon", at)
    if name in _CONJUNCTION_REQUIRED:
        return _Node(lambda c: None, False, at)
    if name in _UNSEEN_OPERATORS:
        return _Node(lambda c: False, True, at)
    wanted = value.strip('"').lstrip("@").lower() if name != "url" else value.strip('"').lower()
    if name == "from":
        return _Node(lambda c: c.author_username.lower() == wanted, True, at)
    if name == "to":
        return _Node(lambda c: (c.in_reply_to_username or "").lower() == wanted, True, at)
    return _Node(lambda c: wanted in c.text.lower(), True, at)  # url: the sandbox's links are in the text


def _all(nodes: list[_Node]) -> _Verdict:
    def verdict(c: Candidate) -> bool | None:
        seen = [node.verdict(c) for node in nodes]
        return False if False in seen else True if True in seen else None

    return verdict


def _any(nodes: list[_Node]) -> _Verdict:
    def verdict(c: Candidate) -> bool | None:
        seen = [node.verdict(c) for node in nodes]
        return True if True in seen else False if False in seen else None

    return verdict


def _negated(node: _Node) -> _Verdict:
    def verdict(c: Candidate) -> bool | None:
        seen = node.verdict(c)
        return None if seen is None else not seen

    return verdict


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def query(self) -> _Node:
        node = self.alternatives()
        extra = self.peek()
        if extra is not None:  # only an unmatched ")" stops alternatives() early
            raise QueryError("Unmatched closing parenthesis", extra.position)
        return node

    def alternatives(self) -> _Node:
        sides = [self.conjunction()]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            sides.append(self.conjunction(after_or=token))
        if len(sides) == 1:
            return sides[0]
        loose = next((side.loose_at for side in sides if not side.anchored), 0)
        return _Node(_any(sides), not loose, sides[0].position, loose)

    def conjunction(self, after_or: _Token | None = None) -> _Node:
        parts: list[_Node] = []
        while (token := self.peek()) is not None and token.kind not in ("OR", ")"):
            parts.append(self.unary())
        if not parts:
            if after_or is not None:
                raise QueryError("OR needs a term on each side", after_or.position)
            assert token is not None  # a query has a token, and "(" is followed by one (primary checks)
            if token.kind == "OR":
                raise QueryError("OR needs a term on each side", token.position)
            raise QueryError("Unmatched closing parenthesis", token.position)
        if len(parts) == 1:
            return parts[0]
        anchored = any(part.anchored for part in parts)
        return _Node(_all(parts), anchored, parts[0].position, 0 if anchored else parts[0].loose_at)

    def unary(self) -> _Node:
        token = self.peek()
        if token is not None and token.kind == "-":
            self.take()
            target = self.peek()
            if target is None or target.kind in ("OR", ")", "-"):
                raise QueryError("A dash must come right before the term it negates", token.position)
            if target.kind == "(":
                raise QueryError(
                    "A group in parentheses cannot be negated: negate each term instead "
                    "(skiing -snow -day, not skiing -(snow OR day))",
                    token.position,
                )
            if target.text.lower() == "is:nullcast":
                self.take()
                return _Node(lambda c: None, False, token.position)
            node = self.primary()
            return _Node(_negated(node), False, token.position)
        return self.primary()

    def primary(self) -> _Node:
        token = self.take()
        if token.kind == "(":
            closing = self.peek()
            if closing is None:
                raise QueryError("Missing closing parenthesis", token.position)
            if closing.kind == ")":
                raise QueryError("Empty parentheses", token.position)
            node = self.alternatives()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise QueryError("Missing closing parenthesis", token.position)
            self.take()
            return _Node(node.verdict, node.anchored, token.position, node.loose_at)
        if token.text.lower() == "is:nullcast":
            raise QueryError("is:nullcast must be negated (-is:nullcast)", token.position)
        return _term(token)


def _conjunction_required(token: _Token) -> bool:
    operator = _OPERATOR.fullmatch(token.text)
    return operator is not None and operator[1].lower() in _CONJUNCTION_REQUIRED


def compile_query(query: str) -> Matcher:
    """A function telling whether a tweet matches `query`; QueryError when X would refuse the query."""
    if not query.strip():
        raise QueryError("The query is empty")
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryError(f"The query is {len(query)} characters long; recent search takes at most {MAX_QUERY_LENGTH}")
    tokens = _tokens(query)
    node = _Parser(tokens).query()
    if not node.anchored:
        positive = any(
            token.kind == "term" and (i == 0 or tokens[i - 1].kind != "-") and not _conjunction_required(token)
            for i, token in enumerate(tokens)
        )
        if positive:
            raise QueryError(
                "Each side of an OR needs a positive keyword or standalone operator: negated terms and "
                "is:/has:/lang: cannot be used alone",
                node.loose_at,
            )
        if not any(token.kind == "-" for token in tokens):
            raise QueryError("is/has/lang cannot be used as a standalone operator", 1)
        raise QueryError(
            "The query must contain at least one positive keyword or standalone operator (negated terms and "
            "is:/has:/lang: cannot be used alone)",
            1,
        )

    def matches(candidate: Candidate) -> bool:
        return node.verdict(candidate) is not False

    return matches
