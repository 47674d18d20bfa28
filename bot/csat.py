"""What carebot does after a ticket is resolved: one customer-satisfaction (CSAT) question by DM, reading the
customer's answer, and one short public reply under a thread that moved to DM ("We've sorted this in DM").

The worker runs `ResolutionFollowUp.step` after each triage step (bot/channel/worker.py). It looks in the
database for what is still to do: resolved tickets without a survey row, resolved DM tickets whose public thread
has no close yet. Whoever resolved the ticket (an agent, a lead, an incident), and however often the process
died in between, every resolution is seen once and decided once: the survey row (unique per ticket and per
conversation) is written in the same transaction as the DM's outbox row.

Who is asked (docs/web.md, "Customer satisfaction"):
- not when the lead switched surveys off, or outside the sample rate (a fixed share per ticket id);
- not a customer who opted out (x_opt_outs), who has another ticket open (that one's resolution asks), or who was
  asked in the last ASK_AGAIN_AFTER;
- never for spam or opt-out tickets, keyword-search hits (they did not write to us), tickets closed without any
  reply of ours reaching the customer, or customers who never wrote to us by DM (X's automation rules forbid
  unsolicited automated DMs, and the sender addresses a DM through the customer's DM conversation);
- at most DM_SHARE questions per 15 minutes, so agents keep most of X's DM budget (15 per 15 minutes).
Each decision is a survey row (`skipped` or `asked`) and an audit event on the ticket naming the reason.

The answer: a DM from the customer while a survey waits (ANSWER_WINDOW), after the question went out, with no
ticket open in the DM conversation, that reads as a score (`read_score`) is stored as `answered` with its comment
and never reaches triage; anything else is triaged as usual. "stop" in answer is recorded as the opt-out it is.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from bot.channel.models import inbound_tweets, opt_outs, outbox
from bot.channel.replies import ReplyError, recent_reply_texts, reply_target
from bot.channel.store import id_key, record_opt_out, utcnow
from bot.db import as_utc
from bot.decision.cues import explicit_opt_out, opt_out_only
from bot.decision.tone import BOT, RecentReplies, ToneGuide, check, default_guide, reference_code
from bot.hidden_text import without_invisible
from handoff import csat as store
from handoff.models import messages, tickets
from handoff.service import Handoff
from handoff.states import OPEN_STATES

log = logging.getLogger(__name__)

ANSWER_WINDOW = timedelta(days=3)  # a survey waits this long for its answer, then expires
ASK_AGAIN_AFTER = timedelta(days=7)  # a customer is asked at most once in this long
RESOLVED_WITHIN = timedelta(days=1)  # resolutions older than this are not followed up (no burst on switching on)
HANDOVER_WINDOW = timedelta(days=7)  # a public thread moved to DM this long before the DM resolution is closed
DM_SHARE = 5  # CSAT questions queued per DM_SHARE_WINDOW at most
DM_SHARE_WINDOW = timedelta(minutes=15)
BATCH = 50
EXPIRE_EVERY_S = 60.0  # how often surveys past their ANSWER_WINDOW are marked expired
SKIPPED_INTENTS = frozenset({"spam_offtopic", "opt_out"})
MAX_READ_CHARS = 600  # a longer DM is no score, whatever it starts with

QUESTION_KIND = "csat_question"
CLOSE_KIND = "public_close"
ANSWER_REASON = "csat_answer"  # x_inbound_tweets.ignore_reason of a DM stored as a survey answer
LOW_SCORE = 3  # a score up to this with a comment that says more than thanks is triaged too (needs_a_person)

QUESTIONS = (
    "Thanks for talking to us. How did we do? Reply with a number from 1 (poor) to 5 (great), and add a comment "
    "if you like. Reply stop and we won't ask again.",
    "We hope we sorted things out for you. Could you rate our help from 1 (poor) to 5 (great)? A comment is "
    "welcome too. Reply stop and we won't ask again.",
    "Quick question: how happy are you with the help you got, from 1 (poor) to 5 (great)? Just reply with the "
    "number, plus a comment if you like. Reply stop and we won't ask again.",
    "How did we do with your recent question? Reply 1 (poor) to 5 (great), with a comment if you wish. If you'd "
    "rather not get these, reply stop.",
)
CLOSES = (
    "We've sorted this in DM. Thanks for bearing with us, and if anything else comes up, just reply here.",
    "All sorted over DM now. Thanks for your patience, we're here if you need anything else.",
    "We've picked this up in DM and it's sorted. Thanks for getting in touch.",
    "This one is sorted in DM. Thanks for your patience, and shout if you need us again.",
    "Sorted in DM. Thanks for letting us help, and get in touch any time.",
)

# ---------------------------------------------------------------------------------------------- reading answers
# A word that is a score: numbers, and words of how it went. Documented in docs/web.md.
SCORE_WORDS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "terrible": 1, "awful": 1, "horrible": 1, "dreadful": 1, "rubbish": 1, "useless": 1, "very bad": 1,
    "very poor": 1, "very unhappy": 1,
    "bad": 2, "poor": 2, "unhappy": 2, "disappointing": 2, "disappointed": 2,
    "ok": 3, "okay": 3, "fine": 3, "average": 3, "alright": 3, "so-so": 3, "meh": 3,
    "good": 4, "happy": 4, "pleased": 4, "nice": 4,
    "great": 5, "excellent": 5, "brilliant": 5, "amazing": 5, "perfect": 5, "fantastic": 5, "superb": 5,
    "outstanding": 5, "wonderful": 5, "awesome": 5, "very good": 5, "very happy": 5,
}  # fmt: skip
_NUMBER_WORDS = {"one", "two", "three", "four", "five"}
_NUMBER = re.compile(
    r"(?P<n>[1-5])(?![\d])(?:\s*(?:/|out of|of)\s*5(?![\d]))?(?:\s*(?:stars?|points?)\b)?(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_STARS = re.compile(r"[⭐★]{1,5}")
# After a number, these make it a quantity, not a score ("4 days without internet", "2 or 3 times", "4-5").
_QUANTITY = re.compile(
    r"(?:days?|nights?|hours?|hrs?|weeks?|wks?|months?|years?|yrs?|times?|mins?|minutes?|secs?|seconds?|calls?"
    r"|people|engineers?|devices?|phones?|lines?|bars?|gb|mb|mbps|am|pm|x|or|to|and|more|extra)\b|%",
    re.IGNORECASE,
)
_THANKS = re.compile(r"(?:thanks?|thank you|thx|ta|cheers|many thanks)(?:\s+(?:a lot|so much|again))?", re.IGNORECASE)
_SEPARATORS = " \t-–—:,.;!?)(/|*"
# In a survey answer, a request for no more of these ("no more surveys") is an opt-out too.
_NO_SURVEYS = re.compile(
    r"^(?:please\s+)?(?:no more (?:surveys?|questions?|messages?)|(?:don'?t|do not) (?:ask|survey|message) me"
    r"(?: again)?|stop (?:asking|sending)(?: me)?(?: (?:these|this|surveys?))?)(?:\s*(?:please|thanks?|thank you))?"
    r"\W*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SurveyReply:
    score: int  # 1 (very unhappy) … 5 (very happy)
    comment: str | None  # what the customer added, cleaned and bounded (untrusted text)


def _clean(text: str) -> str:
    """NFKC, no invisible or control characters, keycaps as digits, single spaces, no leading @mentions."""
    text = unicodedata.normalize("NFKC", text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    text = without_invisible(text).replace("\u20e3", "").replace("\ufe0f", "")
    text = "".join(" " if unicodedata.category(char).startswith("C") else char for char in text)
    text = re.sub(r"^(?:@\w+\s*)+", "", " ".join(text.split()))
    return text.strip()


def _comment(rest: str) -> str | None:
    comment = rest.strip(_SEPARATORS + "\"'")
    return comment[: store.MAX_COMMENT_CHARS].rstrip() or None


def read_score(text: str) -> SurveyReply | None:
    """The score (and comment) a survey answer gives, or None when the text is not plainly a score.

    A score is a number from 1 to 5 at the start ("4", "5/5", "4 out of 5", "4 stars", "4 - quick and friendly",
    "4 thanks"), one to five star characters, or a word of SCORE_WORDS alone or with thanks ("five", "great",
    "Great, thanks!"). Not a score: other numbers ("10", "3.5", "5G", "4-5"), a number that counts something
    ("4 days without internet"), a word with more after it ("good grief", "great, still no internet"), negations
    ("not bad"), anything longer than MAX_READ_CHARS."""
    cleaned = _clean(text)
    if not cleaned or len(cleaned) > MAX_READ_CHARS:
        return None
    stars = _STARS.match(cleaned)
    if stars and not cleaned[stars.end() :].strip(_SEPARATORS):
        return SurveyReply(len(stars.group(0)), None)
    number = _NUMBER.fullmatch(cleaned)
    if number:
        rest = number.group("rest")
        if rest[:1].isalnum() or re.match(r"[.,]\d|\s*[-–—/~]\s*\d", rest):
            return None  # "45", "4g", "3.5", "4-5"
        comment = _comment(rest)
        if comment and _QUANTITY.match(comment):
            return None
        return SurveyReply(int(number.group("n")), comment)
    lowered = cleaned.lower()
    for phrase in sorted(SCORE_WORDS, key=len, reverse=True):
        if not lowered.startswith(phrase):
            continue
        rest = cleaned[len(phrase) :]
        if rest[:1].isalnum():
            continue  # "goodness", "fine-tuned" reads on as another word
        comment = _comment(rest)
        if phrase in _NUMBER_WORDS:
            if comment and re.match(r"(?:stars?|points?|out of (?:5|five)|/\s*5)\b", comment, re.IGNORECASE):
                comment = _comment(re.sub(r"^(?:stars?|points?|out of (?:5|five)|/\s*5)", "", comment, flags=re.I))
            if comment and _QUANTITY.match(comment):
                return None
            return SurveyReply(SCORE_WORDS[phrase], comment)
        if comment is None or _THANKS.fullmatch(comment.rstrip(_SEPARATORS)):
            return SurveyReply(SCORE_WORDS[phrase], comment)
        return None
    return None


def wants_no_surveys(text: str) -> bool:
    """An explicit opt-out in a survey answer: "stop", "unsubscribe", "no more surveys", "don't message me"."""
    cleaned = _clean(text)
    return explicit_opt_out(cleaned) or bool(_NO_SURVEYS.match(cleaned))


def sampled(ticket_id: int, percent: int) -> bool:
    """Whether the ticket is in the sample: a fixed share of ticket ids (the same answer every time)."""
    digest = hashlib.sha256(f"csat-{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


# ---------------------------------------------------------------------------------------------- wording
def compose_message(
    variants: Sequence[str],
    seed: int | str,
    *,
    recent: RecentReplies,
    guide: ToneGuide,
    dm: bool,
) -> str | None:
    """One of the variants signed by the bot, in an order fixed by the seed, skipping any the tone check refuses
    (a wording used recently: X refuses duplicates); every one used: the first with a reference code from the
    seed. None when even that is refused."""
    order = list(variants)
    digest = hashlib.sha256(repr(seed).encode()).digest()
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    signature = guide.signature(BOT)
    candidates = [f"{body} {signature}" for body in order]
    candidates.append(f"{order[0]} (ref {reference_code(seed)}) {signature}")
    for text in candidates:
        if not check(text, BOT, recent_replies=recent, guide=guide, dm=dm):
            return text
    return None


# ---------------------------------------------------------------------------------------------- the worker's step
@dataclass(frozen=True)
class FollowUpReport:
    asked: int = 0
    skipped: int = 0
    closed: int = 0
    expired: int = 0


class ResolutionFollowUp:
    """The worker's step after triage: CSAT questions for resolved tickets, public closes after DM resolutions."""

    def __init__(
        self,
        engine: Engine,
        handoff: Handoff,
        *,
        guide: ToneGuide | None = None,
        clock: Callable[[], datetime] = utcnow,
        every_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.handoff = handoff
        self.guide = guide or default_guide()
        self.clock = clock
        self.every_s = every_s
        self.monotonic = monotonic
        self._next_at = 0.0
        self._expire_at = 0.0

    def step(self) -> FollowUpReport | None:
        """At most every `every_s`: one pass. An error is logged and tried again on a later step (nothing is
        lost: the work is found again in the database)."""
        started = self.monotonic()
        if started < self._next_at:
            return None
        self._next_at = started + self.every_s
        try:
            return self.run_once()
        except Exception:
            log.exception("CSAT and public closes: unexpected error; tried again on a later step")
            return None

    def run_once(self) -> FollowUpReport:
        now = self.clock()
        expired = 0
        with self.engine.begin() as conn:
            settings = store.read_settings(conn)
            if self.monotonic() >= self._expire_at:  # a scan of the surveys: once a minute is plenty
                self._expire_at = self.monotonic() + EXPIRE_EVERY_S
                expired = store.expire_unanswered(conn, asked_before=now - ANSWER_WINDOW)
        asked, skipped = self._surveys(settings, now)
        closed = self._public_closes(now) if settings.public_close else 0
        return FollowUpReport(asked, skipped, closed, expired)

    # ------------------------------------------------------------------ surveys
    def _surveys(self, settings: store.CsatSettings, now: datetime) -> tuple[int, int]:
        with self.engine.connect() as conn:
            candidates = store.resolved_without_survey(conn, since=now - RESOLVED_WITHIN, limit=BATCH)
        asked = skipped = 0
        for ticket in candidates:
            with self.engine.begin() as conn:
                outcome = self._survey(conn, ticket, settings, now)
            if outcome == "budget":
                break
            asked += outcome == "asked"
            skipped += outcome == "skipped"
        return asked, skipped

    def skip_reason(
        self, conn: Connection, ticket: Row[Any], settings: store.CsatSettings, now: datetime
    ) -> str | None:
        """Why this resolved ticket's customer is not asked (None: they are)."""
        customer = ticket.customer_id
        if not settings.enabled:
            return "switched_off"
        if ticket.intent in SKIPPED_INTENTS:
            return "spam_or_opt_out"
        if ticket.source == "search":
            return "keyword_search"
        if store.delivered_replies(conn, ticket.id) == 0:
            return "no_contact"
        if conn.execute(select(opt_outs.c.author_id).where(opt_outs.c.author_id == customer)).first():
            return "opted_out"
        still_open = conn.execute(
            select(tickets.c.id).where(
                tickets.c.customer_id == customer, tickets.c.id != ticket.id, tickets.c.state.in_(OPEN_STATES)
            )
        ).first()
        if still_open is not None:
            return "open_ticket"
        if store.asked_since(conn, customer, now - ASK_AGAIN_AFTER):
            return "asked_recently"
        if not _has_dm_conversation(conn, customer):
            return "no_dm_conversation"
        if not sampled(ticket.id, settings.sample_percent):
            return "sample"
        return None

    def _survey(self, conn: Connection, ticket: Row[Any], settings: store.CsatSettings, now: datetime) -> str:
        reason = self.skip_reason(conn, ticket, settings, now)
        text = None
        if reason is None:
            queued = conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.kind == QUESTION_KIND, outbox.c.created_at >= now - DM_SHARE_WINDOW)
            ).scalar_one()
            if queued >= DM_SHARE:
                return "budget"  # asked on a later step, while the resolution is recent enough
            recent = RecentReplies(recent_reply_texts(conn), guide=self.guide)
            text = compose_message(QUESTIONS, f"csat-{ticket.id}", recent=recent, guide=self.guide, dm=True)
            if text is None:
                reason = "tone_check"
        survey_id = store.add_survey(
            conn, ticket_id=ticket.id, conversation_id=ticket.conversation_id, customer_id=ticket.customer_id,
            agent_id=ticket.agent_id, state="skipped" if reason else "pending", now=now,
        )  # fmt: skip
        if survey_id is None:
            return "taken"  # another worker decided it just now
        if reason is not None or text is None:
            store.audit(conn, "bot", "csat_skipped", ticket.id, {"survey_id": survey_id, "reason": reason}, now)
            return "skipped"
        outbox_id = conn.execute(
            insert(outbox)
            .values(
                target_tweet_id=f"dm-csat-{survey_id}",
                conversation_id=f"dm-{ticket.customer_id}",
                kind=QUESTION_KIND,
                author="bot",
                text=text,
                state="pending",
                attempts=0,
                ticket_id=ticket.id,
                created_at=now,
                updated_at=now,
            )  # fmt: skip
            .returning(outbox.c.id)
        ).scalar_one()
        store.mark_asked(conn, survey_id, outbox_id, now)
        store.audit(conn, "bot", "csat_asked", ticket.id, {"survey_id": survey_id, "outbox_id": outbox_id}, now)
        return "asked"

    # ------------------------------------------------------------------ public closes
    def moved_threads(self, conn: Connection, now: datetime) -> list[Row[Any]]:
        """The public tickets whose thread moved to a DM ticket resolved in the last RESOLVED_WITHIN, still without a
        public close. Matched by: the same customer; a `dm_handover` reply of ours posted in the public thread at
        most HANDOVER_WINDOW before the DM ticket's resolution; a message from the customer in the DM ticket after
        that handover; the customer has not opted out. A public ticket the customer's DM joined (handoff's
        join_dm) is its own DM ticket: its resolution, with a DM of the customer's after the handover, counts.
        One query, led by the few recent handover replies (the outbox's (kind, created_at) index)."""
        handovers, closes = outbox.alias("handovers"), outbox.alias("closes")
        public, private = tickets.alias("public"), tickets.alias("private")
        rows = conn.execute(
            select(public, handovers.c.sent_at.label("handed_over_at"), private.c.resolved_at.label("dm_resolved_at"))
            .select_from(
                handovers.join(public, public.c.id == handovers.c.ticket_id).join(
                    private,
                    and_(
                        private.c.customer_id == public.c.customer_id,
                        # a DM ticket of its own, or the public ticket itself once the customer's DM joined it
                        or_(
                            private.c.source == "dm",
                            and_(private.c.id == public.c.id, public.c.dm_conversation_id.is_not(None)),
                        ),
                    ),
                )
            )
            .where(
                handovers.c.kind == "dm_handover",
                handovers.c.created_at >= now - RESOLVED_WITHIN - HANDOVER_WINDOW,
                handovers.c.state == "sent",
                public.c.source != "dm",
                private.c.state == "resolved",
                private.c.resolved_at >= now - RESOLVED_WITHIN,
                private.c.resolved_at >= handovers.c.sent_at,
                exists().where(
                    messages.c.ticket_id == private.c.id,
                    messages.c.direction == "in",
                    messages.c.created_at >= handovers.c.sent_at,
                    or_(private.c.source == "dm", messages.c.channel == "dm"),
                ),
                ~exists().where(closes.c.conversation_id == public.c.conversation_id, closes.c.kind == CLOSE_KIND),
                ~exists().where(opt_outs.c.author_id == public.c.customer_id),  # no automated reply after "stop"
            )
            .order_by(handovers.c.sent_at)
        ).all()
        found: dict[int, Row[Any]] = {}
        for row in rows:
            sent, resolved = as_utc(row.handed_over_at), as_utc(row.dm_resolved_at)
            if sent is not None and resolved is not None and sent >= resolved - HANDOVER_WINDOW:
                found.setdefault(row.id, row)
        return list(found.values())

    def _public_closes(self, now: datetime) -> int:
        with self.engine.connect() as conn:
            threads = self.moved_threads(conn, now)
        closed = 0
        for public in threads:
            if public.state in OPEN_STATES:
                continue  # a person still owns the public thread: the bot stays silent there
            with self.engine.begin() as conn:
                closed += self._close(conn, public, now)
        return closed

    def _close(self, conn: Connection, public: Row[Any], now: datetime) -> int:
        conversation = public.conversation_id
        done = conn.execute(
            select(outbox.c.id).where(outbox.c.conversation_id == conversation, outbox.c.kind == CLOSE_KIND)
        ).first()
        if done is not None:
            return 0
        recent = RecentReplies(recent_reply_texts(conn), guide=self.guide)
        text = compose_message(CLOSES, f"close-{conversation}", recent=recent, guide=self.guide, dm=False)
        if text is None:
            log.warning("public close for conversation %s: every wording was refused by the tone check", conversation)
            return 0
        try:
            target = reply_target(conn, conversation, dm=False, ticket_id=public.id)
        except ReplyError:
            return 0  # our last reply there is still being posted: on a later step
        try:
            with conn.begin_nested():
                outbox_id = conn.execute(
                    insert(outbox)
                    .values(
                        target_tweet_id=target,
                        conversation_id=conversation,
                        kind=CLOSE_KIND,
                        author="bot",
                        text=text,
                        state="pending",
                        attempts=0,
                        ticket_id=public.id,
                        created_at=now,
                        updated_at=now,
                    )  # fmt: skip
                    .returning(outbox.c.id)
                ).scalar_one()
        except IntegrityError:
            return 0  # another reply took that tweet just now: on a later step
        self.handoff.record_outbound(conn, public.id, author="bot", text=text, outbox_id=outbox_id, kind=CLOSE_KIND)
        return 1


def _has_dm_conversation(conn: Connection, customer_id: str) -> bool:
    """Whether the customer has written to us by DM (the sender addresses a DM through that conversation)."""
    return (
        conn.execute(
            select(inbound_tweets.c.tweet_id).where(
                inbound_tweets.c.conversation_id == f"dm-{customer_id}", inbound_tweets.c.author_id == customer_id
            )
        ).first()
        is not None
    )


# ---------------------------------------------------------------------------------------------- the answer
def absorb_survey_reply(engine: Engine, row: Row[Any], now: datetime) -> bool:
    """Store a stored inbound DM as the answer to the customer's waiting survey, when it is one: True, and the
    DM is done (left alone as `csat_answer`, no ticket, no triage). An opt-out ("stop") is recorded and ends the
    survey; it is done here when it says nothing else. Anything else: False, and triage has it as usual."""
    if row.source != "dm" or row.state not in ("new", "waiting"):
        return False
    with engine.begin() as conn:
        survey = store.open_survey(conn, row.author_id, now - ANSWER_WINDOW)
        if survey is None or survey.outbox_id is None:
            return False
        question = conn.execute(select(outbox).where(outbox.c.id == survey.outbox_id)).first()
        if question is None or question.state != "sent" or not question.posted_tweet_id:
            return False
        if id_key(str(row.tweet_id).removeprefix("dm-")) <= id_key(str(question.posted_tweet_id)):
            return False  # written before the question arrived
        conversation = row.conversation_id or row.tweet_id
        held = conn.execute(
            select(tickets.c.id).where(
                or_(tickets.c.conversation_id == conversation, tickets.c.dm_conversation_id == conversation),
                tickets.c.state.in_(OPEN_STATES),
            )
        ).first()
        if held is not None:
            return False  # a person is talking with the customer: the message is theirs
        if wants_no_surveys(row.text):
            record_opt_out(conn, row.author_id, row.tweet_id)
            store.expire(conn, survey.id)
            store.audit(conn, "customer", "csat_opted_out", survey.ticket_id, {"survey_id": survey.id}, now)
            if not (opt_out_only(row.text) or _NO_SURVEYS.match(_clean(row.text))):
                return False  # it asks for more than silence: triage sees it (and records the opt-out too)
            _done(conn, row, "opt_out", now)
            return True
        reply = read_score(row.text)
        if reply is None or not store.record_answer(conn, survey.id, reply.score, reply.comment, now):
            return False
        details = {"survey_id": survey.id, "score": reply.score, "tweet_id": row.tweet_id}
        if needs_a_person(reply):
            store.audit(conn, "customer", "csat_answered", survey.ticket_id, {**details, "triaged": True}, now)
            return False  # "1 still no signal": the score is kept, and triage has the problem as usual
        _done(conn, row, ANSWER_REASON, now)
        store.audit(conn, "customer", "csat_answered", survey.ticket_id, details, now)
    return True


def needs_a_person(reply: SurveyReply) -> bool:
    """A low score (1 to 3) that says more than thanks: the customer may still have the problem, so the DM is
    triaged like any other besides being stored as the answer. A high score with a comment is praise."""
    if reply.score > LOW_SCORE or not reply.comment or _THANKS.fullmatch(reply.comment.rstrip(_SEPARATORS)):
        return False
    return len(re.findall(r"[^\W_]+", reply.comment)) >= 2


def _done(conn: Connection, row: Row[Any], reason: str, now: datetime) -> None:
    conn.execute(
        update(inbound_tweets)
        .where(inbound_tweets.c.tweet_id == row.tweet_id, inbound_tweets.c.state.in_(("new", "waiting")))
        .values(
            state="done",
            band="ignore",
            ignore_reason=reason,
            triaged_at=now,
            attempts=row.attempts + 1,
            decision=None,
            ticket_id=None,
        )  # fmt: skip
    )
