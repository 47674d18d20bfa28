"""Cues in the wording that triage reads besides the kind of message: explicit opt-outs, what makes a thank-you
more than one, signs that an FAQ answer will not help, and words that say a service is down."""

from __future__ import annotations

import pytest

from bot.decision.cues import (
    explicit_opt_out,
    not_social_cues,
    opt_out_only,
    outage_cue,
    problem_cues,
    wont_help_cues,
)

OPT_OUTS = [
    ("STOP", True, True), ("@KestrelCare stop", True, True), ("stop replying", True, True),
    ("no more bot replies pls", True, True), ("please stop tweeting me", True, True),
    ("stop replying and fix my internet", True, False), ("how do i stop marketing texts", False, False),
    ("how do I stop my direct debit", False, False), ("I've sent several DMs and no one responds!", False, False),
    ("One more question please", False, False), ("can't stop laughing at this", False, False),
]  # fmt: skip


@pytest.mark.parametrize(("text", "explicit", "only"), OPT_OUTS)
def test_an_opt_out_is_explicit(text: str, explicit: bool, only: bool) -> None:
    assert explicit_opt_out(text) is explicit
    assert opt_out_only(text) is only


SOCIAL = [
    ("@KestrelCare thanks!", True), ("cheers, sorted", True), ("you lot are brilliant", True), ("hiya", True),
    ("thanks but it's still broken", False), ("thanks for nothing", False), ("great service as always 🙄", False),
    ("thanks, any idea when it'll be fixed?", False), ("hello? anyone there? no internet", False),
    ("whoever designed your phone menu should have to use it every day", False),
]  # fmt: skip


@pytest.mark.parametrize(("text", "pure"), SOCIAL)
def test_a_social_reply_only_for_a_tweet_that_is_nothing_else(text: str, pure: bool) -> None:
    assert (not_social_cues(text) == []) is pure


WONT_HELP = [
    ("already restarted the hub twice, still nothing", True), ("hub keeps rebooting since the firmware update", True),
    ("landline has no dial tone, tried another handset", True), ("was told I'd get compensation", True),
    ("been charged £64 for roaming in spain", True), ("asked for a reset link x 3, no email", True),
    ("it won't work from the app", True),
    ("it says reset my password but i dont know my date of birth", True), ("my account has been hacked", True),
    ("someone changed my password and ordered a phone", True),
    ("locked out after too many tries, how do i get back in", False),
    ("how do I restart my hub?", False), ("where do I find my wifi password", False),
    ("how much is roaming in spain", False),
    ("already a week without internet", True), ("engineer didn't turn up again", True),
    ("the sports channels are still locked", True), ("turned it off and on again, no change", True),
    ("will it still work once the line goes digital", False), ("ordered yesterday, can i still cancel", False),
    ("am i still tied in?", False), ("how do i get the remote talking to the box again", False),
    ("im already a kestrel broadband customer, any discount on sim only", False),
    ("paid on the 21st but i havent received it yet", True), ("the driver did not leave the parcel", True),
    ("when will my order arrive", False),
]  # fmt: skip


@pytest.mark.parametrize(("text", "cued"), WONT_HELP)
def test_signs_that_the_faq_answer_will_not_help(text: str, cued: bool) -> None:
    assert bool(wont_help_cues(text)) is cued


@pytest.mark.parametrize(("text", "down"), [
    ("is fibre down in Leeds", True), ("no internet since 7am", True), ("nothing works", True),
    ("who else thinks bake off has gone downhill", False), ("are you lot hiring?", False),
])  # fmt: skip
def test_outage_words(text: str, down: bool) -> None:
    assert outage_cue(text) is down


@pytest.mark.parametrize(("text", "maybe"), [
    ("Tf is wrong with my keyboard", True), ("When’s season 3 going to be on?", True),
    ("Give me and the 50,000 other people our bags", True), ("crypto giveaway click here", False),
    ("who else thinks bake off has gone downhill", False), ("なんかAmazon支払い方法変わりました？？", True),
])  # fmt: skip
def test_spam_is_dropped_only_without_a_sign_of_a_problem(text: str, maybe: bool) -> None:
    assert bool(problem_cues(text)) is maybe
