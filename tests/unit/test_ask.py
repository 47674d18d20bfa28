"""`carebot ask`'s result for one tweet: decision, reasons and a valid reply (or a hand-off) for any input,
hostile ones included; a reply that breaks the tone rules is never posted by the bot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.ask import ask_result as ask_result_of
from bot.ask import describe, plan_reply
from bot.decision.answer_score import AnswerEvidence
from bot.decision.policy import load_policy
from bot.decision.tone import BOT, check, compose_reply
from bot.decision.triage import Decision, FaqChoice, FaqEntry
from bot.nlu.client import Entity, IntentScore, NluResult
from bot.nlu.text import clean_for_nlu
from knowledge_base.search import Hit, SearchResult
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

POLICY = load_policy(Path(__file__).resolve().parents[1] / "data" / "policy.yml")  # fixed, hand-set
FAQ = {1: FaqEntry(1, "restart-router", "Switch the Hub off, wait 30 seconds and switch it on again.", ("router",))}
STRONG = SearchResult([Hit(1, "restart-router", 0.95, "q"), Hit(2, "other", 0.5, "q")], 0.45, 4)


# The answer model's evidence for STRONG: its top hit, scored alike.
ANSWER = AnswerEvidence(1, "restart-router", 0.95, 0.95, 0.0, 0.95)


def ask_result(*args: Any, **options: Any) -> Any:
    options.setdefault("answer", ANSWER if args[2] is not None else None)
    return ask_result_of(*args, **options)


HOSTILE = [
    "<script>alert('x')</script> how do I restart my hub",
    '"><img src=x onerror=alert(1)> KT-48213907',
    "[click](javascript:alert(1)) **bold** `code`",
    "\u202eevil bidi\u202c and zero\u200bwidth",
    "a" * 5000,
    "😡" * 300,
    "﷽" * 50,
    "\x00\x01\x1b[31m red",
    "@KestrelCare " * 40,
    "DROP TABLE tweets; --",
    "{answer} {greeting} %s %(x)s",
    "\ud83d lone surrogate",
]


def _parse(text: str, intent: str = "product_question", confidence: float = 0.95) -> NluResult:
    cleaned, truncated = clean_for_nlu(text, 2000)
    entities: tuple[Entity, ...] = ()
    if "KT-48213907" in cleaned:
        start = cleaned.index("KT-48213907")
        entities = (Entity("customer_number", "KT-48213907", start, start + 11, "RegexEntityExtractor", "KT-48213907"),)
    return NluResult(cleaned, intent, confidence, (IntentScore(intent, confidence),), entities, truncated)


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("intent", ["product_question", "complaint", "thanks", "spam_offtopic"])
def test_hostile_input_gets_a_decision_and_a_valid_reply_or_none(text: str, intent: str) -> None:
    assessment = ask_result(text, _parse(text, intent), STRONG, POLICY, faq=FAQ)
    result = assessment.to_dict()
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # plain data, printable as UTF-8
    decision = result["decision"]
    assert decision["band"] in ("auto", "approve", "human", "ignore") and decision["reasons"]
    reply = result["reply"]
    if reply is not None:
        assert weighted_length(reply) <= MAX_WEIGHTED_LENGTH and reply.endswith(" ^bot")
        assert check(reply, BOT) == []
        for fragment in ("<script", "onerror", "javascript:", "48213907", "DROP TABLE"):
            assert fragment not in reply
    assert "48213907" not in " ".join(decision["reasons"])
    describe(assessment)


def test_without_nlu_the_result_is_a_hand_off_with_the_error() -> None:
    result = ask_result(
        "is fibre down?", None, STRONG, POLICY, faq=FAQ, nlu_error="the NLU server is unavailable"
    ).to_dict()
    assert result["decision"]["band"] == "human" and result["reply"] is None and result["nlu"] is None
    assert result["nlu_error"] == "the NLU server is unavailable"
    assert result["policy_version"] == POLICY.version


def test_an_auto_answer_is_posted_by_the_bot_and_a_draft_waits_for_an_agent() -> None:
    auto = ask_result("how do I restart my hub", _parse("how do I restart my hub"), STRONG, POLICY, faq=FAQ).to_dict()
    assert auto["decision"]["band"] == "auto" and auto["reply_status"] == "bot_posts"
    assert FAQ[1].answer in auto["reply"]
    assessment = ask_result("billing?", _parse("billing?", "billing_issue"), STRONG, POLICY, faq=FAQ)
    draft = assessment.to_dict()
    assert draft["decision"]["band"] == "approve" and draft["reply_status"] == "agent_sends"
    assert "draft for an agent" in describe(assessment)


def test_the_bot_never_posts_an_answer_that_breaks_the_tone_rules() -> None:
    choice = FaqChoice(1, "call-us", 0.95, 0.4, "Call Jo on 07700 900123 about it.")
    planned = plan_reply(Decision("auto", ("r.",), reply="faq_answer", faq=choice), variant_seed=1)
    assert planned.decision.band == "approve" and planned.text is not None
    assert [v.code for v in planned.violations] == ["personal_data"]
    assert "breaks the tone rules" in planned.decision.reasons[-1]


def test_an_acknowledgement_whose_wordings_were_all_used_recently_is_still_posted_distinct() -> None:
    used = [compose_reply("handoff_ack", BOT, variant_seed=seed) for seed in range(60)]
    planned = plan_reply(Decision("human", ("r.",), reply="handoff_ack"), variant_seed=1, recent_replies=used)
    assert planned.decision.band == "human" and planned.decision.reply == "handoff_ack"
    assert planned.text is not None and planned.text not in used and planned.violations == ()


def test_a_draft_with_a_problem_stays_a_draft_and_shows_the_violation() -> None:
    choice = FaqChoice(1, "x", 0.7, 0.1, "SWITCH THE HUB OFF AND ON AGAIN NOW")
    planned = plan_reply(Decision("approve", ("r.",), reply="faq_answer", faq=choice), variant_seed=1)
    assert planned.decision.band == "approve" and [v.code for v in planned.violations] == ["shouting"]
