"""Unicode that can hide, reorder or fake text: found once, used by the console's rendering and the tone check.

- `invisible_characters` finds zero-width characters, bidi controls, other format and control characters and the
  fillers that render as nothing. Two things that look invisible are how emoji are written and stay allowed
  (knowledge_base.characters.emoji_parts, shared with the FAQ fields' check): a zero-width joiner between two
  pictographs (👩‍💻), and the tag characters of the three subdivision flags that have an emoji (England, Scotland,
  Wales). Any other run of tag characters after 🏴 is hidden text.
- `skeleton` is what a text looks like, for comparisons a look-alike must not slip past (a signature `^ВС` in
  Cyrillic letters is `^BC`): every invisible character dropped, then NFKC, then every character that Unicode's
  confusables list (UTS #39, from the package confusable-homoglyphs) gives as a look-alike of an ASCII letter,
  digit or `^` replaced by it.
"""

from __future__ import annotations

import json
import string
import unicodedata
from functools import lru_cache
from importlib import resources

import regex

from knowledge_base.characters import emoji_parts

# Format (Cf), control (Cc, except newline and tab), line/paragraph separators, and the characters that render
# as nothing: Hangul fillers and the Braille blank.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Zl}\p{Zp}\x00-\x08\x0b-\x1f\x7f-\x9f\u115f\u1160\u3164\uffa0\u2800]")
_ASCII_TARGETS = set(string.ascii_letters + string.digits + "^")


def invisible_characters(text: str) -> list[tuple[int, str]]:
    """Positions and characters that could hide or reorder text, after the emoji exceptions."""
    allowed = emoji_parts(text)
    return [(m.start(), m.group()) for m in _INVISIBLE.finditer(text) if m.start() not in allowed]


def without_invisible(text: str) -> str:
    """The text with every character `invisible_characters` finds removed."""
    drop = {position for position, _ in invisible_characters(text)}
    return "".join(char for position, char in enumerate(text) if position not in drop)


@lru_cache(maxsize=1)
def _look_alikes() -> dict[str, str]:
    """Every character Unicode lists as confusable with an ASCII letter, digit or ^, mapped to that character."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    folds: dict[str, str] = {}
    for target, homoglyphs in data.items():
        if target not in _ASCII_TARGETS:
            continue
        for homoglyph in homoglyphs:
            char = homoglyph.get("c", "")
            if len(char) == 1 and not char.isascii():
                folds.setdefault(char, target)
    return folds


def skeleton(text: str) -> str:
    """What the text looks like: invisible characters dropped, NFKC, look-alikes of ASCII folded to ASCII."""
    text = unicodedata.normalize("NFKC", without_invisible(text))
    folds = _look_alikes()
    return "".join(folds.get(char, char) for char in text)
