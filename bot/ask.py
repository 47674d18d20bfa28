"""What carebot would do with one tweet, for `carebot ask`: the decision with its reasons and the reply it
would post, as one JSON-ready dict. Also `plan_reply`, the last step before anything is posted: compose the
reply and, when it breaks a tone rule, keep the bot from posting it.

Pure: the caller parses the text (NLU), searches the FAQ and looks up the published answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bot.decision.policy import Band, Policy
from bot.decision.tone import BOT, Author, RecentReplies, ToneGuide, Violation, check, compose
from bot.decision.triage import Context, Decision, FaqEntry, decide

if TYPE_CHECKING:
    from bot.decision.answer_score import AnswerEvidence
    from bot.nlu.client import NluResult
    from knowledge_base.search import SearchResult


@dataclass(frozen=True)
class PlannedReply:
    decision: Decision  # may differ from the input: a reply that breaks the tone rules is not posted by the bot
    text: str | None
    violations: tuple[Violation, ...] = ()


def plan_reply(
    decision: Decision,
    author: Author = BOT,
    *,
    variant_seed: int | str,
    recent_replies: Iterable[str] | RecentReplies = (),
    guide: ToneGuide | None = None,
) -> PlannedReply:
    """Compose the decision's reply and check it. If the bot would post a reply that breaks a tone rule, an
    answer becomes a draft for an agent (approve) and an acknowledgement is dropped (the ticket stays)."""
    if decision.reply is None:
        return PlannedReply(decision, None)
    recent = recent_replies if isinstance(recent_replies, RecentReplies) else tuple(recent_replies)
    text = compose(decision, author, variant_seed=variant_seed, recent_replies=recent, guide=guide)
    violations = tuple(check(text, author, recent_replies=recent, guide=guide))
    if not violations or not decision.bot_posts_now:
        return PlannedReply(decision, text, violations)
    problems = " ".join(violation.message for violation in violations)
    if decision.band == "auto" and decision.reply == "faq_answer":
        reason = f"The composed reply breaks the tone rules ({problems}), so an agent checks it first."
        return PlannedReply(replace(decision, band="approve", reasons=(*decision.reasons, reason)), text, violations)
    reason = f"The bot does not post its reply, as it breaks the tone rules ({problems})."
    band: Band = "human" if decision.band == "human" else "ignore"  # an acknowledgement, or a greeting or thanks
    return PlannedReply(replace(decision, band=band, reply=None, reasons=(*decision.reasons, reason)), None, violations)


@dataclass(frozen=True)
class Assessment:
    """Everything carebot concluded about one tweet: the parse, the FAQ search, the decision and its reply.
    The same object goes from the desk to `carebot ask`, `carebot eval traffic`, the worker and the web app;
    `to_dict` is for the edges (JSON out, the database column)."""

    text: str
    nlu: NluResult | None
    nlu_error: str | None
    nlu_unavailable: bool  # the NLU could not be asked at all (not: the tweet had no words)
    search: SearchResult | None
    search_error: str | None
    decision: Decision
    reply: str | None  # the composed reply (posted now by the bot, or a draft for an agent)
    reply_status: str | None  # bot_posts | agent_sends | None
    violations: tuple[Violation, ...]
    policy_version: int

    @property
    def bot_posts(self) -> bool:
        return self.reply is not None and self.reply_status == "bot_posts"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "nlu": self.nlu.to_dict() if self.nlu else None,
            "nlu_error": self.nlu_error,
            "nlu_unavailable": self.nlu_unavailable,
            "faq_search": self.search.to_dict() if self.search else None,
            "faq_search_error": self.search_error,
            "decision": self.decision.to_dict(),
            "reply": self.reply,
            "reply_status": self.reply_status,
            "tone_violations": [violation.to_dict() for violation in self.violations],
            "policy_version": self.policy_version,
        }


def reply_status(decision: Decision) -> str | None:
    """bot_posts: the bot posts it now; agent_sends: a draft an agent sends (signed with their initials)."""
    if decision.reply is None:
        return None
    return "bot_posts" if decision.bot_posts_now else "agent_sends"


def ask_result(
    text: str,
    nlu: NluResult | None,
    search: SearchResult | None,
    policy: Policy,
    *,
    faq: Mapping[int, FaqEntry] | None = None,
    nlu_error: str | None = None,
    no_parse_reason: str | None = None,
    search_error: str | None = None,
    context: Context | None = None,
    guide: ToneGuide | None = None,
    variant_seed: int | str | None = None,
    recent_replies: Iterable[str] | RecentReplies = (),
    answer: AnswerEvidence | None = None,
) -> Assessment:
    """What carebot makes of one tweet (a fresh tweet addressed to us unless `context` says else).

    `nlu` is None when the NLU gave no parse (say why in `nlu_error`); `search` is None when the FAQ search was
    not available (`search_error`). `faq` maps the hits' entry ids to their published entries. `variant_seed`
    (the tweet id; default: the text) picks the reply's wording; `recent_replies` are wordings not to repeat.
    `answer` is the answer model's best entry for the tweet.
    """
    decision = decide(
        nlu, search, context or Context(), policy, faq=faq, answer=answer, text=text, no_parse_reason=no_parse_reason
    )
    planned = plan_reply(
        decision, BOT, variant_seed=text if variant_seed is None else variant_seed, recent_replies=recent_replies,
        guide=guide,
    )  # fmt: skip
    return Assessment(
        text=text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),  # printable even if broken
        nlu=nlu, nlu_error=nlu_error, nlu_unavailable=nlu is None and nlu_error is not None and no_parse_reason is None,
        search=search, search_error=search_error, decision=planned.decision, reply=planned.text,
        reply_status=reply_status(planned.decision), violations=planned.violations, policy_version=policy.version,
    )  # fmt: skip


def describe(assessment: Assessment) -> str:
    """`carebot ask` without --json: the band, the reasons and the reply, for a person."""
    result = assessment.to_dict()
    decision = result["decision"]
    lines = [f"{decision['band']}  (priority {decision['priority']}, skill {decision['skill']})"]
    lines += [f"  - {reason}" for reason in decision["reasons"]]
    if result["reply"]:
        who = "the bot posts" if result["reply_status"] == "bot_posts" else "draft for an agent"
        lines.append(f"  reply ({who}): {result['reply']}")
    lines += [f"  ! {violation['message']}" for violation in result["tone_violations"]]
    return "\n".join(lines)
