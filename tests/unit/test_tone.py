"""The tone guide: compose() writes signed replies of at most 280 weighted characters, cut only at words and
graphemes and never inside a link; check() finds every kind of violation and never crashes."""

from __future__ import annotations

import copy
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import regex
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.decision.cues import is_shouting
from bot.decision.policy import SITUATIONS
from bot.decision.tone import (
    BOT,
    DEFAULT_TONE_PATH,
    ELLIPSIS,
    Author,
    ToneError,
    ToneGuide,
    check,
    compose,
    compose_reply,
    default_guide,
    guide_from_dict,
    reference_code,
    shorten,
)
from bot.decision.triage import Decision, FaqChoice
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, find_urls, weighted_length

AB = Author.agent("AB")
ANSWER = (
    "Switch the Hub off at the back, wait 30 seconds and switch it on again. The light turns white in about "
    "3 minutes. Still no joy? Run a line test at https://kestrel.example/help/run-line-test"
)
URL = "https://kestrel.example/help/a-rather-long-path/that-goes-on-and-on?with=query&and=more"


def _raw_guide() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_TONE_PATH.read_text(encoding="utf-8"))


def _faq_decision(answer: str = ANSWER) -> Decision:
    return Decision("auto", ("test",), reply="faq_answer", faq=FaqChoice(1, "restart-router", 0.9, 0.2, answer))


def _codes(text: str, author: Author = BOT, **kwargs: Any) -> list[str]:
    return [violation.code for violation in check(text, author, **kwargs)]


# ---------------------------------------------------------------- authors and signatures


@pytest.mark.parametrize("initials", ["AB", "ABC", "ZQ"])
def test_agent_initials_accepted(initials: str) -> None:
    author = Author.agent(initials)
    assert default_guide().signature(author) == f"^{initials}"


@pytest.mark.parametrize("initials", ["", "A", "ABCD", "ab", "Ab", "A1", "ÀB", "A B", "^AB", "BOT", None, 12])
def test_agent_initials_refused(initials: Any) -> None:
    with pytest.raises(ValueError):
        Author("agent", initials)


def test_the_bot_has_no_initials_and_authors_are_bot_or_agent() -> None:
    assert default_guide().signature(BOT) == "^bot"
    with pytest.raises(ValueError):
        Author("bot", "AB")
    with pytest.raises(ValueError):
        Author("editor", "AB")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the guide itself


def test_the_guide_has_several_variants_for_every_situation() -> None:
    guide = default_guide()
    assert set(guide.templates) == set(SITUATIONS)
    assert all(len(variants) >= 2 for variants in guide.templates.values())
    assert guide.banned_phrases and guide.greetings and guide.closings


@pytest.mark.parametrize("situation", [s for s in SITUATIONS if s != "faq_answer"])
@pytest.mark.parametrize("author", [BOT, Author.agent("ABC")])
def test_every_template_variant_passes_the_tone_check(situation: Any, author: Author) -> None:
    texts = {compose_reply(situation, author, variant_seed=seed) for seed in range(40)}
    assert len(texts) == len(default_guide().templates[situation])  # every variant is reachable
    for text in texts:
        assert check(text, author) == []
        assert text.endswith(" " + default_guide().signature(author))


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(_raw_guide())
    change(data)
    return data


GUIDE_ERRORS = [
    ("missing situation", lambda d: d["templates"].pop("thanks"), "thanks"),
    ("unknown situation", lambda d: d["templates"].update(farewell=["Bye.", "Ciao."]), "farewell"),
    ("one variant", lambda d: d["templates"].update(thanks=["Thanks."]), "at least 2"),
    ("answer outside faq", lambda d: d["templates"]["thanks"].append("Thanks {answer}"), "{answer}"),
    ("faq without answer", lambda d: d["templates"]["faq_answer"].append("{greeting}"), "{answer}"),
    ("answer twice", lambda d: d["templates"]["faq_answer"].append("{answer} {answer}"), "{answer}"),
    ("unknown placeholder", lambda d: d["templates"]["thanks"].append("Hi {name}"), "name"),
    ("format spec", lambda d: d["templates"]["thanks"].append("Hi {greeting:>10}"), "without formats"),
    ("unbalanced", lambda d: d["templates"]["thanks"].append("Hi {"), "braces"),
    ("banned phrase in a template", lambda d: d["templates"]["thanks"].append("Kindly wait."), "kindly"),
    ("shouting template", lambda d: d["templates"]["thanks"].append("THANK YOU SO MUCH FOR WRITING"), "capitals"),
    ("too long template", lambda d: d["templates"]["thanks"].append("x " * 150), "limit"),
    ("bad bot signature", lambda d: d["signature"].update(bot="bot"), "signature.bot"),
    ("free agent signature", lambda d: d["signature"].update(agent="~{initials}"), "signature.agent"),
    ("unknown key", lambda d: d.update(colour="blue"), "colour"),
    ("link that is not a URL", lambda d: d["links"].update(status_url="not a link"), "links"),
]


@pytest.mark.parametrize(("name", "change", "message"), GUIDE_ERRORS, ids=[e[0] for e in GUIDE_ERRORS])
def test_a_malformed_guide_is_refused_with_the_reason(name: str, change: Any, message: str) -> None:
    with pytest.raises(ToneError, match=regex.escape(message)):
        guide_from_dict(_broken(change))


def test_loading_a_missing_or_invalid_file_is_a_tone_error(tmp_path: Path) -> None:
    with pytest.raises(ToneError, match="cannot read"):
        ToneGuide.load(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("templates: [unclosed", encoding="utf-8")
    with pytest.raises(ToneError, match="not valid YAML"):
        ToneGuide.load(bad)


# ---------------------------------------------------------------- compose


def test_compose_signs_and_keeps_the_whole_answer_when_it_fits() -> None:
    reply = compose(_faq_decision(), BOT, variant_seed="tweet-1")
    assert reply.endswith(" ^bot")
    assert ANSWER in reply
    assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH
    assert check(reply, BOT) == []


def test_compose_is_deterministic_per_seed_and_varies_between_tickets() -> None:
    decision = _faq_decision()
    assert compose(decision, BOT, variant_seed=7) == compose(decision, BOT, variant_seed=7)
    texts = {compose(decision, BOT, variant_seed=seed) for seed in range(30)}
    assert len(texts) >= 10


def test_compose_avoids_the_text_of_recent_replies() -> None:
    decision = _faq_decision()
    first = compose(decision, AB, variant_seed=1)
    again = compose(decision, AB, variant_seed=1, recent_replies=[first.upper().replace("^AB", "^CD")])
    assert again != first
    assert check(again, AB, recent_replies=[first]) == []


def test_when_every_variant_was_used_recently_a_reference_keeps_the_reply_distinct() -> None:
    used = {compose_reply("outage_ack", BOT, variant_seed=seed) for seed in range(50)}
    replies = [compose_reply("outage_ack", BOT, variant_seed=seed, recent_replies=used) for seed in range(100, 160)]
    assert len(set(replies)) == len(replies)  # an outage storm of 60 gets 60 different acknowledgements
    for reply in replies:
        assert reply not in used and "(ref " in reply
        assert _codes(reply, recent_replies=used) == []
        assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH


def test_a_long_answer_loses_greeting_and_closing_before_any_of_its_words() -> None:
    answer = "word " * 54 + "end."  # 274 characters: only the bare answer and the signature fit
    assert weighted_length(answer + " ^bot") <= MAX_WEIGHTED_LENGTH
    for seed in range(10):
        assert compose(_faq_decision(answer), BOT, variant_seed=seed) == answer + " ^bot"


def test_a_too_long_answer_is_cut_after_a_word_with_an_ellipsis() -> None:
    answer = " ".join(f"word{n}" for n in range(100))
    reply = compose(_faq_decision(answer), AB, variant_seed=1)
    assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH
    assert reply.endswith(f"{ELLIPSIS} ^AB")
    kept = reply.removesuffix(f"{ELLIPSIS} ^AB")
    assert answer.startswith(kept) and answer[len(kept)] == " "  # the cut is at the end of a whole word
    assert weighted_length(reply) > MAX_WEIGHTED_LENGTH - 10  # and not needlessly short


@pytest.mark.parametrize("words_before", range(95, 135, 3))
def test_a_url_is_never_cut(words_before: int) -> None:
    answer = "a " * words_before + URL + " and some more words after the link" * 5
    reply = compose(_faq_decision(answer), BOT, variant_seed=0)
    assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH
    assert (URL in reply) or ("https" not in reply and "kestrel.example" not in reply)


def test_an_ellipsis_never_glues_onto_a_link() -> None:
    answer = "a " * 110 + URL + " " + "b" * 100  # the cut falls right after the link
    shortened = shorten(answer, 250)
    assert weighted_length(shortened) <= 250 and shortened.endswith(ELLIPSIS)
    assert find_urls(shortened) == [URL]  # X links exactly our URL, not "URL…"


@pytest.mark.parametrize(
    ("unit", "name"),
    [
        ("我", "CJK without spaces"),
        ("👨\u200d👩\u200d👧\u200d👦", "ZWJ family emoji"),
        ("🇬🇧", "flag"),
        ("q\u0301", "letter with a combining accent (no precomposed form)"),
        ("x", "one giant word"),
    ],
)
def test_text_without_spaces_is_cut_between_graphemes(unit: str, name: str) -> None:
    reply = compose(_faq_decision(unit * 400), AB, variant_seed=0)
    assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH
    body = reply.removesuffix(f"{ELLIPSIS} ^AB")
    assert body != reply, name
    graphemes = regex.findall(r"\X", body)
    assert set(graphemes) == {unicodedata.normalize("NFC", unit)}, name  # no grapheme was split
    assert weighted_length(reply) >= MAX_WEIGHTED_LENGTH - 6  # the grapheme cut keeps nearly everything


def test_compose_cleans_control_characters_and_bidi_marks_from_the_answer() -> None:
    reply = compose(_faq_decision("Restart\x00 the\u202e Hub\n\nnow."), BOT, variant_seed=0)
    assert "Restart the Hub now." in reply
    assert "invalid_characters" not in _codes(reply)


@pytest.mark.parametrize("answer", ["", "   ", "\u200b\u200e", "\x00\x01"])
def test_an_empty_answer_is_refused(answer: str) -> None:
    with pytest.raises(ToneError, match="empty"):
        compose(_faq_decision(answer), BOT, variant_seed=0)


def test_a_decision_without_a_reply_or_an_faq_reply_without_an_answer_is_refused() -> None:
    with pytest.raises(ToneError, match="nothing to say"):
        compose(Decision("human", ("x",)), BOT, variant_seed=0)
    with pytest.raises(ToneError, match="needs the answer"):
        compose(Decision("auto", ("x",), reply="faq_answer"), BOT, variant_seed=0)


def test_acknowledgements_use_the_guide_links() -> None:
    reply = compose(Decision("human", ("x",), reply="outage_ack"), BOT, variant_seed=0)
    assert default_guide().links["status_url"] in reply


# ---------------------------------------------------------------- compose: properties

initials = st.from_regex(r"[A-Z]{2,3}", fullmatch=True).filter(lambda s: s != "BOT")
any_text = st.text(st.characters(exclude_categories=()), max_size=800)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=any_text, agent=st.one_of(st.none(), initials), seed=st.integers() | st.text(max_size=10))
def test_compose_never_exceeds_280_and_never_drops_the_signature(answer: str, agent: str | None, seed: Any) -> None:
    author = BOT if agent is None else Author.agent(agent)
    try:
        reply = compose(_faq_decision(answer), author, variant_seed=seed)
    except ToneError:
        assert not "".join(ch for ch in answer if ch.isprintable() and not ch.isspace()).strip("\u200b\u200e\u200f")
        return
    signature = default_guide().signature(author)
    assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH
    assert reply.endswith(" " + signature)
    codes = _codes(reply, author)
    assert "too_long" not in codes and "missing_signature" not in codes and "invalid_characters" not in codes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["word", "longerword", URL, "🇬🇧", "我们", "é", "x.y"]), min_size=1, max_size=200))
def test_compose_keeps_links_whole_in_mixed_answers(answer: list[str]) -> None:
    text = " ".join(answer)
    reply = compose(_faq_decision(text), AB, variant_seed=0)
    assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH and reply.endswith(" ^AB")
    for token in reply.removesuffix(" ^AB").removesuffix(ELLIPSIS).split():
        if token.startswith("http"):
            assert token == URL


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=5))
def test_arbitrary_initials_are_valid_or_refused(text: str) -> None:
    try:
        author = Author.agent(text)
    except ValueError:
        assert not regex.fullmatch(r"[A-Z]{2,3}", text) or text == "BOT"
        return
    assert compose_reply("thanks", author, variant_seed=0).endswith(f" ^{text}")


# ---------------------------------------------------------------- check

GOOD = "Switch the Hub off, wait 30 seconds and switch it on again."

INVISIBLE_AND_FOREIGN = ["foreign_signature", "invalid_characters"]
SCOTLAND = "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "gbsct") + "\U000e007f"
HIDDEN_ON_A_FLAG = "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in "hi") + "\U000e007f"

CHECK_CASES = [
    ("a good reply", f"{GOOD} ^bot", BOT, {}, []),
    ("a good agent reply", f"{GOOD} ^AB", AB, {}, []),
    ("trailing spaces are fine", f"{GOOD} ^AB  \n", AB, {}, []),
    ("too long", "word " * 60 + "^bot", BOT, {}, ["too_long"]),
    ("a long URL counts 23", f"See {URL}{'/x' * 200} ^bot", BOT, {}, []),
    ("missing signature", GOOD, BOT, {}, ["missing_signature"]),
    ("signature glued to the text", f"{GOOD}^bot", BOT, {}, ["missing_signature"]),
    ("another agent's signature", f"{GOOD} ^CD", AB, {}, ["foreign_signature"]),
    ("the bot's signature on an agent's reply", f"{GOOD} ^bot", AB, {}, ["foreign_signature"]),
    ("an agent's signature on the bot's reply", f"{GOOD} ^AB", BOT, {}, ["foreign_signature"]),
    ("lower-case initials", f"{GOOD} ^ab", AB, {}, ["foreign_signature"]),
    ("two signatures", f"{GOOD} ^CD ^AB", AB, {}, ["foreign_signature"]),
    ("own signature twice", f"^AB {GOOD} ^AB", AB, {}, ["foreign_signature"]),
    ("only a signature", "^AB", AB, {}, ["empty"]),
    ("customer number", "Your account KT-48213907 is fine. ^AB", AB, {}, ["personal_data"]),
    ("phone number", "We'll call 07700 900123 today. ^AB", AB, {}, ["personal_data"]),
    ("e-mail address", "We wrote to jo.bloggs@example.co.uk. ^AB", AB, {}, ["personal_data"]),
    ("IBAN", "Paid to GB33 BUKB 2020 1555 5555 55. ^AB", AB, {}, ["personal_data"]),
    ("card number", "Your card 4111 1111 1111 1111 was refunded. ^AB", AB, {}, ["personal_data"]),
    ("card expiry and CVV", "Card exp 09/27, cvv 123 noted. ^AB", AB, {}, ["personal_data"]),
    ("foreign phone number", "We'll ring +49 30 1234567 later. ^AB", AB, {}, ["personal_data"]),
    ("address and postcode", "Engineer booked for 14 Acacia Avenue, SW1A 1AA. ^AB", AB, {}, ["personal_data"]),
    ("name", "Thanks, the account holder is Mr J Brown. ^AB", AB, {}, ["personal_data"]),
    ("account number", "Account 12345678901 is up to date. ^AB", AB, {}, ["personal_data"]),
    ("a DM may carry a phone number", "We'll call 07700 900123 today. ^AB", AB, {"dm": True}, []),
    ("a DM may carry an address", "Engineer booked for 14 Acacia Avenue. ^AB", AB, {"dm": True}, []),
    ("a DM never carries a card", "Card 4111 1111 1111 1111 noted. ^AB", AB, {"dm": True}, ["personal_data"]),
    ("a DM never carries a CVV", "Got the security code 4321, thanks. ^AB", AB, {"dm": True}, ["personal_data"]),
    ("banned phrase", f"Sorry for any inconvenience. {GOOD} ^AB", AB, {}, ["banned_phrase"]),
    (
        "banned phrase across spaces and case",
        f"SORRY  for any\ninconvenience, {GOOD} ^AB",
        AB,
        {},
        ["banned_phrase", "emphasis"],
    ),
    ("a banned word inside another word is fine", f"An unkindly slow Hub? {GOOD} ^AB", AB, {}, []),
    ("shouting", "PLEASE RESTART YOUR HUB AND WAIT ^AB", AB, {}, ["shouting"]),
    ("acronyms are not shouting", f"Your PUK and SIM are in the app. {GOOD} ^AB", AB, {}, []),
    ("duplicate", f"{GOOD} ^AB", AB, {"recent_replies": [f"  {GOOD.upper()}   ^CD"]}, ["duplicate"]),
    ("different recent reply", f"{GOOD} ^AB", AB, {"recent_replies": ["Something else. ^AB"]}, []),
    # Compared as check() reads the body: a non-Latin reply equal to a recent one is still a repeat.
    (
        "duplicate in Cyrillic",
        "Спасибо, мы проверим. ^AB",
        AB,
        {"recent_replies": ["Спасибо, мы проверим. ^CD"]},
        ["duplicate"],
    ),
    ("control characters", f"{GOOD}\x07 ^AB", AB, {}, ["invalid_characters"]),
    ("lone surrogate", f"{GOOD} \ud800 ^AB", AB, {}, ["invalid_characters"]),
    # Faking another agent's signature with invisible characters, look-alike letters or bidi controls.
    ("a zero-width space inside initials", f"{GOOD} ^B\u200bC ^AB", AB, {}, INVISIBLE_AND_FOREIGN),
    ("Cyrillic initials", f"{GOOD} ^\u0412\u0421 ^AB", AB, {}, ["foreign_signature"]),
    ("Cyrillic initials as the only signature", f"{GOOD} ^\u0412\u0421", AB, {}, ["foreign_signature"]),
    ("Greek letters that look like our own", f"{GOOD} ^\u0391\u0392", AB, {}, []),
    ("fullwidth initials", f"{GOOD} \uff3e\uff22\uff23 ^AB", AB, {}, ["foreign_signature"]),
    ("a bidi isolate around a signature", f"{GOOD} \u2066^BC\u2069 ^AB", AB, {}, INVISIBLE_AND_FOREIGN),
    ("a right-to-left override", f"{GOOD} \u202e^AB", AB, {}, ["invalid_characters"]),
    ("a zero-width space alone", "Switch the Hub\u200b off. ^AB", AB, {}, ["invalid_characters"]),
    ("hidden tag text after a flag", f"{GOOD} {HIDDEN_ON_A_FLAG} ^AB", AB, {}, ["invalid_characters"]),
    ("the Scottish flag is an emoji", f"{GOOD} {SCOTLAND} ^AB", AB, {}, []),
    ("a ZWJ emoji is fine", f"{GOOD} \U0001f469\u200d\U0001f4bb ^AB", AB, {}, []),
    # The guide's style rules: no capitals for emphasis, one exclamation mark at a time, at most one emoji.
    ("capitals for emphasis", f"We will NEVER ask for your password. {GOOD} ^AB", AB, {}, ["emphasis"]),
    ("acronyms are not emphasis", f"Plug the HDMI cable in and check the WIFI light. {GOOD} ^AB", AB, {}, []),
    ("exclamation marks in a row", f"Sorted!!! {GOOD} ^AB", AB, {}, ["exclamation"]),
    ("a question and an exclamation", f"Really?! {GOOD} ^AB", AB, {}, ["exclamation"]),
    ("two single exclamation marks", f"Hi! {GOOD} Hope that helps! ^AB", AB, {}, []),
    ("two emoji", f"{GOOD} \U0001f44d\U0001f600 ^AB", AB, {}, ["emoji"]),
    ("one emoji", f"{GOOD} \U0001f44d ^AB", AB, {}, []),
    ("a flag and an emoji", f"{GOOD} \U0001f1ec\U0001f1e7 \U0001f44d ^AB", AB, {}, ["emoji"]),
    (
        "capitals, !!! and two emoji",
        f"This is FIXED now!!! {GOOD} \U0001f389\U0001f389 ^AB",
        AB,
        {},
        ["emoji", "emphasis", "exclamation"],
    ),
    ("an accented name is not a look-alike", f"Ren\u00e9e here: {GOOD} ^AB", AB, {}, []),
]


@pytest.mark.parametrize(("name", "text", "author", "kwargs", "expected"), CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_check(name: str, text: str, author: Author, kwargs: dict[str, Any], expected: list[str]) -> None:
    assert sorted(set(_codes(text, author, **kwargs))) == sorted(expected)


SHOUTING = [
    ("PLEASE RESTART YOUR HUB", True),
    ("RESTART your HUB NOW and WAIT", True),  # mostly capitals, though no long run of them
    ("CANCEL THIS GARBAGE contract, three weeks without internet", True),  # a run of capitalised words
    ("I AM SO ANGRY", True),
    ("Your PUK and SIM are in the app", False),
    ("WIFI DOWN", False),  # too short to tell
    ("Read https://KESTREL.EXAMPLE/HELP/RESET-YOUR-HUB for help", False),  # links are not prose
    ("#KESTRELDOWN @KESTRELCARE is it down", False),  # nor are hashtags and mentions
    ("", False),
]


@pytest.mark.parametrize(("text", "shouting"), SHOUTING)
def test_shouting(text: str, shouting: bool) -> None:
    assert is_shouting(text) is shouting


def test_personal_data_violations_never_repeat_the_data() -> None:
    violations = check("Call 07700 900123 or mail jo@example.com about KT-48213907 ^AB", AB)
    (violation,) = violations
    assert "phone number" in violation.message and "e-mail" in violation.message
    assert "customer number" in violation.message
    for value in ("07700", "jo@example.com", "48213907"):
        assert value not in violation.message


def test_a_card_number_is_refused_with_the_reason_and_never_repeated() -> None:
    (violation,) = check("Refunded to 4111 1111 1111 1111, exp 09/27. ^AB", AB)
    assert violation.code == "personal_data"
    assert violation.message == (
        "Your reply contains a payment card number and a card expiry date: personal data is never posted in "
        "public. Move to DM."
    )
    (in_dm,) = check("Refunded to 4111 1111 1111 1111, call 07700 900123. ^AB", AB, dm=True)
    assert "payment card number" in in_dm.message and "not even in a DM" in in_dm.message
    assert "phone number" not in in_dm.message
    for message in (violation.message, in_dm.message):
        assert "4111" not in message and "09/27" not in message


def test_our_reference_codes_are_not_personal_data() -> None:
    codes = [reference_code(seed) for seed in range(2000)]
    assert "G34ZN" in codes  # it looks like a Glasgow postcode
    for code in codes:
        assert check(f"Hi! How can we help today? (ref {code}) ^bot", BOT) == []


def test_our_public_contacts_are_not_personal_data() -> None:
    data = _raw_guide()
    data["public_contacts"] = ["care@kestrel.example", "0330 123 4567"]
    guide = guide_from_dict(data)
    assert check("Mail care@kestrel.example or call 0330 123 4567. ^bot", BOT, guide=guide) == []
    assert _codes("Mail jo@kestrel.example. ^bot", BOT, guide=guide) == ["personal_data"]
    assert check("Call +44 330 123 4567 or 0330 1234567. ^bot", BOT, guide=guide) == []  # the same number
    assert _codes("Call 0330 123 4568. ^bot", BOT, guide=guide) == ["personal_data"]


@settings(max_examples=300, deadline=None)
@given(text=any_text, recent=st.lists(any_text, max_size=3), agent=st.one_of(st.none(), initials))
def test_check_never_crashes(text: str, recent: list[str], agent: str | None) -> None:
    author = BOT if agent is None else Author.agent(agent)
    violations = check(text, author, recent_replies=recent)
    assert all(violation.code and violation.message for violation in violations)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_shorten_fits_the_budget(text: str) -> None:
    assume(text)
    for budget in (10, 100):
        assert weighted_length(shorten(text, budget)) <= budget
