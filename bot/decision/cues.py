"""Cues in the wording of a text: shouting (mostly capitals) and anger (capitals, !!!, angry emoji).

Triage raises a ticket's priority on anger; the tone check refuses replies that shout. Pure functions.
"""

from __future__ import annotations

import re

from knowledge_base.tweet_length import find_urls

ANGRY_EMOJI = frozenset("😡😠🤬👿💢😤🖕")

_NOT_WORDS = re.compile(r"(?<!\S)[@#^]\w+")  # @mentions, #hashtags and ^signatures are not prose
_WORD = re.compile(r"[^\W\d_]+")
_REPEATED_MARKS = re.compile(r"[!?]*![!?]*!|!\?|\?!")  # "!!", "!!!", "?!", "!?"

SHOUT_MIN_LETTERS = 10  # fewer cased letters than this are never shouting ("OK", "WIFI DOWN")
SHOUT_RATIO = 0.6  # at least this share of the cased letters are capitals…
SHOUT_RUN = 3  # … or this many capitalised words in a row ("CANCEL THIS GARBAGE contract")


def _prose(text: str) -> str:
    for url in find_urls(text):
        text = text.replace(url, " ")
    return _NOT_WORDS.sub(" ", text)


def is_shouting(text: str) -> bool:
    """True when the text is mostly capitals, or has a run of capitalised words."""
    prose = _prose(text)
    cased = [ch for ch in prose if ch.isupper() or ch.islower()]
    if len(cased) < SHOUT_MIN_LETTERS:
        return False
    if sum(ch.isupper() for ch in cased) / len(cased) >= SHOUT_RATIO:
        return True
    run = letters = 0
    for word in prose.split():
        letters_in_word = _WORD.findall(word)
        joined = "".join(letters_in_word)
        if joined.isupper():
            if len(joined) >= 2:  # "I" and "A" neither extend nor break a run
                run += 1
                letters += len(joined)
                if run >= SHOUT_RUN and letters >= SHOUT_MIN_LETTERS:
                    return True
        elif joined:
            run = letters = 0
    return False


def anger_cues(text: str) -> list[str]:
    """The signs of anger in a customer's text, in words an agent reads ('written in capitals', …)."""
    cues = []
    if is_shouting(text):
        cues.append("written in capitals")
    if _REPEATED_MARKS.search(text):
        cues.append("repeated exclamation marks")
    if any(ch in ANGRY_EMOJI for ch in text):
        cues.append("angry emoji")
    return cues
