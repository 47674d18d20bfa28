"""How long a text is as X counts it (twitter-text v3 weighting), so an answer can be checked against 280.

Rules: the text is normalised to NFC first; every URL counts 23; code points in U+0000–10FF, U+2000–200D,
U+2010–201F and U+2032–2037 weigh 1, every other code point weighs 2; an emoji sequence (ZWJ families,
flags, skin tones, keycaps, tag sequences) weighs 2 in total.

URLs are recognised with a scheme (http://, https://), with a leading `www.`, or as a bare domain with
one of the common top-level domains in COMMON_TLDS. twitter-text knows every TLD; this is the subset a
care account's answers use.
"""

from __future__ import annotations

import unicodedata

import regex

MAX_WEIGHTED_LENGTH = 280
URL_LENGTH = 23

_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
COMMON_TLDS = ("com", "net", "org", "info", "io", "co", "uk", "de", "eu", "fr", "ie", "app", "dev", "me", "ly")

_TRAILING_PUNCTUATION = ".,:;!?'\")]}"
_URL = regex.compile(
    r"""
    (?<![\w@.])                                  # not inside a word, an e-mail address or a domain
    (?:
        https?://[^\s<>"]+                       # with a scheme: up to the next space
      | www\.[^\s<>"]+                           # www.example…
      | (?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+   # bare domain labels …
        (?:"""
    + "|".join(COMMON_TLDS)
    + r""")                                      # … ending in a common TLD
        (?![\w-])(?:[/?#][^\s<>"]*)?
    )
    """,
    regex.IGNORECASE | regex.VERBOSE,
)
_GRAPHEME = regex.compile(r"\X")
_EMOJI_SEQUENCE = regex.compile(
    r"""
    \p{Emoji_Presentation}                       # shown as emoji by default: 😀, 👍, 🏴…
  | \p{Extended_Pictographic}\N{VARIATION SELECTOR-16}   # text symbols asked to be emoji: ❤️, ©️
  | \p{Regional_Indicator}{2}                    # flags
  | \N{COMBINING ENCLOSING KEYCAP}               # keycaps: 1️⃣, #️⃣
  | \p{Emoji_Modifier}                           # skin tones
    """,
    regex.VERBOSE,
)


def char_weight(char: str) -> int:
    """The weight of one code point: 1 for the light ranges, 2 otherwise."""
    code = ord(char)
    return 1 if any(low <= code <= high for low, high in _LIGHT_RANGES) else 2


def _text_weight(text: str) -> int:
    total = 0
    for grapheme in _GRAPHEME.findall(text):
        if _EMOJI_SEQUENCE.search(grapheme):
            total += 2
        else:
            total += sum(char_weight(char) for char in grapheme)
    return total


def find_urls(text: str) -> list[str]:
    """The URLs in a text as X would link them (trailing punctuation excluded)."""
    return [match.rstrip(_TRAILING_PUNCTUATION) for match in _URL.findall(unicodedata.normalize("NFC", text))]


def weighted_length(text: str) -> int:
    """The length of `text` as X counts it against the 280 limit."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING_PUNCTUATION)
        total += _text_weight(text[position : match.start()]) + URL_LENGTH
        position = match.start() + len(url)
    return total + _text_weight(text[position:])


def fits_in_tweet(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> bool:
    return weighted_length(text) <= limit
