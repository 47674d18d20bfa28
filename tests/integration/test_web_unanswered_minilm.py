"""Unanswered questions grouped by meaning with the real embedding model (all-MiniLM-L6-v2): paraphrases of one
question land in one group whatever their wording, different questions stay apart, largest group first."""

from __future__ import annotations

from bot.web.unanswered import GROUP_SIMILARITY, clean_question, group_by_meaning
from knowledge_base.embedding import Embedder

ROAMING = (
    "@KestrelCare how much is roaming in Spain per day?",
    "what does it cost to use my phone in spain",
    "roaming charges spain?? going on holiday next week",
    "@KestrelCare what will I pay for using my mobile in Spain",
)
DEBIT = (
    "@KestrelCare can I change the date my direct debit comes out",
    "I want my direct debit taken on the 15th instead",
    "how do I move my payment date",
)
OUTAGE = (
    "@KestrelCare is the internet down in Leeds", "no broadband in leeds since 7am anyone else", "Leeds outage again?!"
)
SINGLES = ("@KestrelCare do you sell the iPhone 16", "my engineer never turned up today, furious")


def test_paraphrases_group_together_and_different_questions_stay_apart_minilm(minilm: Embedder) -> None:
    tweets = [*DEBIT, SINGLES[0], *OUTAGE, *ROAMING, SINGLES[1]]
    vectors = minilm.embed([clean_question(t) for t in tweets])
    groups = [frozenset(tweets[i] for i in group) for group in group_by_meaning(vectors, GROUP_SIMILARITY)]
    assert groups[0] == frozenset(ROAMING)
    assert set(groups[1:3]) == {frozenset(DEBIT), frozenset(OUTAGE)}
    assert set(groups[3:]) == {frozenset([SINGLES[0]]), frozenset([SINGLES[1]])}
