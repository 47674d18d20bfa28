"""Triage: what happens to one incoming tweet. The bot answers (auto), drafts for an agent (approve), a person
takes it (human), or nobody replies (ignore), with the reasons in words an agent reads.

`decide` is a pure function of the NLU parse, the FAQ search, the conversation context and the policy: no I/O.
Hard rules come first; the policy's calibrated thresholds decide the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.decision.cues import anger_cues
from bot.decision.personal_data import PATTERNS, PERSONAL_DATA_ENTITIES, describe_kinds, personal_data_kinds
from bot.decision.policy import MOST_URGENT, ROUTINE, Band, Policy, Situation, Thresholds

if TYPE_CHECKING:  # for annotations only: importing them at run time would pull in httpx, SQLAlchemy and faiss
    from bot.nlu.client import NluResult
    from knowledge_base.search import SearchResult

# How reasons name each kind of message.
INTENT_PHRASES = {
    "greeting": "a greeting",
    "thanks": "a thank-you",
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


def intent_phrase(intent: str) -> str:
    return INTENT_PHRASES.get(intent, f"'{intent.replace('_', ' ')}'")


@dataclass(frozen=True)
class Context:
    """What intake knows about the conversation a tweet belongs to."""

    addressed_to_us: bool = True  # an @mention or a reply to us; False: found by a keyword search
    from_our_account: bool = False
    human_owns_thread: bool = False  # an agent has claimed this conversation
    bot_already_replied_in_interaction: bool = False
    in_thread_after_bot_answer: bool = False  # a reply under an answer the bot posted
    prior_contacts: int = 0  # earlier conversations with this customer (recent ones)
    waiting_minutes: float = 0.0  # since the customer's first unanswered tweet
    opted_out: bool = False  # the customer asked for no automated replies


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
    score: float
    margin: float
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
    human (a ticket; `reply`, if any, is an acknowledgement the bot posts now), ignore (no reply at all)."""

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

    @property
    def bot_posts_now(self) -> bool:
        """Whether the bot itself posts `reply` now (an answer, or an acknowledgement while a person takes over)."""
        return self.reply is not None and self.band in ("auto", "human")

    def to_dict(self) -> dict[str, Any]:
        return {
            "band": self.band,
            "reasons": list(self.reasons),
            "reply": self.reply,
            "bot_posts_now": self.bot_posts_now,
            "faq": self.faq.to_dict() if self.faq else None,
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "priority": self.priority,
            "skill": self.skill,
            "dm_handover": self.dm_handover,
            "attach_thread": self.attach_thread,
            "opt_out_request": self.opt_out_request,
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


def _personal_data(nlu: NluResult) -> list[str]:
    from_nlu = {entity.entity for entity in nlu.entities if entity.entity in PERSONAL_DATA_ENTITIES}
    found = from_nlu | set(personal_data_kinds(nlu.text))
    return [kind for kind in PATTERNS if kind in found]


def _faq_choice(
    search: SearchResult | None, faq: Mapping[int, FaqEntry] | None, reasons: list[str]
) -> FaqChoice | None:
    """The top FAQ hit with its published answer, or None (saying why in `reasons`)."""
    if search is None:
        reasons.append("There is no FAQ search result (the knowledge base is unavailable), so no FAQ answer.")
        return None
    top = search.top
    if top is None:
        reasons.append("The FAQ has no published entries to match.")
        return None
    entry = faq.get(top.entry_id) if faq is not None else None
    if entry is None:
        reasons.append(f"The closest FAQ entry, {top.slug}, has no published answer to use.")
        return None
    return FaqChoice(top.entry_id, top.slug, top.score, search.margin, entry.answer, entry.tags)


def _match(choice: FaqChoice) -> str:
    return f"The closest FAQ entry is {choice.slug} (score {choice.score:.2f}, margin {choice.margin:.2f})"


def decide(
    nlu: NluResult | None,
    search: SearchResult | None,
    context: Context,
    policy: Policy,
    *,
    faq: Mapping[int, FaqEntry] | None = None,
    no_parse_reason: str | None = None,
) -> Decision:
    """Decide what happens to one tweet. `faq` maps entry ids to published entries (for the hits in `search`);
    without it no FAQ answer can be given. `nlu` is None when Rasa gave no parse (`no_parse_reason` says why,
    in words for agents; the default is that the NLU service may be down)."""
    skill = policy.default_skill
    if context.from_our_account:
        return Decision("ignore", ("This is one of our own tweets: the bot never replies to itself.",), skill=skill)
    if context.human_owns_thread:
        return Decision("ignore", ("An agent owns this thread, so the bot stays silent.",), skill=skill)

    reasons: list[str] = []
    if nlu is None:
        reasons.append(
            no_parse_reason or "There is no NLU parse (the NLU service may be down), so nothing is automatic."
        )
        if not context.addressed_to_us:
            reasons.append("It was found by a keyword search, not addressed to us: only a person may reply.")
        priority, why = _priority(policy.priority.unclear, ["kind of message unknown"], [], context, policy)
        return Decision("human", (*reasons, why), priority=priority, skill=skill)

    intent = _read_intent(nlu, policy, reasons)
    confidence = nlu.confidence if intent else nlu.top_intent.confidence
    if intent == "opt_out":
        reasons.append("They asked us to stop: no automated reply. Record the opt-out.")
        return Decision(
            "ignore", tuple(reasons), intent=intent, confidence=confidence, skill=skill, opt_out_request=True
        )
    if intent == "spam_offtopic":
        reasons.append("Spam or off-topic: nobody replies.")
        return Decision("ignore", tuple(reasons), intent=intent, confidence=confidence, skill=skill)

    rules = policy.intent(intent)
    start = rules.priority if intent else policy.priority.unclear
    start_why = [intent_phrase(intent)] if intent and start < ROUTINE else []
    cues = anger_cues(nlu.text)
    blocked = _automation_blocked(context)

    def human(*, reply: Situation | None = None, personal: bool = False, attach_thread: bool = False) -> Decision:
        priority, why = _priority(start, start_why, cues, context, policy, personal_data=personal)
        return Decision(
            "human", (*reasons, why), reply=reply, intent=intent, confidence=confidence, priority=priority,
            skill=_skill(nlu, intent, (), policy), dm_handover=personal, attach_thread=attach_thread,
        )  # fmt: skip

    def answer(band: Band, choice: FaqChoice) -> Decision:
        priority, why = _priority(start, start_why, cues, context, policy)
        return Decision(
            band, (*reasons, why), reply="faq_answer", faq=choice, intent=intent, confidence=confidence,
            priority=priority, skill=_skill(nlu, intent, choice.tags, policy),
        )  # fmt: skip

    # Hard rules, in order.
    kinds = _personal_data(nlu)
    if kinds:
        reasons.append(f"The tweet shows {describe_kinds(kinds)} in public: continue in DM and never repeat it.")
        if not context.addressed_to_us:
            reasons.append("It was found by a keyword search, not addressed to us: a person reaches out.")
            return human(personal=True)
        if blocked:
            reasons.append(blocked)
            return human(personal=True)
        reasons.append("The bot asks them to move to DM; a person takes it from there.")
        return human(reply="dm_handover", personal=True)
    if intent == "answer_not_helpful" and context.in_thread_after_bot_answer:
        reasons.append("They say the bot's answer did not help: a person takes over, with the whole thread.")
        return human(attach_thread=True)
    if not context.addressed_to_us:
        reasons.append("It was found by a keyword search, not addressed to us: only a person may reply (X rules).")
        return human()

    if intent is None:
        choice = _faq_choice(search, faq, reasons)
        if choice and policy.approve.admits(choice.score, choice.margin):
            reasons.append(f"{_match(choice)}: an agent checks the draft, as the kind of message is unclear.")
            return answer("approve", choice)
        if choice:
            reasons.append(f"{_match(choice)}: too weak for a draft ({policy.approve.describe()}).")
        return human()

    if rules.reply:
        if blocked:
            reasons.append(f"{blocked} Nothing else needs an answer.")
            return Decision("ignore", tuple(reasons), intent=intent, confidence=confidence, skill=skill)
        reasons.append("A templated reply fits; the bot sends it.")
        return Decision(
            "auto", tuple(reasons), reply=rules.reply, intent=intent, confidence=confidence,
            skill=_skill(nlu, intent, (), policy),
        )  # fmt: skip

    if rules.faq == "never":
        reasons.append(f"The FAQ does not answer {intent_phrase(intent)} under the policy: an agent takes it.")
    else:
        choice = _faq_choice(search, faq, reasons)
        if choice:
            decided = _faq_band(choice, intent, rules.faq == "auto", blocked, policy, reasons)
            if decided:
                return answer(decided, choice)
    if rules.acknowledge and blocked is None:
        reasons.append("The bot acknowledges the tweet; a person follows up.")
        return human(reply=rules.acknowledge)
    if rules.acknowledge and blocked:
        reasons.append(blocked)
    return human()


def _faq_band(
    choice: FaqChoice, intent: str, may_auto: bool, blocked: str | None, policy: Policy, reasons: list[str]
) -> Band | None:
    """auto, approve, or None (a person answers), for an FAQ answer to a message of a clear kind."""
    auto: Thresholds = policy.auto_thresholds(intent)
    approve: Thresholds = policy.approve_thresholds(intent)
    phrase = intent_phrase(intent)
    if may_auto and auto.admits(choice.score, choice.margin):
        if blocked is None:
            reasons.append(f"{_match(choice)}: close enough to answer {phrase} automatically ({auto.describe()}).")
            return "auto"
        reasons.append(f"{_match(choice)}: close enough to answer automatically, but {blocked[0].lower()}{blocked[1:]}")
        reasons.append("An agent sends the draft.")
        return "approve"
    if approve.admits(choice.score, choice.margin):
        if may_auto:
            reasons.append(
                f"{_match(choice)}: good enough for a draft ({approve.describe()}), "
                f"not for an automatic answer ({auto.describe()}). An agent checks it."
            )
        else:
            reasons.append(f"{_match(choice)}: the policy has an agent check every answer to {phrase}.")
        return "approve"
    reasons.append(f"{_match(choice)}: too weak even for a draft ({approve.describe()}).")
    return None
