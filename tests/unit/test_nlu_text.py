"""Cleaning untrusted text before the classifier sees it."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.nlu.text import InvalidText, clean_for_nlu


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r", "\u200b\u202e\u2066", "\x00\x00"])
def test_empty_once_cleaned_is_refused(text: str) -> None:
    with pytest.raises(InvalidText, match="empty"):
        clean_for_nlu(text, 100)


def test_controls_bidi_and_zero_width_removed_zwj_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    cleaned, truncated = clean_for_nlu(f"my\x00 wifi\u202e is\u200b down {family}\r\n", 100)
    assert cleaned == f"my wifi is down {family}"
    assert not truncated


def test_lone_surrogates_become_replacement_characters() -> None:
    cleaned, _ = clean_for_nlu("bill \ud800 wrong", 100)
    assert "\ud800" not in cleaned
    assert "\ufffd" in cleaned
    cleaned.encode("utf-8")  # must be encodable


def test_long_text_is_cut_not_refused() -> None:
    cleaned, truncated = clean_for_nlu("internet down " * 1000, 2000)
    assert truncated
    assert len(cleaned) <= 2000


def test_cut_never_separates_a_combining_mark() -> None:
    text = "a" * 9 + "q\u0301" + "b" * 10  # q with an acute accent has no precomposed form
    cleaned, truncated = clean_for_nlu(text, 10)
    assert truncated
    assert cleaned == "a" * 9


def test_nfc_normalisation() -> None:
    cleaned, _ = clean_for_nlu("cafe\u0301", 100)
    assert cleaned == "caf\u00e9"


@given(st.text(max_size=400), st.integers(min_value=1, max_value=300))
def test_any_text_gives_clean_bounded_utf8_or_a_clear_error(text: str, max_chars: int) -> None:
    try:
        cleaned, _ = clean_for_nlu(text, max_chars)
    except InvalidText:
        return
    assert cleaned and cleaned == cleaned.strip()
    assert len(cleaned) <= max_chars
    cleaned.encode("utf-8")
    assert not any(unicodedata.category(ch) == "Cc" for ch in cleaned)
    assert "\u202e" not in cleaned
