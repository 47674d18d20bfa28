"""The sandbox X's recent-search query held to X's documented rules (docs.x.com, "Build a query"): grouping, OR
binding looser than AND, and the queries X refuses, each with a message naming the problem and where; and every
query carebot itself sends (the mention backfill, the documented example setting) is one X takes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.channel.intake import mention_query
from bot.sandbox.search import MAX_QUERY_LENGTH, Candidate, QueryError, compile_query
from bot.settings import _JSON_EXAMPLES


def matches(query: str, text: str, author: str = "ann", to: str | None = None) -> bool:
    return compile_query(query)(Candidate(text, author, to))


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # X's order of operations: AND first, then OR
        ("apple OR iphone ipad", "apple pie", True),
        ("apple OR iphone ipad", "new iphone", False),
        ("apple OR iphone ipad", "iphone and ipad", True),
        ("(apple OR iphone) ipad", "apple pie", False),
        ("(apple OR iphone) ipad", "an iphone or an ipad", True),
        ("iphone (ipad OR android)", "iphone vs android", True),
        ("iphone (ipad OR android)", "iphone only", False),
        ("(outage OR down) kestrel", "Kestrel is DOWN again", True),
        ("(outage OR down) kestrel", "kestrel works fine", False),
        ("((outage OR down) kestrel) OR #kestreldown", "#KestrelDown", True),
        ("(grumpy cat) OR (#meme has:images)", "a #meme", True),
        ("(grumpy cat) OR (#meme has:images)", "a grumpy dog", False),
        # negation, quoted phrases, operators inside groups
        ("kestrel -snow -day", "kestrel snow", False),
        ("kestrel -snow -day", "kestrel broadband", True),
        ('(kestrel OR "no internet") -"all fine"', "still no internet here", True),
        ('(kestrel OR "no internet") -"all fine"', "no internet, all fine now", False),
        ("(from:ann OR from:bob) hub", "my hub", True),
        ("(from:carl OR from:bob) hub", "my hub", False),
        ("$twtr OR @KestrelCare -$fb", "hi @kestrelcare", True),
        ("$twtr OR @KestrelCare -$fb", "$TWTR and $FB", True),  # $twtr OR (@KestrelCare -$fb)
        ("$twtr OR @KestrelCare -$fb", "@KestrelCare about $FB", False),
        # conjunction-required operators: accepted, ignored (the sandbox has no retweets, media or languages)
        ('"kestrel hub" has:mentions (has:media OR has:links) -is:retweet lang:en', "my kestrel hub died", True),
        ("-is:nullcast kestrel", "kestrel", True),
        # operators on data the sandbox has not: accepted, match no tweet
        ("place_country:GB OR kestrel", "kestrel", True),
        ("place_country:GB", "kestrel", False),
        ('entity:"Michael Jordan" kestrel', "kestrel", False),
        ("point_radius:[2.355128 48.861118 16km] OR kestrel", "kestrel", True),
        ('url:"kestrel.example" hub', "see https://kestrel.example/help for the hub", True),
    ],
)
def test_grouping_and_precedence(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "problem", "position"),
    [
        ("(outage OR down", "Missing closing parenthesis", 1),
        ("kestrel ((outage OR down) hub", "Missing closing parenthesis", 9),
        ("outage OR down)", "Unmatched closing parenthesis", 15),
        (")kestrel", "Unmatched closing parenthesis", 1),
        ('"no internet', "Missing closing quote", 1),
        ('kestrel url:"https://kestrel.example', "Missing closing quote", 13),
        ("kestrel ()", "Empty parentheses", 9),
        ("kestrel ( )", "Empty parentheses", 9),
        ("kestrel OR", "OR needs a term on each side", 9),
        ("OR kestrel", "OR needs a term on each side", 1),
        ("kestrel OR OR outage", "OR needs a term on each side", 9),
        ("(kestrel OR) outage", "OR needs a term on each side", 10),
        ("skiing -(snow OR day OR noschool)", "A group in parentheses cannot be negated", 8),
        ("-kestrel -outage", "The query must contain at least one positive keyword", 1),
        ('-"no internet"', "The query must contain at least one positive keyword", 1),
        ("-kestrel is:reply", "The query must contain at least one positive keyword", 1),
        ("has:media", "is/has/lang cannot be used as a standalone operator", 1),
        ("has:links OR is:retweet", "is/has/lang cannot be used as a standalone operator", 1),
        ("kestrel OR -outage", "Each side of an OR needs a positive keyword", 12),
        ("#kestrel OR has:media", "Each side of an OR needs a positive keyword", 13),
        ("(kestrel OR -outage) OR hub", "Each side of an OR needs a positive keyword", 13),
        ("kestrel AND outage", "Ambiguous use of and as a keyword", 9),
        ("kestrel and outage", "Ambiguous use of and as a keyword", 9),
        ("from:KestrelCare filter:replies", "Reference to invalid operator 'filter:'", 18),
        ("kestrel has:polls", "Reference to invalid operator 'has:polls'", 9),
        ("kestrel is:answered", "Reference to invalid operator 'is:answered'", 9),
        ("kestrel is:nullcast", "is:nullcast must be negated", 9),
        ("from: kestrel", "The operator from: needs a value", 1),
        ("kestrel --outage", "A dash must come right before the term it negates", 9),
        ("kestrel point_radius:[2.35 48.86 16km", "Missing closing bracket of point_radius:", 9),
        ('kestrel ""', "An empty quoted phrase", 9),
    ],
)
def test_queries_x_refuses_name_the_problem_and_where(query: str, problem: str, position: int) -> None:
    with pytest.raises(QueryError) as refused:
        compile_query(query)
    assert refused.value.problem.startswith(problem)
    assert refused.value.position == position
    assert str(refused.value).endswith(f"(at position {position})")


@pytest.mark.parametrize("query", ["", "   ", "x" * (MAX_QUERY_LENGTH + 1)])
def test_empty_and_overlong_queries_are_refused(query: str) -> None:
    with pytest.raises(QueryError):
        compile_query(query)


def test_a_query_of_exactly_the_limit_is_taken() -> None:
    compile_query("k" * MAX_QUERY_LENGTH)
    words = " ".join(["kestrel"] * 64)  # 511 characters
    compile_query(words + "s")


@pytest.mark.parametrize(
    "query",
    [  # X's own examples (docs.x.com, "Build a query" and "Search operators")
        '"X data" has:mentions (has:media OR has:links)',
        "snow day #NoSchool",
        "grumpy OR cat OR #meme",
        "cat #meme -grumpy",
        "(happy OR happiness) place_country:GB -birthday -is:retweet",
        "(happy OR happiness OR excited OR elated) lang:en -birthday -is:retweet -holidays",
        "has:geo (from:NWSNHC OR from:NHC_Atlantic OR from:NWSHouston) -is:retweet",
        "#nowplaying (horrible OR worst OR sucks) (place_country:US OR place_country:MX) -happy -exciting",
        "context:65.852262932607926273 -context:66.852262932607926273 -is:retweet has:images lang:ja",
        'pepsi OR cola OR "coca cola"',
        '("X API" OR #v2) -"recent search"',
        "from:XDevelopers OR from:API -from:X",
        "conversation_id:1334987486343299072 (from:XDevelopers OR from:api)",
        'place:"new york city" OR place:seattle OR place:fd70c22040963ac7',
        "bounding_box:[-105.301758 39.964069 -105.178505 40.09455]",
        '"mobile games" -is:nullcast',
    ],
)
def test_xs_documented_examples_are_taken(query: str) -> None:
    compile_query(query)


# X's usernames: 1 to 15 letters, digits and underscores
usernames = st.from_regex(r"[A-Za-z0-9_]{1,15}", fullmatch=True)


@given(usernames)
def test_the_mention_backfill_query_is_valid_and_finds_the_mention(username: str) -> None:
    query = mention_query(username)
    matcher = compile_query(query)
    assert matcher(Candidate(f"hey @{username.upper()} my hub is down", "ann", None))
    assert not matcher(Candidate(f"mail bob@{username}.example", "ann", None))


def test_the_documented_search_queries_setting_is_valid() -> None:
    for query in json.loads(_JSON_EXAMPLES["x_search_queries"]):
        compile_query(query)
