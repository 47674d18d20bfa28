"""Triage: every hard rule and every band, table-driven, plus properties that hold for any input."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.decision.answer_score import AnswerEvidence
from bot.decision.policy import Policy, load_policy
from bot.decision.tone import BOT, compose
from bot.decision.triage import Context, Decision, FaqEntry
from bot.decision.triage import decide as triage_decide
from bot.nlu.client import FALLBACK_INTENT, Entity, IntentScore, NluResult
from knowledge_base.search import Hit, SearchResult

POLICY = load_policy(Path(__file__).resolve().parents[1] / "data" / "policy.yml")  # fixed, hand-set
INTENTS = list(POLICY.intents)

ANSWER = "Switch the Hub off at the back, wait 30 seconds and switch it on again."
FAQ = {
    1: FaqEntry(1, "restart-router", ANSWER, ("router", "internet")),
    2: FaqEntry(2, "sports-pack", "Add the Sports pack in My Kestrel.", ("tv", "billing")),
    3: FaqEntry(3, "when-bill-arrives", "Bills arrive on the 1st.", ("billing",)),
}


def nlu(
    intent: str,
    confidence: float = 0.95,
    text: str = "how do I restart my hub",
    entities: tuple[Entity, ...] = (),
    *,
    fallback: bool = False,
) -> NluResult:
    ranking = (IntentScore(intent, confidence), IntentScore("complaint", (1 - confidence) / 2))
    if fallback:
        return NluResult(text, FALLBACK_INTENT, 0.45, (IntentScore(FALLBACK_INTENT, 0.45), *ranking), entities)
    return NluResult(text, intent, confidence, ranking, entities)


def search(score: float, margin: float = 0.3, entry_id: int = 1) -> SearchResult:
    slug = FAQ[entry_id].slug if entry_id in FAQ else "unpublished-entry"
    return SearchResult([Hit(entry_id, slug, score, "q"), Hit(9, "other", score - margin, "q2")], margin, 5)


def evidence(result: SearchResult | None) -> AnswerEvidence | None:
    """In these tables the answer model agrees with the search: its best entry is the top hit, scored alike."""
    top = result.top if result is not None else None
    return AnswerEvidence(top.entry_id, top.slug, top.score, top.score, 0.0, top.score) if top else None


def decide(parse: NluResult | None, result: SearchResult | None, context: Context, policy: Policy,
           **options: Any) -> Decision:  # fmt: skip
    options.setdefault("answer", evidence(result))
    return triage_decide(parse, result, context, policy, **options)


STRONG, MEDIUM, WEAK = search(0.93, 0.3), search(0.7, 0.1), search(0.3, 0.01)
PERSONAL = Entity("customer_number", "KT-48213907", 10, 21, "RegexEntityExtractor", "KT-48213907")
FRESH = Context()
KEYWORD = Context(addressed_to_us=False)
REPLIED = Context(bot_already_replied_in_interaction=True)
AFTER_ANSWER = Context(in_thread_after_bot_answer=True, bot_already_replied_in_interaction=True)

# (name, nlu, search, context, band, reply, flags that must be true)
RULES: list[tuple[str, NluResult | None, SearchResult | None, Context, str, str | None, tuple[str, ...]]] = [
    ("our own tweet", nlu("product_question"), STRONG, Context(from_our_account=True), "ignore", None, ()),
    ("our own tweet, NLU down", None, None, Context(from_our_account=True), "ignore", None, ()),
    ("an agent owns the thread", nlu("complaint"), STRONG, Context(human_owns_thread=True), "human", None, ()),
    ("agent owns, personal data", nlu("billing_issue", entities=(PERSONAL,)), None,
     Context(human_owns_thread=True), "human", None, ("dm_handover",)),
    ("\"I did.\" under an agent's reply", nlu("greeting", text="I did."), STRONG,
     Context(in_thread_after_agent_reply=True), "human", None, ()),
    ("thanks in a DM", nlu("thanks", text="thanks"), None, Context(direct_message=True), "human", None, ()),
    # In a DM the details are private already: nothing to move, no "don't post this here".
    ("an account number in a DM", nlu("billing_issue", text="my account number is 12345678901"), None,
     Context(direct_message=True), "human", None, ()),
    ("explicit STOP", nlu("complaint", text="STOP"), STRONG, FRESH, "ignore", None, ("opt_out_request",)),
    ("explicit opt-out with a problem", nlu("opt_out", text="stop replying and fix my internet"), STRONG, FRESH,
     "human", None, ("opt_out_request",)),
    ("an opt-out guessed by Rasa", nlu("opt_out", text="I've sent several DMs and no one responds!"), STRONG,
     FRESH, "human", None, ()),
    ("thanks with a problem", nlu("thanks", text="thanks but it's still broken"), None, FRESH, "human", None, ()),
    ("sarcastic thanks", nlu("thanks", text="thanks for nothing 🙄"), None, FRESH, "human", None, ()),
    ("thanks but still no signal under the bot's answer", nlu("thanks", text="thanks but still no signal"), STRONG,
     AFTER_ANSWER, "human", None, ("attach_thread",)),
    ("praise", nlu("praise", text="you lot are brilliant"), None, FRESH, "auto", "thanks", ()),
    ("a short follow-up as an opener", nlu("short_followup", text="yes"), None, FRESH, "human", None, ()),
    ("NLU down", None, STRONG, FRESH, "human", None, ()),
    ("NLU down, keyword hit", None, STRONG, KEYWORD, "human", None, ()),
    ("opt-out", nlu("opt_out", text="STOP"), STRONG, FRESH, "ignore", None, ("opt_out_request",)),
    ("opt-out in a keyword hit", nlu("opt_out", text="stop"), None, KEYWORD, "ignore", None, ("opt_out_request",)),
    ("spam", nlu("spam_offtopic", text="crypto giveaway"), STRONG, FRESH, "ignore", None, ()),
    ("spam in a keyword hit", nlu("spam_offtopic", text="crypto giveaway"), STRONG, KEYWORD, "ignore", None, ()),
    ("spam that says something is broken", nlu("spam_offtopic", text="wifi is down again lol"), STRONG, FRESH,
     "human", None, ()),
    ("personal data from Rasa", nlu("billing_issue", entities=(PERSONAL,)), STRONG, FRESH, "human", "dm_handover",
     ("dm_handover",)),
    ("personal data Rasa missed", nlu("billing_issue", text="mail me at jo@example.com"), STRONG, FRESH,
     "human", "dm_handover", ("dm_handover",)),
    ("personal data in an FAQ question", nlu("product_question", text="my number 07700 900123, voicemail?"),
     STRONG, FRESH, "human", "dm_handover", ("dm_handover",)),
    ("personal data in a keyword hit", nlu("billing_issue", entities=(PERSONAL,)), None, KEYWORD, "human", None,
     ("dm_handover",)),
    ("personal data after the bot replied", nlu("billing_issue", entities=(PERSONAL,)), None, REPLIED, "human", None,
     ("dm_handover",)),
    ("personal data, opted out", nlu("billing_issue", entities=(PERSONAL,)), None, Context(opted_out=True),
     "human", None, ("dm_handover",)),
    ("answer did not help, in the thread", nlu("answer_not_helpful", text="that didn't help"), STRONG,
     AFTER_ANSWER, "human", None, ("attach_thread",)),
    ("answer did not help, no bot answer before", nlu("answer_not_helpful"), STRONG, FRESH, "human",
     "handoff_ack", ()),
    ("keyword hit with a perfect FAQ match", nlu("product_question"), STRONG, KEYWORD, "human", None, ()),
    ("keyword hit, thanks", nlu("thanks"), None, KEYWORD, "human", None, ()),
    ("product question, strong match", nlu("product_question"), STRONG, FRESH, "auto", "faq_answer", ()),
    ("product question, medium match", nlu("product_question"), MEDIUM, FRESH, "approve", "faq_answer", ()),
    ("product question, weak match", nlu("product_question"), WEAK, FRESH, "human", None, ()),
    ("strong score, no margin", nlu("product_question"), search(0.93, 0.01), FRESH, "approve", "faq_answer", ()),
    ("product question, bot already replied", nlu("product_question"), STRONG, REPLIED, "approve", "faq_answer", ()),
    ("product question under the bot's answer", nlu("product_question"), STRONG, AFTER_ANSWER, "human",
     None, ("attach_thread",)),
    ("product question, opted out", nlu("product_question"), STRONG, Context(opted_out=True), "approve",
     "faq_answer", ()),
    ("pricing, strong match", nlu("pricing_offer"), STRONG, FRESH, "auto", "faq_answer", ()),
    ("moving house below its own threshold", nlu("moving_house"), search(0.86, 0.3), FRESH, "approve",
     "faq_answer", ()),
    ("moving house, very close match", nlu("moving_house"), search(0.95, 0.3), FRESH, "auto", "faq_answer", ()),
    ("billing issue: drafts only", nlu("billing_issue"), STRONG, FRESH, "approve", "faq_answer", ()),
    ("already tried: a draft", nlu("product_question", text="already restarted the hub twice, still nothing"),
     STRONG, FRESH, "approve", "faq_answer", ()),
    ("cancellation: drafts only", nlu("cancellation"), STRONG, FRESH, "approve", "faq_answer", ()),
    ("complaint", nlu("complaint"), STRONG, FRESH, "human", "handoff_ack", ()),
    ("complaint, bot already replied", nlu("complaint"), STRONG, REPLIED, "human", None, ()),
    ("outage", nlu("outage_report", text="is fibre down in Leeds"), None, FRESH, "human", "outage_ack", ()),
    ("an outage report without outage words", nlu("outage_report", text="who else thinks bake off went downhill"),
     None, FRESH, "human", None, ()),
    ("an unsure outage report", nlu("outage_report", 0.7, text="is fibre down in Leeds"), None, FRESH, "human",
     None, ()),
    ("outage, opted out", nlu("outage_report"), None, Context(opted_out=True), "human", None, ()),
    ("request for a person", nlu("request_human"), STRONG, FRESH, "human", "handoff_ack", ()),
    ("thanks", nlu("thanks", text="cheers, sorted"), None, FRESH, "auto", "thanks", ()),
    ("greeting", nlu("greeting", text="hiya"), None, FRESH, "auto", "greeting", ()),
    ("thanks after the bot's answer", nlu("thanks"), None, AFTER_ANSWER, "ignore", None, ()),
    ("thanks, opted out", nlu("thanks"), None, Context(opted_out=True), "ignore", None, ()),
    ("Rasa unsure, strong match", nlu("product_question", fallback=True), STRONG, FRESH, "approve", "faq_answer", ()),
    ("Rasa below the policy minimum", nlu("product_question", 0.5), STRONG, FRESH, "approve", "faq_answer", ()),
    ("Rasa unsure, weak match", nlu("product_question", fallback=True), WEAK, FRESH, "human", None, ()),
    ("Rasa unsure it is thanks", nlu("thanks", 0.5), None, FRESH, "human", None, ()),
    ("Rasa unsure it is spam", nlu("spam_offtopic", 0.5), WEAK, FRESH, "human", None, ()),
    ("knowledge base down", nlu("product_question"), None, FRESH, "human", None, ()),
    ("empty knowledge base", nlu("product_question"), SearchResult([], 0.0, 0), FRESH, "human", None, ()),
    ("best match not published", nlu("product_question"), search(0.95, 0.3, entry_id=42), FRESH, "human", None, ()),
    ("unknown intent", nlu("something_new"), STRONG, FRESH, "human", None, ()),
]


@pytest.mark.parametrize(
    ("name", "parse", "result", "context", "band", "reply", "flags"), RULES, ids=[rule[0] for rule in RULES]
)
def test_rules_and_bands(
    name: str,
    parse: NluResult | None,
    result: SearchResult | None,
    context: Context,
    band: str,
    reply: str | None,
    flags: tuple[str, ...],
) -> None:
    decision = decide(parse, result, context, POLICY, faq=FAQ)
    assert (decision.band, decision.reply) == (band, reply), decision.reasons
    for flag in ("dm_handover", "attach_thread", "opt_out_request"):
        assert getattr(decision, flag) == (flag in flags), flag
    assert decision.reasons and all(reason.endswith((".", ")")) for reason in decision.reasons)
    assert (decision.faq is not None) == (decision.reply == "faq_answer")
    assert 1 <= decision.priority <= 4


def test_an_answer_carries_the_published_faq_entry() -> None:
    decision = decide(nlu("product_question"), STRONG, FRESH, POLICY, faq=FAQ)
    assert decision.faq is not None
    assert (decision.faq.slug, decision.faq.entry_id, decision.faq.answer) == ("restart-router", 1, ANSWER)
    assert decision.faq.score == pytest.approx(0.93) and decision.faq.margin == pytest.approx(0.3)
    assert decision.intent == "product_question" and decision.confidence == pytest.approx(0.95)
    assert ANSWER in compose(decision, BOT, variant_seed=1)


def test_without_the_faq_answers_nothing_is_answered_from_the_faq() -> None:
    decision = decide(nlu("product_question"), STRONG, FRESH, POLICY)
    assert decision.band == "human" and decision.faq is None
    assert any("no published answer" in reason for reason in decision.reasons)


def test_personal_data_is_never_repeated_in_reasons_or_reply() -> None:
    text = "you charged me twice, account KT-48213907, call me on 07700 900123"
    decision = decide(nlu("billing_issue", text=text, entities=(PERSONAL,)), STRONG, FRESH, POLICY, faq=FAQ)
    assert decision.dm_handover and decision.reply == "dm_handover"
    said = " ".join(decision.reasons) + compose(decision, BOT, variant_seed=text)
    assert "48213907" not in said and "900123" not in said
    assert "a customer number and a phone number" in " ".join(decision.reasons)


def test_reasons_explain_why_an_answer_is_only_a_draft() -> None:
    reasons = " ".join(decide(nlu("product_question"), STRONG, REPLIED, POLICY, faq=FAQ).reasons)
    assert "already replied" in reasons and "restart-router" in reasons
    reasons = " ".join(decide(nlu("product_question"), MEDIUM, FRESH, POLICY, faq=FAQ).reasons)
    assert "score 0.70" in reasons and "not for an automatic answer" in reasons


def test_per_intent_thresholds_override_the_global_ones() -> None:
    rules = replace(POLICY.intents["product_question"], auto=POLICY.approve)
    lenient = replace(POLICY, intents={**POLICY.intents, "product_question": rules})
    assert decide(nlu("product_question"), MEDIUM, FRESH, lenient, faq=FAQ).band == "auto"
    assert decide(nlu("pricing_offer"), MEDIUM, FRESH, lenient, faq=FAQ).band == "approve"


# ---------------------------------------------------------------- priority and skill

PRIORITIES = [
    ("routine question", nlu("product_question", text="how do I restart my hub"), FRESH, 4),
    ("outage", nlu("outage_report", text="is fibre down in leeds"), FRESH, 2),
    ("complaint", nlu("complaint", text="this is not good enough"), FRESH, 2),
    ("capitals", nlu("product_question", text="WHY IS MY BROADBAND SO SLOW TODAY"), FRESH, 3),
    ("exclamation marks", nlu("product_question", text="how do I restart my hub!!!"), FRESH, 3),
    ("angry emoji", nlu("product_question", text="how do I restart my hub 😡"), FRESH, 3),
    ("one exclamation mark is calm", nlu("product_question", text="restart the hub!"), FRESH, 4),
    ("repeat contact", nlu("product_question"), Context(prior_contacts=2), 3),
    ("long wait", nlu("product_question"), Context(waiting_minutes=90), 3),
    ("angry outage, third contact, long wait",
     nlu("outage_report", text="STILL NO INTERNET AFTER 3 DAYS!!"), Context(prior_contacts=3, waiting_minutes=600), 1),
    ("personal data", nlu("product_question", entities=(PERSONAL,)), FRESH, 3),
    ("NLU down, waiting", None, Context(waiting_minutes=60), 2),
]


@pytest.mark.parametrize(("name", "parse", "context", "priority"), PRIORITIES, ids=[p[0] for p in PRIORITIES])
def test_priority_rises_with_urgency(name: str, parse: NluResult | None, context: Context, priority: int) -> None:
    decision = decide(parse, WEAK, context, POLICY, faq=FAQ)
    assert decision.priority == priority, decision.reasons
    assert any(reason.startswith(f"Priority {priority}") for reason in decision.reasons)


def test_priority_reasons_name_the_cues() -> None:
    parse = nlu("complaint", text="CANCEL THIS GARBAGE CONTRACT, 3 weeks without internet!! 😡")
    decision = decide(parse, None, Context(prior_contacts=4, waiting_minutes=180), POLICY)
    (line,) = [reason for reason in decision.reasons if reason.startswith("Priority")]
    for cue in ("a complaint", "written in capitals", "exclamation marks", "angry emoji", "4 earlier contacts",
                "waiting 3 hours"):  # fmt: skip
        assert cue in line


PRODUCT = Entity("product", "fibre", 0, 5, "RegexEntityExtractor", "fiber")
SKILLS = [
    ("a named product", nlu("billing_issue", entities=(PRODUCT,)), STRONG, "internet"),
    ("a product named by a longer lookup value", nlu("complaint", entities=(replace(PRODUCT, value="kestrel mobile"),)),
     None, "mobile"),
    ("the answer's FAQ tags", nlu("product_question"), search(0.93, 0.3, entry_id=2), "tv"),
    ("the intent's skill", nlu("billing_issue"), None, "billing"),
    ("the default", nlu("complaint"), None, "general"),
]


@pytest.mark.parametrize(("name", "parse", "result", "skill"), SKILLS, ids=[s[0] for s in SKILLS])
def test_skill(name: str, parse: NluResult, result: SearchResult | None, skill: str) -> None:
    assert decide(parse, result, FRESH, POLICY, faq=FAQ).skill == skill


# ---------------------------------------------------------------- properties

contexts = st.builds(
    Context,
    addressed_to_us=st.booleans(),
    from_our_account=st.booleans(),
    human_owns_thread=st.booleans(),
    bot_already_replied_in_interaction=st.booleans(),
    in_thread_after_bot_answer=st.booleans(),
    in_thread_after_agent_reply=st.booleans(),
    direct_message=st.booleans(),
    prior_contacts=st.integers(0, 10),
    waiting_minutes=st.floats(0, 10_000),
    opted_out=st.booleans(),
)
texts = st.sampled_from(["how do I restart my hub", "WHY!!! 😡", "KT-12345678 help", "mail a@b.co please", "hi"])
parses = st.one_of(
    st.none(),
    st.builds(nlu, st.sampled_from([*INTENTS, "unknown"]), st.floats(0, 1), texts, fallback=st.booleans()),
)
searches = st.one_of(
    st.none(),
    st.builds(search, st.floats(-1, 1), st.floats(0, 1), st.sampled_from([1, 2, 3, 42])),
)


@settings(max_examples=500, deadline=None)
@given(parse=parses, result=searches, context=contexts)
def test_hard_rules_hold_for_any_input(parse: NluResult | None, result: SearchResult | None, context: Context) -> None:
    decision = decide(parse, result, context, POLICY, faq=FAQ)
    assert decision.band in ("auto", "approve", "human", "ignore") and decision.reasons
    assert 1 <= decision.priority <= 4
    if context.from_our_account:
        assert decision.band == "ignore" and decision.reply is None and decision.ignore_reason == "own_tweet"
    elif context.human_owns_thread or context.in_thread_after_agent_reply or context.direct_message:
        assert decision.band == "human" and decision.reply is None  # for the person who holds it
    assert (decision.band == "ignore") == (decision.ignore_reason is not None)
    if not context.addressed_to_us:
        assert decision.band in ("human", "ignore") and not decision.bot_posts_now
    if context.bot_already_replied_in_interaction or context.in_thread_after_bot_answer or context.opted_out:
        assert not decision.bot_posts_now  # at most one automated reply; none after an opt-out
    if parse is None:
        assert decision.band in ("human", "ignore") and decision.reply is None
    elif parse.is_fallback or parse.confidence < POLICY.nlu_min_confidence:
        assert decision.band != "auto"
    if decision.band == "auto" or decision.dm_handover:
        assert parse is not None
    if decision.band == "approve":
        assert decision.reply == "faq_answer" and decision.faq is not None
    if decision.reply is not None and decision.band != "ignore":
        reply = compose(decision, BOT, variant_seed=0)
        assert "12345678" not in reply and "a@b.co" not in reply
    if parse is not None and any(c in parse.text for c in ("KT-", "@b.co")) and decision.band != "ignore":
        assert decision.dm_handover != context.direct_message and decision.band in ("human", "approve")


def test_decide_imports_no_io_library() -> None:
    code = (
        "import sys, bot.decision.triage, bot.decision.tone, bot.decision.policy, bot.decision.calibration, bot.ask\n"
        "bad = [m for m in ('httpx', 'sqlalchemy', 'faiss', 'torch', 'numpy', 'rasa', 'tweepy', 'bot.nlu.client',"
        " 'knowledge_base.search', 'bot.db') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_decision_to_dict_is_plain_data() -> None:
    decision: Decision = decide(nlu("product_question"), STRONG, FRESH, POLICY, faq=FAQ)
    data: dict[str, Any] = decision.to_dict()
    assert data["band"] == "auto" and data["faq"]["slug"] == "restart-router" and data["bot_posts_now"] is True
    assert isinstance(data["reasons"], list) and data["priority"] == 4


def test_policy_is_a_parameter_not_a_global(tmp_path: Any) -> None:
    never: Policy = replace(POLICY, intents={**POLICY.intents, "product_question": POLICY.intents["complaint"]})
    assert decide(nlu("product_question"), STRONG, FRESH, never, faq=FAQ).band == "human"


def test_without_the_answer_models_evidence_nothing_is_answered_from_the_faq() -> None:
    decision = triage_decide(nlu("product_question"), STRONG, FRESH, POLICY, faq=FAQ, answer=None)
    assert decision.band == "human" and decision.faq is None
    assert any("answer model has no score" in reason for reason in decision.reasons)


def test_personal_data_in_a_dm_is_not_urgent_for_being_public() -> None:
    policy = load_policy()
    parse = nlu("product_question", text="my number is 07700 900123, how do I set up voicemail?")
    in_public = decide(parse, None, FRESH, policy)
    in_dm = decide(parse, None, Context(direct_message=True), policy)
    assert in_public.dm_handover and not in_dm.dm_handover
    assert in_dm.priority > in_public.priority  # a larger number is less urgent
    assert not any("continue in DM" in reason for reason in in_dm.reasons)
