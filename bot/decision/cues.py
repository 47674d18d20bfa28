"""Cues in the wording of a text: shouting (mostly capitals), capitals for emphasis, repeated exclamation marks,
emoji, and anger (capitals, !!!, angry emoji).

Triage raises a ticket's priority on anger; the tone check refuses replies that shout, stress words in capitals,
repeat exclamation marks or carry more than one emoji. Pure functions.
"""

from __future__ import annotations

import re

import regex

from knowledge_base.tweet_length import find_urls

ANGRY_EMOJI = frozenset("😡😠🤬👿💢😤🖕")

_NOT_WORDS = re.compile(r"(?<!\S)[@#^]\w+")  # @mentions, #hashtags and ^signatures are not prose
_WORD = re.compile(r"[^\W\d_]+")
_REPEATED_MARKS = re.compile(r"[!?]*![!?]*!|!\?|\?!")  # "!!", "!!!", "?!", "!?"

_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}{2}")
EMPHASIS_MIN_LETTERS = 4  # a capitalised word this long that is no acronym is emphasis ("REALLY", "NEVER")

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


def emphasis_words(text: str, acronyms: frozenset[str] = frozenset()) -> list[str]:
    """Words written in capitals for emphasis: at least EMPHASIS_MIN_LETTERS letters, none lower-case, not an
    acronym of `acronyms` (links, @mentions, #hashtags and signatures are not prose)."""
    found = []
    for word in _WORD.findall(_prose(text)):
        if len(word) >= EMPHASIS_MIN_LETTERS and word.isupper() and word not in acronyms:
            found.append(word)
    return found


def has_repeated_marks(text: str) -> bool:
    """ "!!", "!!!", "?!" or "!?" outside links."""
    return bool(_REPEATED_MARKS.search(_prose(text)))


def emoji_count(text: str) -> int:
    """How many emoji the text shows: each grapheme with a pictograph, or a flag, counts once."""
    return sum(1 for grapheme in regex.findall(r"\X", text) if _EMOJI.search(grapheme))


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


# ---------------------------------------------------------------- what a tweet carries besides its kind

_MENTIONS_AND_LINKS = re.compile(r"(?<!\S)[@#]\w+|https?://\S+|\bpic\.twitter\.com/\S+", re.IGNORECASE)
_LETTERS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _words(text: str) -> list[str]:
    return [word.lower().replace("’", "'") for word in _LETTERS.findall(_MENTIONS_AND_LINKS.sub(" ", text))]


def _any(patterns: tuple[tuple[str, str], ...], text: str) -> list[str]:
    lowered = " ".join(_MENTIONS_AND_LINKS.sub(" ", text).lower().replace("’", "'").split())
    return [name for pattern, name in patterns if re.search(pattern, lowered)]


_QUESTION_MARK = r"[?？؟⁇⁈⁉]"  # also the full-width, Arabic and doubled question marks

# Signs that the FAQ's standard answer will not help: the customer has been there already.
_WONT_HELP = (
    (
        r"\balready\b(?! (?:an? (?:[\w']+ ){0,3}(?:customer|member|subscriber)"
        r"|with (?:you|kestrel))\b)",
        "says they already tried",
    ),
    (r"\btried (?:that|this|it|everything|all|both|twice|again|restarting|resetting|turning)", "says they tried it"),
    (r"\bsince (?:the|your|an?) (?:update|upgrade|firmware|software|new)", "since an update"),
    (r"\btried (?:another|a different|a new|other|my|the|switching|unplugging|rebooting)\b", "says they tried it"),
    (
        r"\b(?:was told|were told|you said|you told me|they said|promised|summary said|letter said)\b",
        "says they were told otherwise",
    ),
    (
        r"\b(?:charged|billed|taken|paid)\b[^.?!]{0,40}£\s?\d|£\s?\d[^.?!]{0,40}\b(?:charged|billed|taken)\b",
        "about a charge on their account",
    ),
    (r"\bstill\b", "still happening"),
    (r"\bagain\b", "happening again"),
    (r"\b(?:from|in|on|via|through) (?:the|your) app\b", "about the app"),
    (r"\b(?:didn'?t|did not|doesn'?t|does not|won'?t|will not) (?:work|help|fix|change)", "it did not work"),
    (r"\bno (?:luck|joy|change|difference)\b", "no luck"),
    (
        r"\b(?:have ?n'?t|has ?n'?t|not|never|still not) (?:yet )?"
        r"(?:received|arrived|been delivered|come|turned up|shown up)"
        r"|\b(?:did ?n'?t|did not|never) "
        r"(?:arrive|come|turn up|show up|get delivered|deliver|leave (?:the|my) (?:package|parcel))\b",
        "says it has not arrived",
    ),
    (r"\b(?:\d+|two|three|four|five|several|many) times\b|\btwice\b|\bx\s?[2-9]\b", "more than once"),
    (r"\bkeeps? (?:on )?(?:happening|doing|coming)", "keeps happening"),
    (
        r"\bbut (?:i|we) (?:don'?t|dont|do not|can'?t|cant|cannot|couldn'?t|have no|haven'?t(?: got)?) "
        r"(?:know|remember|have|access|find|get|see|receive|log|use)\b",
        "says something stops them",
    ),
    (
        r"\bhack(?:ed|er|ers|ing)?\b|\bfraud|\bsomeone (?:has |have )?(?:got into|accessed|logged into|changed|used)"
        r" (?:my|our)\b",
        "about a hacked account or fraud",
    ),
)

# Anything that makes a greeting or a thank-you more than that: a problem, a question, a complaint, sarcasm.
_NOT_SOCIAL = (
    (_QUESTION_MARK, "a question"),
    (
        r"\b(?:not|no|never|nothing|nobody|none|cannot|can't|won't|don't|doesn't|didn't|isn't|wasn't|aren't|haven't"
        r"|hasn't|couldn't|wouldn't|n't)\b",
        "a negation",
    ),
    (r"\b(?:but|however|although|though|still|again|yet|except|unless)\b", "a 'but'"),
    (
        r"\b(?:broken|down|fault|faulty|issue|issues|problem|problems|fix|fixed\?|wrong|slow|outage|cancel|charged?"
        r"|refund|complain|complaint|worst|useless|rubbish|terrible|awful|waiting|wait|help|need|want|bill|signal"
        r"|connection|internet|wifi|broadband|dm|please|pls|plz)\b",
        "a problem word",
    ),
    (
        r"for nothing|as always|as usual|yeah right|not\b|cheers for|great job|well done|nice one|thanks a bunch"
        r"|brilliant service|amazing service|great service|love how|love that|so helpful|really helpful|wow",
        "sarcasm",
    ),
    (r"[🙄😒😤😡😠🤬👎🤦]", "a sarcastic or angry emoji"),
    (r"\b(?:should|whoever|supposed to|imagine)\b", "a demand or a jibe"),
)

SOCIAL_MAX_WORDS = 20

# An explicit request to the bot to stop replying. A question about stopping something else (marketing texts,
# a direct debit) is not one: the phrases are about replies, tweets, messages to *them*, or the bot itself.
_EXPLICIT_OPT_OUT = (
    r"^(?:(?:stop|unsubscribe|opt out|optout|stop all|end|quit)\W*)+$",
    r"\bstop (?:replying|responding|tweeting|messaging|answering|spamming|tagging|contacting|@?mentioning)"
    r"(?: (?:to|at))? ?(?:me|us)?\b",
    r"\b(?:don'?t|do not|never) (?:reply|respond|tweet|message|dm) (?:to )?(?:me|us)\b",
    r"\bno more (?:bot|automated|auto|robot|canned)\b",
    r"\bstop (?:the|your|this) (?:bot|robot|automated|auto)",
    r"\b(?:unsubscribe|opt) (?:me )?(?:out )?(?:of|from) (?:your|the|these|bot|automated) (?:replies|tweets|bot"
    r"|messages|responses)",
    r"\bleave me alone\b",
)


# "still" and "again" that ask how to do something rather than say it failed: "will it still work", "am i still
# in contract", "how do i get it talking to the box again". These are taken out before the cues are read.
_NOT_A_RETRY = re.compile(
    r"\b(?:will|would|can|could|do|does|should|shall|may|might)(?: [\w']+){0,2} still\b"
    r"|\b(?:am|are|is) (?:i|we|it|they|there|he|she) still\b"
    r"|(?<!n't )(?<!not )(?<!didnt )(?<!dont )"
    r"\b(?:get|getting|make|turn(?! up)|turning|switch|switching|pair|pairing|start|set|plug|flick|put|connect|link)\b"
    r"(?: [\w']+){0,6} again\b",
    re.IGNORECASE,
)


def wont_help_cues(text: str) -> list[str]:
    """Signs in the wording that an FAQ answer will not help ('says they already tried', 'still happening')."""
    return _any(_WONT_HELP, _NOT_A_RETRY.sub(" ", text.replace("’", "'")))


def not_social_cues(text: str) -> list[str]:
    """What makes the text more than a greeting or a thank-you (empty: it is nothing else)."""
    found = _any(_NOT_SOCIAL, text)
    if len(_words(text)) > SOCIAL_MAX_WORDS:
        found.append("too long for a greeting or a thank-you alone")
    return found


def problem_cues(text: str) -> list[str]:
    """What in the words may be a customer's problem or question: a question mark, a negation, a 'but', a problem
    word, a demand. Spam is dropped only without any of these."""
    found = _any(_NOT_SOCIAL[:4], text)
    lowered = text.lower().replace("’", "'")
    if re.search(r"\b(?:give me|give us|where(?:'s| is)|when(?:'s| is)|why|how|what)\b", lowered):
        found.append("a demand or a question")
    return found


def explicit_opt_out(text: str) -> bool:
    """Whether the customer explicitly asks us to stop replying ("STOP", "stop replying", "no more bot")."""
    lowered = " ".join(_MENTIONS_AND_LINKS.sub(" ", text).lower().replace("’", "'").split())
    return any(re.search(pattern, lowered) for pattern in _EXPLICIT_OPT_OUT)


def opt_out_only(text: str) -> bool:
    """An explicit opt-out with little else in it (a few words): nothing else for a person to answer."""
    return explicit_opt_out(text) and len(_words(text)) <= 8 and not _any(_OPT_OUT_EXTRA, text)


# In an opt-out, what asks for more than silence.
_OPT_OUT_EXTRA = (
    (_QUESTION_MARK, "a question"),
    (
        r"\b(?:broken|down|fault|issue|problem|fix|wrong|outage|cancel|charged?|refund|bill|signal|internet|wifi"
        r"|broadband|human|person|someone|agent|manager)\b",
        "a problem",
    ),
)


_OUTAGE = (
    r"\b(?:down|outage|offline|cut off|dead|no service|no signal|no internet|no broadband|no wifi|no connection"
    r"|no dial tone|no tv|not working|isn't working|stopped working|nothing works|nothing is working|can't connect"
    r"|lost (?:connection|signal|internet|service)"
    r"|keeps dropping|dropping out)\b"
)


def outage_cue(text: str) -> bool:
    """Whether the wording itself says that a service is down (evidence for an outage acknowledgement)."""
    lowered = " ".join(_MENTIONS_AND_LINKS.sub(" ", text).lower().split())
    return re.search(_OUTAGE, lowered) is not None


def mentions_others(text: str, own_handles: tuple[str, ...] = ()) -> bool:
    """Whether the tweet @mentions an account other than ours (often: about another company). Without our
    handles there is no telling: False."""
    handles = {h.lower().lstrip("@") for h in own_handles}
    if not handles:
        return False
    return any(m.lower() not in handles for m in re.findall(r"(?<!\w)@(\w{1,15})", text))
