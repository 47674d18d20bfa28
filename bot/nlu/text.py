"""Prepares untrusted customer text for the NLU server: one safe, normalised string or a clear error.

Pure functions, no I/O. The original text is kept by the caller; this is only what the classifier sees.
"""

from __future__ import annotations

import unicodedata

# Bidi embeddings, overrides and isolates, and the invisible marks that change nothing a classifier needs.
# The zero-width joiner (U+200D) stays: it binds emoji sequences.
_INVISIBLE = dict.fromkeys(
    [0x200B, 0x200C, 0x200E, 0x200F, 0x2060, 0xFEFF, 0x061C]
    + list(range(0x202A, 0x202F))
    + list(range(0x2066, 0x206A)),
    None,
)


class InvalidText(ValueError):
    """The text cannot be classified (it is empty once cleaned)."""


def clean_for_nlu(text: str, max_chars: int) -> tuple[str, bool]:
    """Return (cleaned text, whether it was cut to max_chars).

    Lone surrogates become U+FFFD, control characters other than newline and tab become spaces,
    bidi controls and zero-width marks are removed, the text is NFC-normalised and cut at max_chars
    (never inside a surrogate pair or a combining sequence), and runs of whitespace become one space.
    """
    if not isinstance(text, str):
        raise InvalidText(f"text must be a string, not {type(text).__name__}")
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_INVISIBLE)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = " ".join(text.split())
    if not text:
        raise InvalidText("text is empty (nothing but whitespace or invisible characters)")
    truncated = len(text) > max_chars
    if truncated:
        cut = max_chars
        while cut > 0 and unicodedata.combining(text[cut]):
            cut -= 1
        text = text[:cut].rstrip() or text[:max_chars]
    return text, truncated
