"""Characters an FAQ entry may not contain, and how to show stored text so that none of them acts on a terminal.

An FAQ answer is posted to X as written, and every field is shown to agents, editors and terminals. Refused in
every field:

- control characters (Unicode category Cc: NUL, ESC, DEL, the C1 controls, …), except a newline or a tab in a
  field that may have several lines (the answer);
- format characters (category Cf): the bidi controls U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, zero-width
  spaces, the soft hyphen, the byte-order mark, tag characters, …;
- the line and paragraph separators U+2028/U+2029, and lone surrogates.

Allowed, because that is how emoji are written: a zero-width joiner between two pictographs (👩‍💻), variation
selectors (category Mn, not Cf), and the tag characters of the three subdivision flags that have an emoji
(England, Scotland, Wales).
"""

from __future__ import annotations

import json
import unicodedata

import regex

_FORBIDDEN = regex.compile(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]")
_LINE_BREAKS = frozenset("\n\t")
_EMOJI_ZWJ = regex.compile(
    r"(?<=\p{Extended_Pictographic}\ufe0f?[\U0001F3FB-\U0001F3FF]?)\u200d(?=\p{Extended_Pictographic})"
)
_SUBDIVISION_FLAGS = frozenset("".join(chr(0xE0000 + ord(c)) for c in code) for code in ("gbeng", "gbsct", "gbwls"))
_FLAG_TAGS = regex.compile(r"(?<=\U0001F3F4)([\U000E0020-\U000E007E]+)\U000E007F")
_SHOWN = 3  # characters named in one problem


def emoji_parts(text: str) -> set[int]:
    """Positions of invisible characters that are how emoji are written: a zero-width joiner between two
    pictographs, and the tag characters of the subdivision flags that have an emoji. The one list of these
    exceptions, for FAQ fields here and for customer text and replies in bot/hidden_text.py."""
    allowed: set[int] = {match.start() for match in _EMOJI_ZWJ.finditer(text)}
    for match in _FLAG_TAGS.finditer(text):
        if match.group(1) in _SUBDIVISION_FLAGS:
            allowed.update(range(match.start(), match.end()))
    return allowed


def forbidden_positions(text: str, *, multiline: bool = False) -> list[int]:
    """Where `text` has a character an FAQ field may not contain (see the module's docstring)."""
    allowed = emoji_parts(text)
    return [
        match.start()
        for match in _FORBIDDEN.finditer(text)
        if match.start() not in allowed and not (multiline and match.group() in _LINE_BREAKS)
    ]


def describe(char: str) -> str:
    """A character as an editor can look it up: `U+202E (RIGHT-TO-LEFT OVERRIDE)`, `U+001B (a control character)`."""
    name = unicodedata.name(char, "") or ("a control character" if unicodedata.category(char) == "Cc" else "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def field_problem(field: str, text: str, *, multiline: bool = False) -> str | None:
    """The one problem of a field with forbidden characters, naming the field and the characters; None if clean."""
    found = list(dict.fromkeys(text[position] for position in forbidden_positions(text, multiline=multiline)))
    if not found:
        return None
    named = ", ".join(describe(char) for char in found[:_SHOWN])
    more = f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
    allowed = " (line breaks and tabs are fine)" if multiline else ""
    return f"{field} contains {named}{more}: control characters and invisible formatting are not allowed{allowed}"


def shown(text: str, *, multiline: bool = False) -> str:
    """The text for a terminal: every forbidden character replaced by a visible marker such as ⟦U+202E⟧."""
    positions = set(forbidden_positions(text, multiline=multiline))
    if not positions:
        return text
    return "".join(f"⟦U+{ord(char):04X}⟧" if n in positions else char for n, char in enumerate(text))


def json_text(data: object, *, indent: int | None = None) -> str:
    """JSON with non-ASCII text kept readable, but every forbidden character written as a \\u escape.

    json.dumps escapes the C0 controls itself; the rest (DEL, C1, format characters…) can only occur inside
    strings, so escaping them there keeps the JSON valid and equal in meaning."""
    out = json.dumps(data, ensure_ascii=False, indent=indent)
    positions = set(forbidden_positions(out, multiline=True))
    if not positions:
        return out
    return "".join(json.dumps(char)[1:-1] if n in positions else char for n, char in enumerate(out))
