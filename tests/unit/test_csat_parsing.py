"""Reading a customer's answer to the satisfaction question (bot/csat.py read_score and wants_no_surveys): what
is a score, what is not (it goes to triage instead), and the opt-outs; the sample and the question's wording."""

from __future__ import annotations

import pytest

from bot.csat import CLOSES, QUESTIONS, SCORE_WORDS, compose_message, read_score, sampled, wants_no_surveys
from bot.decision.tone import BOT, RecentReplies, ToneGuide, check
from handoff.csat import MAX_COMMENT_CHARS

SCORES = [
    ("4", 4, None),
    ("5/5", 5, None),
    ("4 out of 5", 4, None),
    ("3 of 5", 3, None),
    ("4 stars", 4, None),
    ("2 - quick but it took three calls", 2, "quick but it took three calls"),
    ("4 - quick and friendly", 4, "quick and friendly"),
    ("4 thanks", 4, "thanks"),
    ("5!", 5, None),
    ("  1.  slow  ", 1, "slow"),
    ("@KestrelCare 5", 5, None),
    ("4\ufe0f\u20e3", 4, None),  # the keycap emoji 4️⃣
    ("⭐⭐⭐", 3, None),
    ("five", 5, None),
    ("Five stars", 5, None),
    ("five out of five", 5, None),
    ("two - too slow", 2, "too slow"),
    ("great", 5, None),
    ("Great, thanks!", 5, "thanks"),
    ("very good", 5, None),
    ("OK", 3, None),
    ("meh", 3, None),
    ("poor", 2, None),
    ("terrible", 1, None),
    ("very poor.", 1, None),
    ("good thank you", 4, "thank you"),
]

NOT_SCORES = [
    "",
    "   ",
    "0",
    "6",
    "10",
    "3.5",
    "4-5",
    "4 - 5",
    "5G is down again",
    "4g not working",
    "4 days without internet",
    "2 or 3 times a day it drops",
    "3 engineers and still nothing",
    "45 minutes on hold",
    "not bad",
    "good grief my bill is wrong again",
    "great, still no internet",
    "goodness",
    "fine-tuned nonsense",
    "my router is 5 years old",
    "why did you ask?",
    "4 " + "x" * 700,  # too long to be a score
]


@pytest.mark.parametrize(("text", "score", "comment"), SCORES)
def test_scores_are_read_with_their_comment(text: str, score: int, comment: str | None) -> None:
    reply = read_score(text)
    assert reply is not None, text
    assert (reply.score, reply.comment) == (score, comment)


@pytest.mark.parametrize("text", NOT_SCORES)
def test_anything_ambiguous_is_not_a_score(text: str) -> None:
    assert read_score(text) is None


def test_every_score_word_reads_as_its_score_alone_and_with_thanks() -> None:
    for word, score in SCORE_WORDS.items():
        assert read_score(word) == read_score(word.upper()) != None, word  # noqa: E711
        assert read_score(word).score == score  # type: ignore[union-attr]
        assert read_score(f"{word}, thanks").score == score  # type: ignore[union-attr]


def test_a_comment_is_bounded_and_cleaned_of_invisible_and_control_characters() -> None:
    reply = read_score("5 - lovely\u202e\u0007 people " + "a" * 520)
    assert reply is not None and reply.score == 5
    assert reply.comment is not None and len(reply.comment) <= MAX_COMMENT_CHARS
    assert "\u202e" not in reply.comment and "\u0007" not in reply.comment
    assert reply.comment.startswith("lovely")


@pytest.mark.parametrize(
    "text", ["STOP", "stop", "Unsubscribe", "opt out", "no more surveys", "please stop messaging me", "stop asking"]
)
def test_opt_outs_in_an_answer(text: str) -> None:
    assert wants_no_surveys(text)
    assert read_score(text) is None


@pytest.mark.parametrize("text", ["stop charging me twice", "4", "don't stop the good work", "great"])
def test_not_opt_outs(text: str) -> None:
    assert not wants_no_surveys(text)


def test_the_sample_is_a_fixed_share_of_tickets() -> None:
    ids = range(1, 5001)
    assert all(sampled(i, 100) for i in ids) and not any(sampled(i, 0) for i in ids)
    share = sum(sampled(i, 30) for i in ids) / len(ids)
    assert 0.27 < share < 0.33
    assert [sampled(i, 30) for i in ids] == [sampled(i, 30) for i in ids]  # the same answer every time
    assert all(sampled(i, 60) for i in ids if sampled(i, 30))  # a larger share keeps the smaller one's tickets


def test_the_question_and_the_close_pass_the_tone_check_signed_by_the_bot() -> None:
    guide = ToneGuide.load()
    for variants, dm in ((QUESTIONS, True), (CLOSES, False)):
        for body in variants:
            text = f"{body} {guide.signature(BOT)}"
            assert check(text, BOT, guide=guide, dm=dm) == [], text


def test_wordings_differ_while_recent_ones_are_avoided_then_a_reference_keeps_them_distinct() -> None:
    guide = ToneGuide.load()
    recent = RecentReplies(guide=guide)
    texts = []
    for n in range(len(CLOSES) + 3):
        text = compose_message(CLOSES, f"close-{n}", recent=recent, guide=guide, dm=False)
        assert text is not None and text.endswith(" ^bot")
        assert text not in recent
        recent.add(text)
        texts.append(text)
    assert len(set(texts)) == len(texts)
    assert {t.removesuffix(" ^bot") for t in texts[: len(CLOSES)]} == set(CLOSES)
    assert all("(ref " in t for t in texts[len(CLOSES) :])
