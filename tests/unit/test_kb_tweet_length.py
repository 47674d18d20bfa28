"""weighted_length counts as X does: NFC first, URLs 23, light ranges 1, everything else 2, emoji sequences 2."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from knowledge_base.tweet_length import find_urls, fits_in_tweet, weighted_length

CASES = [
    ("", 0),
    ("hello", 5),
    ("café", 4),  # NFC é is one code point
    ("cafe\u0301", 4),  # decomposed é is composed first
    ("我爱你", 6),  # CJK weighs 2
    ("こんにちは", 10),
    ("Привет", 6),  # Cyrillic is in U+0000–10FF
    ("שלום", 4),  # Hebrew too
    ("\u2014 \u201c\u201d \u2026", 7),  # em dash, curly quotes weigh 1; the ellipsis U+2026 weighs 2
    ("\u2032\u2037", 2),  # primes are in the light range
    ("€", 2),  # U+20AC is not
    ("😀", 2),
    ("👍🏽", 2),  # skin tone
    ("👨\u200d👩\u200d👧\u200d👦", 2),  # ZWJ family
    ("🇬🇧🇩🇪", 4),  # two flags
    ("1\ufe0f\u20e3", 2),  # keycap
    ("🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", 2),  # England: a tag sequence
    ("❤\ufe0f", 2),
    ("©", 1),  # text presentation: a Latin-1 character
    ("©\ufe0f", 2),  # emoji presentation
    ("https://kestrel.example/help/run-line-test", 23),
    ("http://a.co", 23),  # short URLs count 23 too
    ("see https://kestrel.example/x.", 4 + 23 + 1),  # trailing full stop is not part of the URL
    ("(https://kestrel.example/x)", 1 + 23 + 1),
    ("www.kestrel.co.uk/help", 23),
    ("kestrel.com and kestrel.co.uk/a?b=c", 23 + 5 + 23),
    ("mail help@kestrel.com", 21),  # an e-mail address is not a URL
    ("e.g. this", 9),
    ("a" * 280, 280),
    ("我" * 140, 280),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_table(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


def test_the_limit_is_280_weighted() -> None:
    assert fits_in_tweet("a" * 280) and not fits_in_tweet("a" * 281)
    assert fits_in_tweet("我" * 140) and not fits_in_tweet("我" * 140 + "a")
    assert fits_in_tweet("😀" * 140) and not fits_in_tweet("😀" * 141)


def test_find_urls_strips_trailing_punctuation() -> None:
    assert find_urls("go to https://kestrel.example/a, or www.kestrel.com!") == [
        "https://kestrel.example/a",
        "www.kestrel.com",
    ]


light_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E).filter(lambda c: c not in "./:"))


@given(light_text)
def test_ascii_without_urls_counts_one_per_character(text: str) -> None:
    assert weighted_length(text) == len(text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_normalization_form_does_not_matter(text: str) -> None:
    assert weighted_length(unicodedata.normalize("NFD", text)) == weighted_length(text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_never_more_than_two_per_code_point(text: str) -> None:
    if not find_urls(text):
        assert weighted_length(text) <= 2 * len(unicodedata.normalize("NFC", text))


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_", min_size=0, max_size=300))
def test_any_url_counts_23(path: str) -> None:
    assert weighted_length(f"https://kestrel.example/{path}") == 23
    assert weighted_length(f"x https://kestrel.example/{path} y") == 23 + 4


@given(st.lists(st.sampled_from(["a", "我", "😀", "👍🏽", "🇬🇧", " ", "é"]), max_size=50))
def test_adding_a_separated_piece_adds_its_weight(pieces: list[str]) -> None:
    text = " ".join(pieces)
    assert weighted_length(text) == sum(weighted_length(p) for p in pieces) + max(len(pieces) - 1, 0)
