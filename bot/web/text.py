"""Customer text as HTML: escaped, isolated for bidi in `<bdi dir="auto">`, and every invisible character that
could hide or reorder text (zero-width characters, bidi controls, other format and control characters) shown as
a visible marker such as ⟦U+202E⟧. Never turned into links, Markdown or markup.

Joiners inside emoji sequences (👩‍💻) and the tag characters of the subdivision flags that have an emoji are
left alone: they are how those emoji are written (bot/hidden_text.py says which characters are marked).
"""

from __future__ import annotations

import re
import unicodedata

from markupsafe import Markup, escape

from bot.hidden_text import invisible_characters

__all__ = ["invisible_characters", "marker", "plain_customer_text", "render_customer_text"]


def _name(char: str) -> str:
    return unicodedata.name(char, "control character").title()


def marker(char: str) -> str:
    return f"⟦U+{ord(char):04X}⟧"


def render_customer_text(text: str | None) -> Markup:
    """Customer text as safe HTML: `<bdi dir="auto" class="customer-text">…</bdi>` with visible markers."""
    text = text or ""
    parts: list[str] = []
    last = 0
    for position, char in invisible_characters(text):
        parts.append(str(escape(text[last:position])))
        parts.append(f'<span class="invisible-char" title="{escape(_name(char))}">{escape(marker(char))}</span>')
        last = position + 1
    parts.append(str(escape(text[last:])))
    return Markup('<bdi dir="auto" class="customer-text">' + "".join(parts) + "</bdi>")


def plain_customer_text(text: str | None) -> str:
    """The same text for places that take plain text (a title attribute, a log line): markers, one line."""
    text = text or ""
    out = []
    last = 0
    for position, char in invisible_characters(text):
        out.append(text[last:position])
        out.append(marker(char))
        last = position + 1
    out.append(text[last:])
    return " ".join("".join(out).split())


_CONFIDENCE_IN_GUESS = re.compile(r",\s*confidence\s+[\d.]+")
_ONLY_WITH = re.compile(r"but only with confidence\s+[\d.]+")
_NUMBERS_IN_PARENS = re.compile(r"\s*\([^()]*\d[^()]*\)")


def plain_reason(reason: str) -> str:
    """A triage reason in words, without its scores: "Rasa reads this as a billing issue (confidence 0.98)." is
    "Rasa reads this as a billing issue." The full text stays behind the ticket's "details" toggle."""
    text = _CONFIDENCE_IN_GUESS.sub("", reason)
    text = _ONLY_WITH.sub("but not surely", text)
    text = _NUMBERS_IN_PARENS.sub("", text)
    text = re.sub(r"\s+([.,:;])", r"\1", text)
    return " ".join(text.split())
