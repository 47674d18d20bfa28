"""Customer text as HTML: escaped, isolated for bidi in `<bdi dir="auto">`, and every invisible character that
could hide or reorder text (zero-width characters, bidi controls, other format and control characters) shown as
a visible marker such as ⟦U+202E⟧. Never turned into links, Markdown or markup.

Joiners inside emoji sequences (👩‍💻) and tag characters of subdivision flags are left alone: they are how
those emoji are written, not a way to hide anything.
"""

from __future__ import annotations

import unicodedata

import regex
from markupsafe import Markup, escape

# Format (Cf), control (Cc, except newline and tab), line/paragraph separators, and the variation selectors'
# lookalike fillers; Hangul fillers and the Braille blank render as nothing too.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Zl}\p{Zp}\x00-\x08\x0b-\x1f\x7f-\x9f\u115f\u1160\u3164\uffa0\u2800]")
_EMOJI_ZWJ = regex.compile(
    r"(?<=\p{Extended_Pictographic}\ufe0f?[\U0001F3FB-\U0001F3FF]?)\u200d(?=\p{Extended_Pictographic})"
)
_FLAG_TAGS = regex.compile(r"(?<=\U0001F3F4)[\U000E0020-\U000E007E]+\U000E007F")


def _name(char: str) -> str:
    return unicodedata.name(char, "control character").title()


def invisible_characters(text: str) -> list[tuple[int, str]]:
    """Positions and characters that render_customer_text marks (after the emoji exceptions)."""
    allowed: set[int] = set()
    for match in _EMOJI_ZWJ.finditer(text):
        allowed.add(match.start())
    for match in _FLAG_TAGS.finditer(text):
        allowed.update(range(match.start(), match.end()))
    return [(m.start(), m.group()) for m in _INVISIBLE.finditer(text) if m.start() not in allowed]


def marker(char: str) -> str:
    return f"⟦U+{ord(char):04X}⟧"


def render_customer_text(text: str | None) -> Markup:
    """Customer text as safe HTML: `<bdi dir="auto" class="customer-text">…</bdi>` with visible markers."""
    text = text or ""
    parts: list[str] = []
    last = 0
    for position, char in invisible_characters(text):
        parts.append(str(escape(text[last:position])))
        parts.append(
            f'<span class="invisible-char" title="{escape(_name(char))}">{escape(marker(char))}</span>'
        )
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
