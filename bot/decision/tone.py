"""The tone guide (training_data/tone.yml) as code: `compose` writes a reply in the house voice, `check` lists what
is wrong with a reply before anyone posts it. One guide for the bot and for agents.

Replies are at most 280 characters as X counts them (knowledge_base.tweet_length), signed `^bot` or with the
agent's initials, and vary per ticket because X rejects a text identical to a recent one. Pure, apart from
reading the guide file once.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import regex

from bot.decision.cues import emoji_count, emphasis_words, has_repeated_marks, is_shouting
from bot.decision.personal_data import CARD_KINDS, KINDS, contact_key, describe_kinds, find_personal_data
from bot.decision.policy import SITUATIONS, Situation
from bot.hidden_text import invisible_characters, skeleton, without_invisible
from bot.nlu.text import InvalidText, clean_for_nlu
from bot.yaml_files import read_yaml
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, find_urls, weighted_length

if TYPE_CHECKING:
    from bot.decision.triage import Decision

DEFAULT_TONE_PATH = Path(__file__).resolve().parent.parent.parent / "training_data" / "tone.yml"

ELLIPSIS = "…"
MAX_ANSWER_CHARS = 10_000  # longer answers are cut before composing (they are shortened to fit anyway)
_INITIALS = re.compile(r"[A-Z]{2,3}")
_GRAPHEME = regex.compile(r"\X")
_TRAILING = ",;:-–—([{/ "  # not left dangling before an ellipsis
_PLACEHOLDERS = {"answer", "greeting", "closing"}


class ToneError(ValueError):
    """The tone guide is malformed, or there is nothing to compose a reply from."""


@dataclass(frozen=True)
class Author:
    """Who signs a reply: the bot, or an agent by the initials on their account (2 or 3 capital letters)."""

    kind: Literal["bot", "agent"]
    initials: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "bot":
            if self.initials is not None:
                raise ValueError("the bot signs as the bot: it has no initials")
        elif self.kind == "agent":
            if not isinstance(self.initials, str) or not _INITIALS.fullmatch(self.initials):
                raise ValueError(f"an agent's initials are 2 or 3 capital letters A-Z, not {self.initials!r}")
            if self.initials == "BOT":
                raise ValueError("the initials BOT would read as the bot's signature")
        else:
            raise ValueError(f"an author is a bot or an agent, not {self.kind!r}")

    @classmethod
    def bot(cls) -> Author:
        return cls("bot")

    @classmethod
    def agent(cls, initials: str) -> Author:
        return cls("agent", initials)


BOT = Author.bot()


@dataclass(frozen=True)
class Violation:
    # too_long, empty, missing_signature, foreign_signature, personal_data, banned_phrase, shouting, emphasis,
    # exclamation, emoji, duplicate, invalid_characters
    code: str
    message: str  # what an agent reads next to the reply box

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ToneGuide:
    version: int
    bot_signature: str
    agent_signature: str  # contains {initials}
    greetings: tuple[str, ...]
    closings: tuple[str, ...]
    links: dict[str, str]
    templates: dict[Situation, tuple[str, ...]]
    banned_phrases: tuple[str, ...]
    public_contacts: tuple[str, ...] = ()
    acronyms: frozenset[str] = frozenset()  # capitalised words that are not emphasis ("HDMI", "PAYG")

    def signature(self, author: Author) -> str:
        if author.kind == "bot":
            return self.bot_signature
        return self.agent_signature.replace("{initials}", author.initials or "")

    @property
    def signature_pattern(self) -> re.Pattern[str]:
        """Matches anything that looks like a signature, ours or not."""
        return _signature_pattern(self.bot_signature, self.agent_signature)

    @classmethod
    def load(cls, path: Path = DEFAULT_TONE_PATH) -> ToneGuide:
        data = read_yaml(path, "tone guide", ToneError)
        try:
            return guide_from_dict(data)
        except ToneError as exc:
            raise ToneError(f"{path}: {exc}") from exc


@lru_cache(maxsize=8)
def _signature_pattern(bot_signature: str, agent_signature: str) -> re.Pattern[str]:
    """Anything that looks like a signature: the bot's, or the agent format with any 2-3 letters."""
    before, _, after = agent_signature.partition("{initials}")
    agent = re.escape(before) + "[A-Za-z]{2,3}" + re.escape(after)
    return re.compile(rf"(?<!\S)(?:{re.escape(bot_signature)}|{agent})(?![\w^])", re.IGNORECASE)


@lru_cache(maxsize=1)
def default_guide() -> ToneGuide:
    """training_data/tone.yml of this checkout, read once."""
    return ToneGuide.load()


# ---------------------------------------------------------------- loading the guide


def _strings(where: str, value: Any, *, at_least: int = 1) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ToneError(f"{where} must be a list of non-empty texts")
    if len(value) < at_least:
        raise ToneError(f"{where} needs at least {at_least} entries")
    return tuple(" ".join(item.split()) for item in value)


def _fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ToneError(f"template {template!r} has unbalanced braces: {exc}") from exc
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            raise ToneError(f"template {template!r}: write placeholders as {{name}}, without formats")
        names.append(name)
    return names


def guide_from_dict(data: Any) -> ToneGuide:
    """A ToneGuide from the parsed YAML; raises ToneError naming the first problem."""
    keys = {
        "version", "signature", "greetings", "closings", "links", "templates", "banned_phrases", "public_contacts",
        "acronyms",
    }  # fmt: skip
    if not isinstance(data, dict):
        raise ToneError("the tone guide must be a mapping")
    unknown = sorted(set(map(str, data)) - keys)
    if unknown:
        raise ToneError(f"unknown key(s): {', '.join(unknown)}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ToneError("version must be a whole number from 1")
    signature = data.get("signature")
    if not isinstance(signature, dict) or set(signature) != {"bot", "agent"}:
        raise ToneError("signature must name the bot's signature and the agent format: {bot: ..., agent: ...}")
    bot_signature, agent_signature = signature["bot"], signature["agent"]
    if not isinstance(bot_signature, str) or not re.fullmatch(r"\^[a-z]{2,10}", bot_signature):
        raise ToneError(f"signature.bot must be ^ and a short lower-case word, not {bot_signature!r}")
    if not isinstance(agent_signature, str) or not re.fullmatch(r"\^\{initials\}", agent_signature):
        raise ToneError(f"signature.agent must be ^{{initials}}, not {agent_signature!r}")
    links = data.get("links") or {}
    if not isinstance(links, dict) or not all(
        isinstance(k, str) and k.isidentifier() and isinstance(v, str) and find_urls(v) == [v] for k, v in links.items()
    ):
        raise ToneError("links must map names to single URLs")
    templates_data = data.get("templates")
    if not isinstance(templates_data, dict):
        raise ToneError("templates must map each situation to its variants")
    missing = [name for name in SITUATIONS if name not in templates_data]
    extra = sorted(set(map(str, templates_data)) - set(SITUATIONS))
    if missing or extra:
        raise ToneError(
            f"templates must have exactly the situations {', '.join(SITUATIONS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else "")
        )
    templates: dict[Situation, tuple[str, ...]] = {}
    for situation in SITUATIONS:
        variants = _strings(f"templates.{situation}", templates_data[situation], at_least=2)
        for template in variants:
            names = _fields(template)
            unknown_names = sorted(set(names) - _PLACEHOLDERS - set(links))
            if unknown_names:
                raise ToneError(f"templates.{situation}: unknown placeholder(s) {', '.join(unknown_names)}")
            if (situation == "faq_answer") != (names.count("answer") == 1):
                raise ToneError(
                    f"templates.{situation}: {{answer}} belongs once in every faq_answer variant and nowhere else"
                )
        templates[situation] = variants
    contacts = data.get("public_contacts") or []
    acronyms = _strings("acronyms", data["acronyms"]) if data.get("acronyms") else ()
    not_acronyms = [word for word in acronyms if not re.fullmatch(r"[A-Z][A-Z0-9]+", word)]
    if not_acronyms:
        raise ToneError(f"acronyms must be capital letters and digits, not {', '.join(map(repr, not_acronyms))}")
    guide = ToneGuide(
        version=version,
        bot_signature=bot_signature,
        agent_signature=agent_signature,
        greetings=_strings("greetings", data.get("greetings")),
        closings=_strings("closings", data.get("closings")),
        links=dict(links),
        templates=templates,
        banned_phrases=_strings("banned_phrases", data["banned_phrases"]) if data.get("banned_phrases") else (),
        public_contacts=_strings("public_contacts", contacts) if contacts else (),
        acronyms=frozenset(acronyms),
    )
    _check_guide(guide)
    return guide


def _check_guide(guide: ToneGuide) -> None:
    """Every fixed text of the guide must itself pass the tone check and fit with the longest signature."""
    texts = [*guide.greetings, *guide.closings]
    for situation, variants in guide.templates.items():
        if situation != "faq_answer":
            texts += [_render(template, guide, "", "", "") for template in variants]
    for author in (BOT, Author.agent("WWW")):
        for text in texts:
            problems = [v.message for v in check(f"{text} {guide.signature(author)}", author, guide=guide)]
            if problems:
                raise ToneError(f"the guide's own text {text!r} breaks the tone rules: {' '.join(problems)}")


# ---------------------------------------------------------------- composing


def _render(template: str, guide: ToneGuide, answer: str, greeting: str, closing: str) -> str:
    text = template.format(answer=answer, greeting=greeting, closing=closing, **guide.links)
    return " ".join(text.split())


def _seeded_order(items: list[Any], seed: int | str) -> list[Any]:
    """The items in an order fixed by the seed (the same ticket always gets the same first choice)."""
    digest = hashlib.sha256(repr(seed).encode("utf-8", "surrogatepass")).digest()
    shuffled = list(items)
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(shuffled)
    return shuffled


def reference_code(seed: int | str) -> str:
    """Five letters and digits derived from a ticket or tweet id, for telling otherwise identical replies apart."""
    digest = hashlib.sha256(repr(seed).encode("utf-8", "surrogatepass")).digest()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    number = int.from_bytes(digest[:8], "big")
    return "".join(alphabet[(number >> (5 * i)) & 31] for i in range(5))


_REFERENCE = re.compile(r"\(ref [A-HJ-NP-Z2-9]{5}\)")  # what compose_reply adds from reference_code


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    position = 0
    for url in find_urls(text):
        start = text.find(url, position)
        if start < 0:
            continue
        spans.append((start, start + len(url)))
        position = start + len(url)
    return spans


def _shortened(text: str, cut: int, spans: list[tuple[int, int]]) -> str:
    head = text[:cut].rstrip(_TRAILING)
    if not head:
        return ELLIPSIS
    # An ellipsis straight after a link would become part of it: keep a space between them.
    ends_in_url = any(start < len(head) <= end for start, end in spans)
    return f"{head} {ELLIPSIS}" if ends_in_url else head + ELLIPSIS


def _longest_fit(text: str, cuts: list[int], budget: int, spans: list[tuple[int, int]]) -> str | None:
    """The shortened text at the last cut position that fits in `budget` (cuts in increasing order)."""
    if not cuts:
        return None
    low, high = 0, len(cuts) - 1
    best = -1
    while low <= high:  # weighted length grows with the cut almost everywhere: search, then make sure
        middle = (low + high) // 2
        if weighted_length(_shortened(text, cuts[middle], spans)) <= budget:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    for index in range(best, -1, -1):
        candidate = _shortened(text, cuts[index], spans)
        if weighted_length(candidate) <= budget:
            return candidate
    return None


def shorten(text: str, budget: int) -> str:
    """`text` if it fits in `budget` weighted characters, else its longest start that does, followed by "…".

    It is cut after a word; only when that would keep less than 60% of the budget (one long unbroken word,
    or a script written without spaces) after a grapheme. Never inside a URL: a link stays whole or goes.
    """
    if weighted_length(text) <= budget:
        return text
    spans = _url_spans(text)
    word_cuts = [match.start() for match in re.finditer(r"\s+", text)]
    result = _longest_fit(text, word_cuts, budget, spans)
    if result is None or weighted_length(result) < 0.6 * budget:
        grapheme_cuts, position = [], 0
        for grapheme in _GRAPHEME.findall(text):
            position += len(grapheme)
            if not any(start < position < end for start, end in spans):
                grapheme_cuts.append(position)
        by_grapheme = _longest_fit(text, grapheme_cuts, budget, spans)
        if by_grapheme and (result is None or weighted_length(by_grapheme) > weighted_length(result)):
            result = by_grapheme
    if result is None:
        return ELLIPSIS if weighted_length(ELLIPSIS) <= budget else ""
    return result


def _normalised(text: str, guide: ToneGuide) -> str:
    """The text for duplicate detection: no signature, case, spacing, invisible-character or look-alike
    differences (the skeleton of bot/hidden_text.py, as check() reads the body it compares)."""
    text = skeleton(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    text = guide.signature_pattern.sub(" ", text)
    return " ".join(text.casefold().split())


class RecentReplies:
    """Wordings posted recently, kept normalised: checking a new reply against thousands of them is one lookup.
    The worker keeps one per process and adds every reply it composes (X refuses a text it has seen from us)."""

    def __init__(self, texts: Iterable[str] = (), guide: ToneGuide | None = None) -> None:
        self.guide = guide or default_guide()
        self._seen = {_normalised(text, self.guide) for text in texts}

    def add(self, text: str) -> None:
        self._seen.add(_normalised(text, self.guide))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and _normalised(text, self.guide) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def normalised(self) -> set[str]:
        return self._seen


def _avoid(recent_replies: Iterable[str] | RecentReplies, guide: ToneGuide) -> set[str]:
    if isinstance(recent_replies, RecentReplies):
        return recent_replies.normalised()
    return {_normalised(text, guide) for text in recent_replies}


def _clean_answer(answer: str) -> str:
    try:
        # NFC, no controls, bidi marks or other invisible characters, single spaces
        cleaned, _ = clean_for_nlu(without_invisible(answer), MAX_ANSWER_CHARS)
    except InvalidText as exc:
        raise ToneError("the FAQ answer is empty") from exc
    return cleaned


def compose_reply(
    situation: Situation,
    author: Author,
    *,
    variant_seed: int | str,
    answer: str | None = None,
    recent_replies: Iterable[str] | RecentReplies = (),
    guide: ToneGuide | None = None,
) -> str:
    """A reply for a situation, signed by `author`, at most 280 characters as X counts them.

    `variant_seed` (a ticket or tweet id) picks the variant, so replies differ between tickets; a variant whose
    text is the same as one of `recent_replies` is skipped while another one is left. `answer` is the FAQ answer
    (faq_answer only). When a reply is too long, the greeting and closing go first, then the answer is shortened.
    """
    guide = guide or default_guide()
    if situation not in guide.templates:
        raise ToneError(f"there is no template for {situation!r}")
    if situation == "faq_answer":
        if answer is None:
            raise ToneError("an FAQ reply needs the answer")
        answer = _clean_answer(answer)
    else:
        answer = None  # only FAQ replies carry an answer
    signature = guide.signature(author)
    suffix = f" {signature}"
    budget = MAX_WEIGHTED_LENGTH - weighted_length(suffix)
    avoid = _avoid(recent_replies, guide)

    combinations = [
        (template, greeting, closing)
        for template in guide.templates[situation]
        for greeting in (guide.greetings if "{greeting}" in template else ("",))
        for closing in (guide.closings if "{closing}" in template else ("",))
    ]
    first_fitting = None
    for template, greeting, closing in _seeded_order(combinations, variant_seed):
        body = _render(template, guide, answer or "", greeting, closing)
        if weighted_length(body) > budget:
            continue
        if _normalised(body, guide) not in avoid:
            return unicodedata.normalize("NFC", body + suffix)
        first_fitting = first_fitting or body
    if first_fitting is None:  # even the plainest variant is too long: shorten the answer itself
        plain = answer or _render(guide.templates[situation][0], guide, "", "", "")
        first_fitting = shorten(plain, budget)
    elif avoid:
        # Every wording was used recently (an outage storm): a short reference from the seed keeps this reply
        # distinct, since X refuses a text identical to a recent one.
        reference = f" (ref {reference_code(variant_seed)})"
        body = first_fitting
        if weighted_length(body + reference) > budget:
            body = shorten(body, budget - weighted_length(reference))
        first_fitting = body + reference
    reply = unicodedata.normalize("NFC", first_fitting + suffix)
    # The space before the signature keeps lengths additive today; this guards the rule should counting change.
    while weighted_length(reply) > MAX_WEIGHTED_LENGTH:  # pragma: no cover
        first_fitting = shorten(first_fitting, weighted_length(first_fitting) - 1)
        reply = unicodedata.normalize("NFC", first_fitting + suffix)
    return reply


def compose(
    decision: Decision,
    author: Author,
    *,
    variant_seed: int | str,
    recent_replies: Iterable[str] | RecentReplies = (),
    guide: ToneGuide | None = None,
) -> str:
    """The reply text for a triage decision (its `reply` situation, with its FAQ answer), signed by `author`."""
    if decision.reply is None:
        raise ToneError(f"this decision ({decision.band}) has nothing to say")
    return compose_reply(
        decision.reply, author, variant_seed=variant_seed, recent_replies=recent_replies, guide=guide,
        answer=decision.faq.answer if decision.faq else None,
    )  # fmt: skip


# ---------------------------------------------------------------- checking


@lru_cache(maxsize=256)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = [re.escape(word) for word in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _personal_data_kinds(text: str, guide: ToneGuide, *, dm: bool) -> list[str]:
    """The kinds of personal data a reply may not contain, in the order of KINDS."""
    text = _REFERENCE.sub(" ", text)  # our own "(ref G34ZN)" can look like a postcode
    allowed = {contact_key(contact) for contact in guide.public_contacts}
    present = {
        found.kind for found in find_personal_data(text)
        if contact_key(found.value) not in allowed
        and not (found.kind == "name" and len(found.value.split()) == 1)  # "I'm Ann from the team": first names
    }  # fmt: skip
    if dm:
        present &= CARD_KINDS
    return [kind for kind in KINDS if kind in present]


def _without_codes(text: str) -> str:
    """The text without our reference codes and personal data (an IBAN's "BUKB" is not emphasis)."""
    text = _REFERENCE.sub(" ", text)
    for found in find_personal_data(text):
        text = text.replace(found.value, " ")
    return text


def check(
    text: str,
    author: Author,
    *,
    recent_replies: Iterable[str] | RecentReplies = (),
    guide: ToneGuide | None = None,
    dm: bool = False,
) -> list[Violation]:
    """What is wrong with a reply `author` is about to post, as violations an agent reads (empty: none).

    A public reply may contain no personal data of any kind (bot/decision/personal_data.py), except the guide's
    own public contacts and a first name alone (agents introduce themselves by first name). A direct message
    (`dm`) is private and may carry what the conversation needs (a phone number, an e-mail address, an account
    number), but payment card data (number, expiry date, security code) is never written anywhere.
    """
    guide = guide or default_guide()
    violations: list[Violation] = []
    safe = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    hidden = sorted({char for _, char in invisible_characters(safe)} | ({"\t"} & set(safe)))
    if safe != text or hidden:
        listed = ", ".join(f"U+{ord(char):04X}" for char in hidden[:5])
        violations.append(
            Violation(
                "invalid_characters",
                "It contains invisible or direction-changing characters"
                + (f" ({listed})" if listed else "")
                + " or broken text: remove them.",
            )
        )
    safe = unicodedata.normalize("NFC", safe)
    # Signatures are looked for in what the text looks like, so ^B\u200bC or a Cyrillic ^ВС counts as ^BC.
    looks = skeleton(safe)

    length = weighted_length(safe)
    if length > MAX_WEIGHTED_LENGTH:
        violations.append(
            Violation("too_long", f"It is {length} characters as X counts them; the limit is {MAX_WEIGHTED_LENGTH}.")
        )

    signature = guide.signature(author)
    stripped = looks.rstrip()
    signatures = list(guide.signature_pattern.finditer(stripped))
    last = signatures[-1] if signatures else None
    signed = last is not None and last.end() == len(stripped) and last.group(0) == signature
    others = sorted({m.group(0) for m in (signatures[:-1] if signed else signatures)})
    foreign = [s for s in others if s != signature]
    if foreign:
        violations.append(
            Violation("foreign_signature", f"It contains the signature {', '.join(foreign)}, not yours ({signature}).")
        )
    if signature in others:
        violations.append(Violation("foreign_signature", f"Your signature {signature} belongs at the end, once."))
    if not signed and not foreign:
        violations.append(Violation("missing_signature", f"It must end with your signature {signature}."))
    body = stripped[: last.start()].strip() if signed and last else stripped
    if not guide.signature_pattern.sub("", body).strip():
        violations.append(Violation("empty", "There is no message besides the signature."))

    kinds = _personal_data_kinds(safe, guide, dm=dm)
    if kinds:
        whose = "Your reply" if author.kind == "agent" else "The reply"
        if dm:
            message = (
                f"{whose} contains {describe_kinds(kinds)}: card details are never written in a reply, not even in "
                "a DM."
            )
        else:
            message = f"{whose} contains {describe_kinds(kinds)}: personal data is never posted in public. Move to DM."
        violations.append(Violation("personal_data", message))
    for phrase in guide.banned_phrases:
        if _phrase_pattern(phrase).search(safe):
            violations.append(Violation("banned_phrase", f"Avoid the phrase \u201c{phrase}\u201d."))
    if is_shouting(body):
        violations.append(Violation("shouting", "It is mostly capitals, which reads as shouting."))
    else:
        stressed = list(dict.fromkeys(emphasis_words(_without_codes(body), guide.acronyms)))
        if stressed:
            violations.append(
                Violation("emphasis", f"No capitals for emphasis: write {', '.join(w.lower() for w in stressed[:3])}.")
            )
    if has_repeated_marks(body):
        message = "One exclamation mark at a time: no \u201c!!\u201d or \u201c?!\u201d."
        violations.append(Violation("exclamation", message))
    if emoji_count(body) > 1:
        violations.append(Violation("emoji", "At most one emoji in a reply."))
    if body and _normalised(body, guide) in _avoid(recent_replies, guide):
        violations.append(
            Violation("duplicate", "It is the same text as a recent reply, which X rejects. Vary the wording.")
        )
    return violations
