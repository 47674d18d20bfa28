"""Triage: what happens to one incoming tweet. The bot answers (auto), drafts for an agent (approve), a person
takes it (human), or nobody replies (ignore, always for a named reason), with the reasons in words an agent reads.

`decide` is a pure function of the NLU parse, the FAQ search, the answer model's evidence, the tweet's place in
its conversation and the policy: no I/O. Hard rules come first; the policy's calibrated thresholds decide the rest.

Where a tweet stands decides most of it:
- an opener addressed to us may be answered from the FAQ, greeted or thanked, or acknowledged;
- a reply under the bot's answer never gets a second automated reply: a pure thank-you closes the conversation,
  anything else goes to a person with the thread;
- a reply under an agent's reply, in a thread a person holds, or in a DM is for that person: the bot says nothing.
A greeting or thank-you gets a social reply only when it is nothing else (no problem, question or sarcasm), and an
opt-out is recorded only when the customer asks for it in so many words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bot.decision.cues import (
    anger_cues,
    explicit_opt_out,
    mentions_others,
    not_social_cues,
    opt_out_only,
    outage_cue,
    problem_cues,
    wont_help_cues,
)
from bot.decision.personal_data import PERSONAL_DATA_ENTITIES, describe_kinds, personal_data_kinds
from bot.decision.policy import MOST_URGENT, ROUTINE, Band, Policy, Situation, Thresholds

if TYPE_CHECKING:  # for annotations only: importing them at run time would pull in httpx, SQLAlchemy and faiss
    from bot.decision.answer_score import AnswerEvidence
    from bot.nlu.client import NluResult
    from knowledge_base.search import SearchResult

Position = Literal["opener", "after_bot_answer", "after_agent_reply", "held_by_person", "dm"]
IgnoreReason = Literal["own_tweet", "spam", "opt_out", "duplicate", "closing_thanks"]
IGNORE_REASONS: dict[str, str] = {
    "own_tweet": "one of our own tweets",
    "spam": "spam or off-topic",
    "opt_out": "an explicit opt-out",
    "duplicate": "a repeat of a tweet already handled",
    "closing_thanks": "a thank-you that closes a conversation the bot answered",
}

# How reasons name each kind of message.
INTENT_PHRASES = {
    "greeting": "a greeting",
    "thanks": "a thank-you",
    "praise": "praise",
    "short_followup": "a short follow-up",
    "providing_info": "information they were asked for",
    "product_question": "a product question",
    "pricing_offer": "a question about prices or offers",
    "outage_report": "an outage report",
    "tech_support": "a technical problem",
    "billing_issue": "a billing issue",
    "account_access": "a problem getting into an account",
    "contract_change": "a contract change",
    "cancellation": "a cancellation",
    "moving_house": "a house move",
    "order_status": "a question about an order",
    "complaint": "a complaint",
    "request_human": "a request to talk to a person",
    "answer_not_helpful": "a reply saying our answer did not help",
    "opt_out": "a request to stop replying",
    "spam_offtopic": "spam or off-topic",
}
SOCIAL_KINDS = ("greeting", "thanks", "praise")
SOCIAL_REPLY: dict[str, Situation] = {"greeting": "greeting", "thanks": "thanks", "praise": "thanks"}
REPLY_KINDS: dict[str, str] = {"faq_answer": "faq"}  # Situation → reply_kind (the others keep their name)


def intent_phrase(intent: str) -> str:
    return INTENT_PHRASES.get(intent, f"'{intent.replace('_', ' ')}'")


@dataclass(frozen=True)
class Context:
    """What intake knows about the conversation a tweet belongs to."""

    addressed_to_us: bool = True  # an @mention, a reply to us or a DM; False: found by a keyword search
    from_our_account: bool = False
    human_owns_thread: bool = False  # a person holds this conversation (an open ticket)
    bot_already_replied_in_interaction: bool = False
    in_thread_after_bot_answer: bool = False  # a reply under an answer the bot posted
    in_thread_after_agent_reply: bool = False  # a reply under a reply an agent posted
    direct_message: bool = False
    prior_contacts: int = 0  # earlier conversations with this customer (recent ones)
    waiting_minutes: float = 0.0  # since the customer's first unanswered tweet
    opted_out: bool = False  # the customer asked for no automated replies
    duplicate_of: str | None = None  # an earlier tweet of theirs with the same words, already handled

    @property
    def position(self) -> Position:
        if self.direct_message:
            return "dm"
        if self.human_owns_thread:
            return "held_by_person"
        if self.in_thread_after_agent_reply:
            return "after_agent_reply"
        if self.in_thread_after_bot_answer:
            return "after_bot_answer"
        return "opener"


@dataclass(frozen=True)
class FaqEntry:
    """What triage needs of one published FAQ entry (the live version)."""

    entry_id: int
    slug: str
    answer: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FaqChoice:
    """The FAQ entry a decision answers with."""

    entry_id: int
    slug: str
    score: float  # the answer score (bot/decision/answer_score.py)
    margin: float  # the FAQ search's margin between its two best entries
    answer: str
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id, "slug": self.slug, "score": round(self.score, 4),
            "margin": round(self.margin, 4), "tags": list(self.tags),
        }  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """band: auto (the bot posts `reply` now), approve (`reply` is a draft an agent sends with one click),
    human (a ticket; `reply`, if any, is an acknowledgement the bot posts now), ignore (no reply and no ticket,
    for the reason in `ignore_reason`)."""

    band: Band
    reasons: tuple[str, ...]
    reply: Situation | None = None  # the tone template to compose
    faq: FaqChoice | None = None
    intent: str | None = None  # the kind of message, None when unclear or unknown
    confidence: float = 0.0  # the NLU confidence in that kind (0 without a parse)
    priority: int = ROUTINE  # 1 = most urgent … 4 = routine
    skill: str = "general"
    dm_handover: bool = False  # personal data was posted in public: continue in DM
    attach_thread: bool = False  # the agent needs the whole thread (our answer did not help)
    opt_out_request: bool = False  # record that the customer wants no automated replies
    ignore_reason: IgnoreReason | None = None  # set exactly when band is ignore
    position: Position = "opener"
    answer: AnswerEvidence | None = None  # the answer model's best entry, whatever the band

    @property
    def bot_posts_now(self) -> bool:
        """Whether the bot itself posts `reply` now (an answer, or an acknowledgement while a person takes over)."""
        return self.reply is not None and self.band in ("auto", "human")

    @property
    def reply_kind(self) -> str | None:
        """The kind of public reply the bot posts now (faq, greeting, thanks, outage_ack, handoff_ack,
        dm_handover), or None."""
        if not self.bot_posts_now or self.reply is None:
            return None
        return REPLY_KINDS.get(self.reply, self.reply)

    def to_dict(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "reasons": list(self.reasons),
            "reply": self.reply,
            "reply_kind": self.reply_kind,
            "bot_posts_now": self.bot_posts_now,
            "faq": self.faq.to_dict() if self.faq else None,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "priority": self.priority,
            "skill": self.skill,
            "dm_handover": self.dm_handover,
            "attach_thread": self.attach_thread,
            "opt_out_request": self.opt_out_request,
            "ignore_reason": self.ignore_reason,
            "position": self.position,
            "answer": self.answer.to_dict() if self.answer else None,
        }


_WORDS = re.compile(r"[a-z0-9]+")


def _area_skill(value: str, policy: Policy) -> str | None:
    value = value.lower().strip()
    if value in policy.skill_areas:
        return policy.skill_areas[value]
    for word in _WORDS.findall(value):
        if word in policy.skill_areas:
            return policy.skill_areas[word]
    return None


def _skill(nlu: NluResult | None, intent: str | None, tags: tuple[str, ...], policy: Policy) -> str:
    """The product area: a product the customer names, else the FAQ entry's tags, else the intent's skill."""
    products = nlu.entity_values("product") if nlu else []
    for value in [*products, *tags]:
        skill = _area_skill(value, policy)
        if skill:
            return skill
    return policy.intent(intent).skill or policy.default_skill


def _priority(
    start: int, why: list[str], cues: list[str], context: Context, policy: Policy, *, personal_data: bool = False
) -> tuple[int, str]:
    rules = policy.priority
    priority = start
    why = list(why)
    if personal_data and rules.personal_data < priority:
        priority = rules.personal_data
        why.append("personal data posted in public")
    if cues and rules.anger:
        priority -= rules.anger
        why += cues
    if context.prior_contacts >= rules.repeat_contacts:
        priority -= 1
        why.append(f"{context.prior_contacts} earlier contacts")
    if context.waiting_minutes >= rules.long_wait_minutes:
        priority -= 1
        why.append(f"waiting {_duration(context.waiting_minutes)}")
    priority = max(MOST_URGENT, min(ROUTINE, priority))
    return priority, f"Priority {priority} (1 is most urgent, 4 routine)" + (f": {'; '.join(why)}." if why else ".")


def _duration(minutes: float) -> str:
    if minutes < 120:
        return f"{int(minutes)} minutes"
    if minutes < 48 * 60:
        return f"{int(minutes // 60)} hours"
    return f"{int(minutes // (24 * 60))} days"


def _automation_blocked(context: Context) -> str | None:
    """Why the bot may not post anything automatically in this conversation, or None when it may."""
    if context.opted_out:
        return "The customer has opted out of automated replies."
    if context.bot_already_replied_in_interaction or context.in_thread_after_bot_answer:
        return "The bot has already replied in this conversation, and it replies at most once."
    return None


def _read_intent(nlu: NluResult, policy: Policy, reasons: list[str]) -> str | None:
    """The kind of message when Rasa is sure enough of it, else None; says which in `reasons`."""
    top = nlu.top_intent
    if nlu.is_fallback:
        reasons.append(
            f"Rasa is unsure what kind of message this is (best guess: {intent_phrase(top.name)}, "
            f"confidence {top.confidence:.2f})."
        )
        return None
    if nlu.confidence < policy.nlu_min_confidence:
        reasons.append(
            f"Rasa reads this as {intent_phrase(nlu.intent)}, but only with confidence {nlu.confidence:.2f} "
            f"(below {policy.nlu_min_confidence:.2f}), so the kind of message is unclear."
        )
        return None
    reasons.append(f"Rasa reads this as {intent_phrase(nlu.intent)} (confidence {nlu.confidence:.2f}).")
    return nlu.intent


def _personal_data(text: str, nlu: NluResult | None) -> list[str]:
    """The kinds of personal data in the tweet: carebot's own detectors, plus what Rasa's regexes found."""
    found = personal_data_kinds(text)
    if nlu is not None:
        found += [e.entity for e in nlu.entities if e.entity in PERSONAL_DATA_ENTITIES and e.entity not in found]
    return found


def _faq_choice(
    answer: AnswerEvidence | None, search: SearchResult | None, faq: Mapping[int, FaqEntry] | None,
    reasons: list[str],
) -> FaqChoice | None:  # fmt: skip
    """The answer model's entry with its published answer, or None (saying why in `reasons`)."""
    if search is None:
        reasons.append("There is no FAQ search result (the knowledge base is unavailable), so no FAQ answer.")
        return None
    top = search.top
    if top is None:
        reasons.append("The FAQ has no published entries to match.")
        return None
    if answer is None:
        reasons.append("The answer model has no score for this tweet, so no FAQ answer.")
        return None
    entry_id, slug, score = answer.entry_id, answer.slug, answer.score
    entry = faq.get(entry_id) if faq is not None else None
    if entry is None:
        reasons.append(f"The closest FAQ entry, {slug}, has no published answer to use.")
        return None
    margin = search.margin if top is not None and top.entry_id == entry_id else 0.0
    return FaqChoice(entry_id, slug, score, margin, entry.answer, entry.tags)


def _match(choice: FaqChoice, answer: AnswerEvidence) -> str:
    detail = f"head {answer.head_probability:.2f}, centroid {answer.centroid_cosine:.2f}"
    return f"The best FAQ entry is {choice.slug} (answer score {choice.score:.2f}: {detail})"


def decide(
    nlu: NluResult | None,
    search: SearchResult | None,
    context: Context,
    policy: Policy,
    *,
    faq: Mapping[int, FaqEntry] | None = None,
    answer: AnswerEvidence | None = None,
    text: str | None = None,
    no_parse_reason: str | None = None,
) -> Decision:
    """Decide what happens to one tweet. `faq` maps entry ids to published entries; `answer` is the answer
    model's best entry for the tweet (without both, no FAQ answer is given). `text` is the tweet (default: the
    parsed text): personal data and opt-outs are found in it by carebot's own code, with or without a parse.
    `nlu` is None when Rasa gave no parse (`no_parse_reason` says why, in words for agents; the default is that
    the NLU service may be down)."""
    text = text if text is not None else (nlu.text if nlu else "")
    position = context.position
    skill = policy.default_skill
    if context.from_our_account:
        return Decision(
            "ignore", ("This is one of our own tweets: the bot never replies to itself.",), skill=skill,
            ignore_reason="own_tweet", position=position,
        )  # fmt: skip

    reasons: list[str] = []
    kinds = _personal_data(text, nlu)
    # Personal data in a direct message is where it belongs: nothing to move, and no urgency for being public.
    public_kinds = [] if context.direct_message else kinds
    opting_out = explicit_opt_out(text)
    cues = anger_cues(text)
    intent = _read_intent(nlu, policy, reasons) if nlu is not None else None
    confidence = (nlu.confidence if intent else nlu.top_intent.confidence) if nlu is not None else 0.0
    rules = policy.intent(intent)
    start = rules.priority if intent else policy.priority.unclear
    start_why = [intent_phrase(intent)] if intent and start < ROUTINE else []
    blocked = _automation_blocked(context)

    def human(
        *, reply: Situation | None = None, attach_thread: bool = False, priority_start: int | None = None,
        choice: FaqChoice | None = None, band: Band = "human",
    ) -> Decision:  # fmt: skip
        priority, why = _priority(
            start if priority_start is None else priority_start, start_why, cues, context, policy,
            personal_data=bool(public_kinds),
        )  # fmt: skip
        return Decision(
            band, (*reasons, why), reply="faq_answer" if band == "approve" else reply, faq=choice, intent=intent,
            confidence=confidence, priority=priority,
            skill=_skill(nlu, intent, choice.tags if choice else (), policy), dm_handover=bool(public_kinds),
            attach_thread=attach_thread, opt_out_request=opting_out, position=position, answer=answer,
        )  # fmt: skip

    def ignore(reason: IgnoreReason) -> Decision:
        return Decision(
            "ignore", tuple(reasons), intent=intent, confidence=confidence, skill=skill, ignore_reason=reason,
            opt_out_request=opting_out, position=position, answer=answer,
        )  # fmt: skip

    if kinds and context.direct_message:
        reasons.append(f"The message has {describe_kinds(kinds)}, which is fine in a DM: it stays private.")
    elif kinds:
        reasons.append(f"The tweet shows {describe_kinds(kinds)}: continue in DM and never repeat it.")
    if opting_out:
        reasons.append("They ask us in so many words to stop replying: the opt-out is recorded.")

    # A conversation a person has: the tweet is theirs to read, the bot says nothing.
    if position in ("held_by_person", "after_agent_reply", "dm"):
        where = {
            "held_by_person": "A person holds this thread: the message joins their ticket and the bot stays silent.",
            "after_agent_reply": "It replies to an agent's reply: it goes back to the team, and the bot stays silent.",
            "dm": "It is a direct message: a person answers it.",
        }[position]
        reasons.append(where)
        return human(priority_start=start if intent not in (*SOCIAL_KINDS, "short_followup") else ROUTINE)

    if opting_out and opt_out_only(text):
        reasons.append("Nothing else in the tweet needs an answer.")
        return ignore("opt_out")
    if opting_out:
        reasons.append("The tweet says more than that: a person reads it, without automated replies.")
        return human(priority_start=ROUTINE)

    if nlu is None:
        reasons.append(
            no_parse_reason or "There is no NLU parse (the NLU service may be down), so nothing is automatic."
        )
        if not context.addressed_to_us:
            reasons.append("It was found by a keyword search, not addressed to us: only a person may reply.")
        start_why = ["kind of message unknown"]
        return human()

    if intent == "opt_out":
        reasons.append(
            "It is not an explicit request to stop replying, so no opt-out is recorded: a person reads it."
        )
        return human(priority_start=ROUTINE)

    if context.duplicate_of is not None and context.addressed_to_us:
        reasons.append(f"They sent the same words before (tweet {context.duplicate_of}), and that was handled.")
        return ignore("duplicate")

    if intent == "spam_offtopic":
        maybe_problem = problem_cues(text) or wont_help_cues(text) or outage_cue(text)
        if confidence >= policy.spam_min_confidence and not maybe_problem:
            reasons.append("Spam or off-topic, with no sign of a customer's problem: nobody replies.")
            return ignore("spam")
        reasons.append(
            "It may be spam or off-topic, but not surely enough to drop it: a person glances at it (low priority)."
        )
        return human(priority_start=ROUTINE)

    social = intent in SOCIAL_KINDS
    not_social = not_social_cues(text) if social else []
    if position == "after_bot_answer":
        if social and not not_social:
            reasons.append("A thank-you under the bot's answer, and nothing else: the conversation is closed.")
            return ignore("closing_thanks")
        reasons.append("It replies to the bot's answer with more than thanks: a person takes over, with the thread.")
        start_why = [*start_why, "after the bot's answer"]
        return human(attach_thread=True, priority_start=min(start, 3))

    if not context.addressed_to_us:
        reasons.append("It was found by a keyword search, not addressed to us: only a person may reply (X rules).")
        return human(priority_start=start)

    if kinds:
        if blocked:
            reasons.append(blocked)
            return human()
        reasons.append("The bot asks them to move to DM; a person takes it from there.")
        return human(reply="dm_handover")

    if social:
        if not_social:
            more = ", ".join(not_social)
            reasons.append(f"It is more than {intent_phrase(intent or '')}: {more}. A person reads it.")
            return human(priority_start=3)
        if blocked:
            reasons.append(f"{blocked} A {intent_phrase(intent or '')} alone needs no ticket.")
            return ignore("closing_thanks")
        if confidence < policy.social_min_confidence or policy.social_min_confidence >= 1.0:  # 1: never
            reasons.append(
                f"Rasa's confidence {confidence:.3f} is below {policy.social_min_confidence:.3f} for a social reply: "
                "a person reads it (low priority)."
            )
            return human(priority_start=ROUTINE)
        reasons.append(f"It is {intent_phrase(intent or '')} and nothing else: the bot replies in kind.")
        return Decision(
            "auto", tuple(reasons), reply=rules.reply or SOCIAL_REPLY[intent or "thanks"], intent=intent,
            confidence=confidence, skill=skill, position=position, answer=answer,
        )  # fmt: skip

    if intent in ("short_followup", "providing_info"):
        reasons.append("A follow-up without its thread here: a person reads it (low priority).")
        return human(priority_start=ROUTINE)

    # The FAQ: kinds that may be answered, and unclear ones with a stricter bar.
    if intent is None or rules.faq != "never":
        choice = _faq_choice(answer, search, faq, reasons)
        if choice is not None and answer is not None:
            band = _faq_band(choice, answer, intent, text, blocked, policy, reasons)
            if band == "auto":
                priority, why = _priority(start, start_why, cues, context, policy)
                return Decision(
                    "auto", (*reasons, why), reply="faq_answer", faq=choice, intent=intent, confidence=confidence,
                    priority=priority, skill=_skill(nlu, intent, choice.tags, policy), position=position,
                    answer=answer,
                )  # fmt: skip
            if band == "approve":
                return human(band="approve", choice=choice)
        if intent is None:
            return human()
    elif intent:
        reasons.append(f"The FAQ does not answer {intent_phrase(intent)} under the policy: a person takes it.")

    ack = _acknowledgement(rules.acknowledge, intent, confidence, text, blocked, policy, reasons)
    return human(reply=ack)


def _acknowledgement(
    situation: Situation | None, intent: str | None, confidence: float, text: str, blocked: str | None,
    policy: Policy, reasons: list[str],
) -> Situation | None:  # fmt: skip
    """The acknowledgement the bot may post while a person takes over: only with evidence, as for answers."""
    if situation is None:
        return None
    if blocked:
        reasons.append(blocked)
        return None
    if confidence < policy.acknowledge_min_confidence or policy.acknowledge_min_confidence >= 1.0:  # 1: never
        reasons.append(
            f"No public acknowledgement: Rasa's confidence {confidence:.3f} is below "
            f"{policy.acknowledge_min_confidence:.3f}."
        )
        return None
    if situation == "outage_ack" and (not outage_cue(text) or mentions_others(text, policy.own_handles)):
        reasons.append("No outage acknowledgement: the words do not clearly say that our service is down.")
        return None
    reasons.append("The bot acknowledges the tweet; a person follows up.")
    return situation


def _faq_band(
    choice: FaqChoice, answer: AnswerEvidence, intent: str | None, text: str, blocked: str | None,
    policy: Policy, reasons: list[str],
) -> Band | None:  # fmt: skip
    """auto, approve, or None (a person answers), for an FAQ answer."""
    rules = policy.intent(intent)
    auto: Thresholds = policy.unclear_auto if intent is None else policy.auto_thresholds(intent)
    approve: Thresholds = policy.approve_thresholds(intent)
    phrase = intent_phrase(intent) if intent else "a message of unclear kind"
    may_auto = intent is None or rules.faq == "auto"
    match = _match(choice, answer)
    if not may_auto or not auto.admits(choice.score, choice.margin):
        if approve.admits(choice.score, choice.margin):
            why = (
                f"the policy has an agent check every answer to {phrase}" if not may_auto
                else f"good enough for a draft ({approve.describe()}), not for an automatic answer ({auto.describe()})"
            )  # fmt: skip
            reasons.append(f"{match}: {why}. An agent checks it.")
            return "approve"
        reasons.append(f"{match}: too weak even for a draft ({approve.describe()}).")
        return None
    wont_help = wont_help_cues(text)
    if wont_help:
        reasons.append(
            f"{match}: close enough to answer, but the FAQ answer may not help ({', '.join(wont_help)}). "
            "An agent checks the draft."
        )
        return "approve"
    if blocked:
        reasons.append(f"{match}: close enough to answer automatically, but {blocked[0].lower()}{blocked[1:]}")
        reasons.append("An agent sends the draft.")
        return "approve"
    reasons.append(f"{match}: close enough to answer {phrase} automatically ({auto.describe()}).")
    return "auto"
