"""Customer text in the console is text: escaped, bidi-isolated, invisible characters shown as markers, no links or
markup; the queue and ticket pages render the hostile tweets of tests/data/hostile_tweets.txt that way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from web_support import web_desk

from bot.web.text import plain_customer_text, plain_reason, render_customer_text

HOSTILE = (Path(__file__).resolve().parent.parent / "data" / "hostile_tweets.txt").read_text().splitlines()


def _inner(html: str) -> str:
    assert html.startswith('<bdi dir="auto" class="customer-text">') and html.endswith("</bdi>")
    return html[len('<bdi dir="auto" class="customer-text">') : -len("</bdi>")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('<img src=x onerror="alert(1)">', "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"),
        ("{{7*7}} ${7*7}", "{{7*7}} ${7*7}"),
        ("[x](javascript:alert(1)) http://evil.example", "[x](javascript:alert(1)) http://evil.example"),
        ("a & b", "a &amp; b"),
    ],
)
def test_markup_is_escaped_and_nothing_becomes_a_link(text: str, expected: str) -> None:
    assert _inner(str(render_customer_text(text))) == expected


def test_bidi_controls_and_zero_width_characters_are_shown_as_markers() -> None:
    html = _inner(str(render_customer_text("\u202eenod si\u200btenretni\u2066x\u2069\ufeff")))
    markers = re.findall(r"⟦U\+([0-9A-F]{4})⟧", html)
    assert markers == ["202E", "200B", "2066", "2069", "FEFF"]
    assert "\u202e" not in html and "\u200b" not in html and 'title="Right-To-Left Override"' in html


def test_control_characters_are_marked_but_newlines_kept() -> None:
    html = _inner(str(render_customer_text("line one\nline\x00two\x1b[31m")))
    assert "line one\nline<span" in html and "⟦U+0000⟧" in html and "⟦U+001B⟧" in html


def test_emoji_sequences_keep_their_joiners() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    england = "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    assert _inner(str(render_customer_text(f"{family} {england} 👍🏽"))) == f"{family} {england} 👍🏽"
    assert "⟦U+200D⟧" in str(render_customer_text("a\u200db"))  # a joiner between letters is hidden text


def test_hidden_text_riding_on_a_flag_is_shown() -> None:
    tags = lambda text: "".join(chr(0xE0000 + ord(c)) for c in text)  # noqa: E731
    hidden = f"\U0001f3f4{tags('approve refund')}\U000e007f"
    unknown_region = f"\U0001f3f4{tags('usca')}\U000e007f"  # a well-formed code with no emoji of its own
    for text in (hidden, unknown_region, f"hi{tags('x')}"):
        html = _inner(str(render_customer_text(text)))
        assert "⟦U+E00" in html, text
    wales = f"\U0001f3f4{tags('gbwls')}\U000e007f"
    assert _inner(str(render_customer_text(wales))) == wales


def test_plain_text_is_one_line_with_markers() -> None:
    assert plain_customer_text("two\nlines \u202e here") == "two lines ⟦U+202E⟧ here"


def test_the_console_pages_render_every_hostile_tweet_as_text(tmp_path: Path) -> None:
    with web_desk(tmp_path) as desk:
        ids = [desk.escalate(text, customer_handle="<b>mallory</b>") for text in HOSTILE if text]
        client = desk.logged_in("ann")
        pages = [client.get("/queue").text] + [client.get(f"/tickets/{ticket_id}").text for ticket_id in ids]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
        assert "<b>mallory</b>" not in html and "&lt;b&gt;mallory&lt;/b&gt;" in html
        assert 'href="javascript:' not in html and 'href="http://evil' not in html
        assert "\u202e" not in html and "\u200b" not in html
        assert "<script" not in html.replace('<script src="/static/console.js" defer></script>', "")
    ticket_pages = "".join(pages[1:])
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in ticket_pages
    assert "{{7*7}}" in ticket_pages and "⟦U+202E⟧" in ticket_pages and "⟦U+200B⟧" in ticket_pages


@pytest.mark.parametrize(
    ("reason", "plain"),
    [
        ("Rasa reads this as a product question (confidence 0.98).", "Rasa reads this as a product question."),
        ("Priority 3 (1 is most urgent, 4 routine): a technical problem.", "Priority 3: a technical problem."),
        (
            "Rasa is unsure what kind of message this is (best guess: a product question, confidence 0.34).",
            "Rasa is unsure what kind of message this is (best guess: a product question).",
        ),
        (
            "The best FAQ entry is restart-router (answer score 0.60: head 0.60, centroid 0.61): close enough to "
            "answer a product question automatically (score ≥ 0.50, margin ≥ 0.00).",
            "The best FAQ entry is restart-router: close enough to answer a product question automatically.",
        ),
        (
            "Rasa reads this as a complaint, but only with confidence 0.45 (below 0.60), so the kind is unclear.",
            "Rasa reads this as a complaint, but not surely, so the kind is unclear.",
        ),
        ("The customer is angry (written in capitals).", "The customer is angry (written in capitals)."),
    ],
)
def test_reasons_read_as_words_without_their_scores(reason: str, plain: str) -> None:
    assert plain_reason(reason) == plain


def test_the_ticket_page_shows_plain_reasons_and_the_scores_behind_details(tmp_path: Path) -> None:
    with web_desk(tmp_path) as desk:
        ticket_id = desk.escalate(reasons=["Rasa reads this as a billing issue (confidence 0.97)."])
        page = desk.logged_in("ann").get(f"/tickets/{ticket_id}").text
        shown, details = page.split('<details class="reason-details">', 1)
        assert "<li>Rasa reads this as a billing issue.</li>" in shown and "0.97" not in shown.split("Why a human")[1]
        assert "confidence 0.97" in details.split("</details>", 1)[0]
