"""Triage of stored tweets: each new inbound tweet gets its decision, and in the same transaction its outbox row
(when the bot replies), its ticket (when a person must look) and its final state.

The conversation context comes from the database: whether a person owns the thread (an open ticket), whether the
bot already answered in it, whether the customer opted out, earlier contacts, waiting time. When the NLU is down,
tweets wait (state "waiting") and are retried; after `worker_nlu_wait_s` they go to people without an automated
answer. Nothing is lost either way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from sqlalchemy.engine import Row

from bot.ask import Assessment
from bot.channel.failpoints import failpoint
from bot.channel.models import inbound_tweets, opt_outs, outbox
from bot.channel.store import insert_ignoring_duplicates, record_opt_out, utcnow
from bot.csat import absorb_survey_reply
from bot.db import as_utc
from bot.decision.tone import RecentReplies
from bot.decision.triage import Context
from bot.desk import Desk, Question
from bot.learning import label_follow_up, label_store, shadowed, watch
from bot.policy_versions import PolicyVersions
from handoff.models import tickets
from handoff.service import Escalation, Handoff
from handoff.states import OPEN_STATES
from knowledge_base.errors import KbError

log = logging.getLogger(__name__)

RECENT_REPLIES = 20_000  # our latest wordings, which a new reply must not repeat (X refuses duplicates)
RECENT_WINDOW = timedelta(days=7)
CONTACT_WINDOW = timedelta(days=30)
DUPLICATE_WINDOW = timedelta(days=1)
DUPLICATES_COMPARED = 50  # a customer's latest handled tweets a new one is compared with
NLU_RETRY = timedelta(seconds=5)
NLU_PROBE_MAX = timedelta(seconds=60)
POLICY_WATCH = timedelta(seconds=30)  # how often the newest policy version is looked for (a lead's apply or rollback)
PRECISION_WATCH = timedelta(minutes=1)  # how often automatic kinds and entries are checked against their labels


@dataclass(frozen=True)
class StepReport:
    triaged: int = 0
    waiting: int = 0
    bands: tuple[tuple[str, int], ...] = ()


class TweetProcessor:
    def __init__(
        self,
        engine: Engine,
        desk: Desk,
        handoff: Handoff,
        *,
        account_id: str,
        batch_size: int = 64,
        nlu_wait_s: float = 120.0,
        clock: Callable[[], datetime] = utcnow,
        policy_versions: PolicyVersions | None = None,
    ) -> None:
        self.engine = engine
        self.policy_versions = policy_versions  # None: the desk keeps the policy it was opened with
        self._policy_checked_at: datetime | None = None
        self._policy_number: int | None = None
        self.desk = desk
        self.handoff = handoff
        self.account_id = account_id
        self.batch_size = batch_size
        self.nlu_wait = timedelta(seconds=nlu_wait_s)
        self.clock = clock
        self.labels = label_store(engine)  # customers' follow-ups label the answers; shadow mode per kind and entry
        self._watched_at: datetime | None = None
        self.nlu_failures = 0  # consecutive steps in which the NLU could not be asked
        self.nlu_retry_at: datetime | None = None
        self.recent = RecentReplies(guide=desk.guide)  # our wordings so far: loaded once, then kept up to date
        self._recent_upto = 0  # the last outbox id in `recent`
        self._warmed = False

    def warm_up(self) -> None:
        """Fit the answer model (and embed its out-of-scope examples) before the first tweet waits for it."""
        self._warmed = True
        try:
            self.desk.answer_model()
        except (KbError, RuntimeError, ValueError) as exc:
            log.warning("the answer model could not be fitted yet: %s", exc)

    def follow_policy(self, now: datetime) -> None:
        """Every POLICY_WATCH, takes the newest policy version when it changed (a lead applied a refit or rolled
        back on /lead/policy): the next batch is decided by it, with no restart. A read that fails keeps the
        policy in use and is tried again at the next watch."""
        if self.policy_versions is None:
            return
        if self._policy_checked_at is not None and now - self._policy_checked_at < POLICY_WATCH:
            return
        self._policy_checked_at = now
        try:
            number = self.policy_versions.live_number()
            if number is None or number == self._policy_number:
                return
            policy = self.policy_versions.live()
        except Exception as exc:  # noqa: BLE001 - a database before migration 0018, or gone for a moment
            log.debug("the policy versions could not be read: %s", exc)
            return
        if self._policy_number is not None:
            log.info("policy version %d is live now (was %d)", number, self._policy_number)
        self._policy_number = number
        self.desk.policy = policy

    def due(self, conn: Connection, now: datetime) -> Sequence[Row[Any]]:
        return conn.execute(
            select(inbound_tweets)
            .where(
                or_(
                    inbound_tweets.c.state == "new",
                    and_(
                        inbound_tweets.c.state == "waiting",
                        or_(inbound_tweets.c.next_attempt_at.is_(None), inbound_tweets.c.next_attempt_at <= now),
                    ),
                )
            )
            .order_by(func.length(inbound_tweets.c.tweet_id), inbound_tweets.c.tweet_id)
            .limit(self.batch_size)
        ).all()

    def context(self, conn: Connection, row: Row[Any], now: datetime) -> Context:
        return self.contexts(conn, [row], now)[0]

    def contexts(self, conn: Connection, rows: Sequence[Row[Any]], now: datetime) -> list[Context]:
        """Each tweet's Context, with one query per kind of fact for the whole batch (our replies in their
        conversations, the customers' other recent conversations, their opt-outs, their earlier tweets); whether
        a person owns a thread is asked of the handoff tweet by tweet."""
        if not rows:
            return []
        conversations = {row.conversation_id or row.tweet_id for row in rows}
        authors = {row.author_id for row in rows}
        replies = conn.execute(
            select(outbox.c.conversation_id, outbox.c.author, outbox.c.kind, outbox.c.posted_tweet_id).where(
                outbox.c.conversation_id.in_(conversations)
            )
        ).all()
        bot_replied: set[str] = set()
        answered_ids: dict[str, set[str]] = {}
        agent_ids: dict[str, set[str]] = {}
        for reply in replies:
            if reply.author == "bot":
                bot_replied.add(reply.conversation_id)
                if reply.kind == "faq_answer" and reply.posted_tweet_id:
                    answered_ids.setdefault(reply.conversation_id, set()).add(reply.posted_tweet_id)
            elif reply.posted_tweet_id is not None:
                agent_ids.setdefault(reply.conversation_id, set()).add(reply.posted_tweet_id)
        recent_conversations: dict[str, set[str]] = {}
        for author_id, conversation_id in conn.execute(
            select(inbound_tweets.c.author_id, inbound_tweets.c.conversation_id)
            .where(
                inbound_tweets.c.author_id.in_(authors),
                inbound_tweets.c.conversation_id.is_not(None),
                inbound_tweets.c.fetched_at >= now - CONTACT_WINDOW,
            )
            .distinct()
        ).all():
            recent_conversations.setdefault(author_id, set()).add(conversation_id)
        opted_out = set(conn.execute(select(opt_outs.c.author_id).where(opt_outs.c.author_id.in_(authors))).scalars())
        earlier = self._handled_earlier(conn, authors, now)
        contexts = []
        for row in rows:
            conversation = row.conversation_id or row.tweet_id
            created = as_utc(row.created_at) or as_utc(row.fetched_at) or now
            in_reply_to = row.in_reply_to_tweet_id
            contexts.append(
                Context(
                    addressed_to_us=row.source != "search",
                    from_our_account=row.author_id == self.account_id,
                    human_owns_thread=self.handoff.open_ticket_for(conn, conversation) is not None
                    or self.ticket_to_join(conn, row) is not None,
                    bot_already_replied_in_interaction=conversation in bot_replied,
                    in_thread_after_bot_answer=in_reply_to is not None
                    and in_reply_to in answered_ids.get(conversation, ()),
                    in_thread_after_agent_reply=in_reply_to is not None
                    and in_reply_to in agent_ids.get(conversation, ()),
                    direct_message=row.source == "dm",
                    prior_contacts=len(recent_conversations.get(row.author_id, set()) - {conversation}),
                    waiting_minutes=max(0.0, (now - created).total_seconds() / 60),
                    opted_out=row.author_id in opted_out,
                    duplicate_of=_duplicate_of(row, earlier.get(row.author_id, ())),
                )
            )
        return contexts

    def ticket_to_join(self, conn: Connection, row: Row[Any]) -> int | None:
        """The open public ticket a customer's DM joins (a customer is one conversation across a public thread and
        DMs), when the DM's conversation has no open ticket of its own: of the customer's open public tickets not
        joined by another DM conversation, the one we most recently moved to DM (a `dm_handover` reply, the
        agent's "Move to DM" or the bot's), else the most recently created. None: the DM is handled on its own (a
        DM ticket, as before)."""
        if row.source != "dm":
            return None
        conversation = row.conversation_id or row.tweet_id
        if self.handoff.open_ticket_for(conn, conversation) is not None:
            return None
        handed_over = (
            select(func.max(outbox.c.created_at))
            .where(outbox.c.ticket_id == tickets.c.id, outbox.c.kind == "dm_handover")
            .scalar_subquery()
        )
        found = conn.execute(
            select(tickets.c.id)
            .where(
                tickets.c.customer_id == row.author_id, tickets.c.source != "dm", tickets.c.state.in_(OPEN_STATES),
                or_(tickets.c.dm_conversation_id.is_(None), tickets.c.dm_conversation_id == conversation),
            )
            .order_by(handed_over.is_(None), handed_over.desc(), tickets.c.created_at.desc(), tickets.c.id.desc())
            .limit(1)
        ).scalar()  # fmt: skip
        return None if found is None else int(found)

    def _handled_earlier(
        self, conn: Connection, authors: set[str], now: datetime
    ) -> dict[str, list[tuple[str, str]]]:
        """Each customer's latest tweets (up to 50) of the last day that the bot answered or left alone, as
        (tweet id, text): what a repeat is compared with."""
        latest = (
            func.row_number()
            .over(partition_by=inbound_tweets.c.author_id, order_by=inbound_tweets.c.fetched_at.desc())
            .label("n")
        )
        handled = (
            select(inbound_tweets.c.author_id, inbound_tweets.c.tweet_id, inbound_tweets.c.text, latest)
            .where(
                inbound_tweets.c.author_id.in_(authors), inbound_tweets.c.state == "done",
                inbound_tweets.c.band.in_(("auto", "ignore")), inbound_tweets.c.fetched_at >= now - DUPLICATE_WINDOW,
            )
            .subquery()
        )  # fmt: skip
        found: dict[str, list[tuple[str, str]]] = {}
        for author_id, tweet_id, text in conn.execute(
            select(handled.c.author_id, handled.c.tweet_id, handled.c.text).where(handled.c.n <= DUPLICATES_COMPARED)
        ).all():
            found.setdefault(author_id, []).append((str(tweet_id), text))
        return found

    def refresh_recent(self, conn: Connection, now: datetime) -> None:
        """Add the replies queued since the last step (by the bot or agents) to the wordings not to repeat."""
        query = select(outbox.c.id, outbox.c.text).where(outbox.c.id > self._recent_upto)
        if not self._recent_upto:
            query = query.where(outbox.c.created_at >= now - RECENT_WINDOW)
        rows = conn.execute(query.order_by(outbox.c.id.desc()).limit(RECENT_REPLIES)).all()
        for row in rows:
            self.recent.add(row.text)
        if rows:
            self._recent_upto = max(self._recent_upto, max(row.id for row in rows))

    def step(self) -> StepReport:
        """Triage one batch of stored tweets. Returns what it did (nothing: no tweet was due)."""
        if not self._warmed:
            self.warm_up()
        now = self.clock()
        self.follow_policy(now)
        if self._watched_at is None or now - self._watched_at >= PRECISION_WATCH:
            self._watched_at = now  # automatic kinds and entries whose live precision fell go back to shadow
            watch(self.engine, self.labels, self.desk.policy.target_precision)
        with self.engine.connect() as conn:
            rows = self.due(conn, now)
            # A DM answering a customer-satisfaction question is stored as the answer, never triaged (bot/csat.py).
            rows = [row for row in rows if not absorb_survey_reply(self.engine, row, now)]
            if not rows:
                return StepReport()
            contexts = self.contexts(conn, rows, now)
            self.refresh_recent(conn, now)
        # While the NLU is down, it is not asked at all until the next probe; a probe is one tweet.
        use_nlu = self.nlu_retry_at is None or now >= self.nlu_retry_at
        if use_nlu and self.nlu_failures:
            rows, contexts = rows[:1], contexts[:1]
        results: list[Assessment] = self.desk.ask_many(
            [
                Question(row.text, context, variant_seed=row.tweet_id)
                for row, context in zip(rows, contexts, strict=True)
            ],
            use_nlu=use_nlu,
            recent=self.recent,
        )
        if use_nlu:
            if any(result.nlu_unavailable for result in results):
                self.nlu_failures += 1
                self.nlu_retry_at = now + min(NLU_PROBE_MAX, NLU_RETRY * 2 ** (self.nlu_failures - 1))
                log.warning("the NLU is unavailable; next try at %s", self.nlu_retry_at.isoformat())
            elif any(result.nlu is not None or result.nlu_error is not None for result in results):
                self.nlu_failures, self.nlu_retry_at = 0, None  # (a batch decided without the NLU says nothing)
        bands: dict[str, int] = {}
        waiting = 0
        with self.engine.begin() as conn:
            for row, result in zip(rows, results, strict=True):
                fetched = as_utc(row.fetched_at) or now
                if result.nlu_unavailable and now - fetched < self.nlu_wait:
                    retry_at = max(self.nlu_retry_at or now, now + NLU_RETRY)
                    conn.execute(
                        update(inbound_tweets)
                        .where(inbound_tweets.c.tweet_id == row.tweet_id)
                        .values(state="waiting", attempts=row.attempts + 1, next_attempt_at=retry_at)
                    )
                    waiting += 1
                    continue
                band = self.apply(conn, row, result, now)
                bands[band] = bands.get(band, 0) + 1
        failpoint("after_outbox_insert")
        return StepReport(len(rows) - waiting, waiting, tuple(sorted(bands.items())))

    def apply(self, conn: Connection, row: Row[Any], result: Assessment, now: datetime) -> str:
        """Carry out one decision inside the caller's transaction; returns the band."""
        result = shadowed(conn, self.labels, result)
        decision = result.decision
        label_follow_up(conn, self.labels, row, decision)
        band: str = decision.band
        conversation = row.conversation_id or row.tweet_id
        ticket_id: int | None = None
        if decision.opt_out_request:
            record_opt_out(conn, row.author_id, row.tweet_id)
        open_ticket = self.handoff.open_ticket_for(conn, conversation)
        join = None if open_ticket is not None else self.ticket_to_join(conn, row)
        if join is not None:
            # The customer's DM joins their open public ticket: its holder keeps it and the bot stays silent.
            ticket_id = self.handoff.join_dm(
                conn, join, dm_conversation_id=conversation, tweet_id=row.tweet_id,
                author=row.author_username or row.author_id, text=row.text, created_at=as_utc(row.created_at) or now,
            )  # fmt: skip
        if ticket_id is not None:
            pass
        elif open_ticket is not None and (band not in ("human", "approve") or decision.position == "held_by_person"):
            # A person owns the thread: the customer's message joins the ticket and the bot stays silent.
            ticket_id = self.handoff.add_customer_message(
                conn, conversation, tweet_id=row.tweet_id, author=row.author_username or row.author_id,
                text=row.text, created_at=as_utc(row.created_at) or now,
                channel="dm" if row.source == "dm" else "public",
            )  # fmt: skip
        elif band in ("human", "approve"):
            ticket_id = self.handoff.escalate(
                conn,
                Escalation(
                    conversation_id=conversation, tweet_id=row.tweet_id, customer_id=row.author_id,
                    customer_handle=row.author_username, text=row.text, created_at=as_utc(row.created_at) or now,
                    source="dm" if row.source == "dm" else ("search" if row.source == "search" else "mention"),
                    band=band, reasons=list(decision.reasons), priority=decision.priority, skill=decision.skill,
                    intent=decision.intent, confidence=decision.confidence,
                    faq_entry_id=decision.faq.entry_id if decision.faq else None,
                    draft_reply=result.reply if band == "approve" else None, dm_handover=decision.dm_handover,
                ),
            )  # fmt: skip
        reply = result.reply
        if reply and result.bot_posts and decision.reply is not None and (join is None or ticket_id is None):
            values = {
                "target_tweet_id": row.tweet_id, "conversation_id": conversation, "kind": decision.reply,
                "author": "bot", "text": reply, "state": "pending", "attempts": 0, "ticket_id": ticket_id,
                "created_at": now, "updated_at": now,
                "faq_slug": decision.faq.slug if decision.faq and decision.reply == "faq_answer" else None,
            }  # fmt: skip
            if insert_ignoring_duplicates(conn, outbox, [values]):
                outbox_id = conn.execute(
                    select(outbox.c.id).where(outbox.c.target_tweet_id == row.tweet_id)
                ).scalar_one()
                if ticket_id is not None:
                    self.handoff.record_outbound(
                        conn, ticket_id, author="bot", text=reply, outbox_id=outbox_id, kind=decision.reply
                    )
        conn.execute(
            update(inbound_tweets)
            .where(inbound_tweets.c.tweet_id == row.tweet_id)
            .values(
                state="done", band=band, decision=_json_safe(result), ticket_id=ticket_id, triaged_at=now,
                attempts=row.attempts + 1, ignore_reason=decision.ignore_reason,
            )  # fmt: skip
        )
        if ticket_id is not None and row.conversation_id is not None:
            # The reports' "didn't help": the bot's earlier FAQ answers in this conversation came back to a person.
            conn.execute(
                update(outbox)
                .where(outbox.c.conversation_id == row.conversation_id, outbox.c.kind == "faq_answer",
                       outbox.c.created_at < row.fetched_at, outbox.c.came_back.is_(False))
                .values(came_back=True)
            )  # fmt: skip
        return band


def _duplicate_of(row: Row[Any], earlier: Sequence[tuple[str, str]]) -> str | None:
    """An earlier tweet of this customer's, in the last day, with the same words, that the bot answered or
    left alone (a repeat of an escalated tweet joins its ticket or reopens it instead)."""
    words = _same_words(row.text)
    for tweet_id, text in earlier:
        if words and tweet_id != str(row.tweet_id) and _same_words(text) == words:
            return tweet_id
    return None


def _same_words(text: str) -> str:
    """The words of a tweet without mentions, links and punctuation, lower-cased: what "the same tweet" means."""
    return " ".join(re.findall(r"[^\W_]+", re.sub(r"@\w+|https?://\S+", " ", text.lower())))


def _json_safe(assessment: Assessment) -> dict[str, Any]:
    """What is kept of a triage result with the tweet: the decision, the reply and the FAQ hits (the editor's
    "unanswered questions" look for tweets no entry was close to), not the raw NLU payload."""
    result = assessment.to_dict()
    search = result.get("faq_search") or {}
    return {
        "faq_hits": search.get("hits", [])[:3],
        "faq_top_score": (search.get("hits") or [{}])[0].get("score"),
        "decision": result["decision"],
        "reply": result["reply"],
        "reply_status": result["reply_status"],
        "nlu_error": result["nlu_error"],
        "faq_search_error": result["faq_search_error"],
        "tone_violations": result["tone_violations"],
        "policy_version": result["policy_version"],
        "intent": (result.get("nlu") or {}).get("intent"),
    }
