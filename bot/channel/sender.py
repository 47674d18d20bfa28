"""The sender: posts the outbox's replies on X, so that no tweet ever gets two public replies (invariant 2).

An outbox row moves pending → sending (committed before the request) → sent | failed | unknown. A row left in
`sending` by a crash, or `unknown` after a timeout or dropped connection, may or may not have been posted: X has no
idempotency key, so before any re-send the sender looks for our reply to that tweet among our own recent tweets.
Found: the row is sent. Not found: it goes back to pending. X's posting limits (bot.channel.x_limits) are kept
before X has to enforce them: a row waits while its window is full. Rate limits (429) pause posting (public replies
or DMs, whichever X limited) until X's reset time;
a 402 (the
account's credits are spent) or X's usage cap holds every reply back, with one alert, until posting works again;
a public reply X's reply restriction would refuse (under a keyword-search hit that never mentioned us, or under our
own tweet) is not attempted, and one X refuses for it (XReplyNotAllowed) is not retried: either fails at once with
the reason and the alternatives (bot.channel.replies.no_reply_reason), and its ticket shows them;
5xx and network errors back off exponentially; a reply X refuses, or one that keeps failing, is marked failed and
its tweet goes to a person, so every tweet reaches a final state. Any other error while a row is claimed (a bug,
an answer nobody foresaw, the database gone for a moment) leaves the reply in doubt: the row becomes `unknown`
(at once, or on the next step when the database could not be written) and is looked for on X before any re-send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select, update
from sqlalchemy.engine import Row

from bot.channel.errors import (
    XCreditsDepleted,
    XError,
    XOutcomeUnknown,
    XRateLimited,
    XRejected,
    XReplyNotAllowed,
    XUnavailable,
)
from bot.channel.failpoints import failpoint
from bot.channel.models import inbound_tweets, outbox
from bot.channel.replies import no_reply_reason
from bot.channel.store import add_alert, id_key, utcnow
from bot.channel.x_limits import (
    DEFAULT_TIER,
    LOW_PRIORITY_KINDS,
    TIERS,
    Budget,
    PostingLimits,
    budget,
    channel_of,
    on_channel,
)
from bot.db import as_utc
from handoff.service import Escalation, Handoff

log = logging.getLogger(__name__)

DUPLICATE = "duplicate content"
GIVE_UP_AFTER = timedelta(minutes=15)  # a reply X could not take for this long goes to a person instead
CREDITS_RECHECK = timedelta(minutes=10)  # with the credits spent (402), posting is tried again this often


class XWriter(Protocol):
    """What the sender needs of bot.channel.x_client.XClient."""

    def create_reply(self, text: str, in_reply_to_tweet_id: str) -> str: ...
    def send_dm(self, participant_id: str, text: str) -> str: ...
    def own_tweets(self, *, since_id: str | None = None, max_pages: int = 5) -> list[Any]: ...


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    reconciled: int = 0
    rate_limited_until: datetime | None = None
    waiting_for_budget: int = 0  # due rows left for later: their channel's window is full


def is_dm_target(target_tweet_id: str) -> bool:
    return target_tweet_id.startswith("dm-")


class Sender:
    def __init__(
        self,
        engine: Engine,
        client: XWriter,
        handoff: Handoff,
        *,
        reconcile_after_s: float = 5.0,
        backoff_max_s: float = 60.0,
        batch_size: int = 50,
        clock: Callable[[], datetime] = utcnow,
        limits: PostingLimits = TIERS[DEFAULT_TIER],
    ) -> None:
        self.engine = engine
        self.client = client
        self.handoff = handoff
        self.reconcile_after = timedelta(seconds=reconcile_after_s)
        self.backoff_max = timedelta(seconds=backoff_max_s)
        self.lookup_failures = 0  # consecutive failed searches for our replies
        self.batch_size = batch_size
        self.clock = clock
        self.limits = limits
        self.paused: dict[str, datetime] = {}  # channel (tweet | dm) → X rate-limited its posting until then
        self.budget_alerted: dict[str, datetime] = {}  # channel → the moment its last "window full" alert named
        self.full_until: dict[str, datetime] = {}  # channel → its posting window is full until then (not re-counted)
        self.alerted: set[str] = set()  # kinds of alert given since posting last worked (credits, usage cap)
        self.lookups_paused_until: datetime | None = None  # reading our own tweets rate-limited until then
        self.in_flight: set[int] = set()  # outbox rows this sender claimed whose outcome an error left unwritten

    # ------------------------------------------------------------------ after a crash
    def recover(self) -> int:
        """At start-up: rows a previous run left in `sending` may have been posted; they become `unknown`."""
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(outbox)
                .where(outbox.c.state == "sending")
                .values(state="unknown", updated_at=now, next_attempt_at=now, last_error="interrupted while sending")
            )
        return result.rowcount

    def settle_interrupted(self) -> int:
        """Rows this sender claimed when an unexpected error interrupted it may have been posted: those still in
        `sending` become `unknown`, to be looked for on X. Returns how many."""
        if not self.in_flight:
            return 0
        now = self.clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(sorted(self.in_flight)), outbox.c.state == "sending")
                .values(
                    state="unknown",
                    updated_at=now,
                    next_attempt_at=now + self.reconcile_after,
                    last_error="interrupted by an unexpected error while sending",
                )  # fmt: skip
            )
        self.in_flight.clear()
        return result.rowcount

    def reconcile(self) -> int:
        """Settle `unknown` rows by looking for our reply on X. Returns how many were settled."""
        now = self.clock()
        if self.lookups_paused_until is not None and now < self.lookups_paused_until:
            return 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox).where(
                    outbox.c.state == "unknown",
                    or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now),
                )
            ).all()
        if not rows:
            return 0
        tweets = [r for r in rows if not is_dm_target(r.target_tweet_id)]
        dms = [r for r in rows if is_dm_target(r.target_tweet_id)]
        settled = 0
        if tweets:
            # Our reply to a tweet has a larger id than that tweet: our tweets since the oldest target cover all.
            oldest = min((r.target_tweet_id for r in tweets), key=id_key)
            try:
                ours = self.client.own_tweets(since_id=oldest)
            except XRateLimited as exc:
                self.lookups_paused_until = datetime.fromtimestamp(exc.reset_at, UTC)
                log.warning("X rate limit on reading our tweets; replies in doubt wait until %s", exc.reset_at)
                return 0
            except XError as exc:
                self.lookup_failures += 1
                self._delay_unknown(rows, now + self._backoff(self.lookup_failures))
                log.warning("cannot look for our replies on X yet: %s", exc)
                return 0
            self.lookup_failures = 0
            posted = {t.in_reply_to_tweet_id: t.id for t in ours if t.in_reply_to_tweet_id}
            with self.engine.begin() as conn:
                for row in tweets:
                    found = posted.get(row.target_tweet_id)
                    if found:
                        self._mark_sent(conn, row, found, now)
                    elif (row.last_error or "").startswith(DUPLICATE):
                        # X refused the text as a duplicate of another of our tweets: re-sending it cannot work.
                        self._fail(conn, row, "X refused it as a duplicate of one of our earlier tweets", now)
                    else:
                        conn.execute(
                            update(outbox)
                            .where(outbox.c.id == row.id, outbox.c.state == "unknown")
                            .values(state="pending", updated_at=now, next_attempt_at=now)
                        )
                    settled += 1
        if dms:
            # X offers no reliable way to find a sent DM by its target; a second DM is worse than none.
            with self.engine.begin() as conn:
                for row in dms:
                    self._fail(conn, row, "the DM may or may not have been delivered; check the conversation", now)
                    settled += 1
        return settled

    def _backoff(self, failures: int) -> timedelta:
        return min(timedelta(seconds=2 ** min(failures, 16)), self.backoff_max)

    def _delay_unknown(self, rows: Sequence[Row[Any]], retry_at: datetime) -> None:
        """X could not be asked: look again at `retry_at`, not on every step."""
        with self.engine.begin() as conn:
            for row in rows:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id, outbox.c.state == "unknown")
                    .values(next_attempt_at=retry_at, updated_at=self.clock())
                )

    # ------------------------------------------------------------------ posting
    @property
    def paused_until(self) -> datetime | None:
        """The latest moment until which X rate-limited posting on some channel (None: no channel is paused)."""
        return max(self.paused.values(), default=None)

    @paused_until.setter
    def paused_until(self, moment: datetime | None) -> None:
        self.paused = {} if moment is None else {"tweet": moment, "dm": moment}

    def _pause(self, exc: XRateLimited, channel: str) -> None:
        until = datetime.fromtimestamp(exc.reset_at, UTC)
        if exc.limit == "usage_cap":
            # The account's usage cap covers every kind of post: both channels wait, and the lead is told.
            self.paused = {"tweet": until, "dm": until}
            self._alert_once(
                "usage_capped",
                f"X's usage cap is reached: no replies or DMs go out. carebot tries again at {until:%H:%M} UTC.",
            )
            return
        self.paused[channel] = until
        what = "DMs" if channel == "dm" else "public replies"
        log.warning("X rate limit on posting %s; paused until %s", what, until.isoformat())

    def _out_of_credits(self, exc: XCreditsDepleted, now: datetime) -> None:
        until = now + CREDITS_RECHECK
        self.paused = {"tweet": until, "dm": until}
        self._alert_once(
            "credits_depleted",
            "X refuses to post: the account's credits are spent (HTTP 402). Replies wait, none is lost; top up "
            f"the credits. carebot tries again at {until:%H:%M} UTC.",
        )

    def _alert_once(self, kind: str, message: str) -> None:
        """An alert for the lead, once until posting works again (not on every retry)."""
        log.warning("%s", message)
        if kind in self.alerted:
            return
        self.alerted.add(kind)
        with self.engine.begin() as conn:
            add_alert(conn, kind, message)

    def budgets(self, conn: Connection, now: datetime) -> dict[str, Budget]:
        """What each channel may still send now within X's posting limits."""
        return {channel: budget(conn, self.limits, channel, now) for channel in ("tweet", "dm")}

    def due(self, conn: Connection, now: datetime, budgets: dict[str, Budget] | None = None) -> Sequence[Row[Any]]:
        """Pending rows that are due and whose channel has room (all due rows when `budgets` is None), agents'
        and the bot's replies before low-priority ones, oldest first."""
        query = select(outbox).where(_pending_and_due(now))
        low = outbox.c.kind.in_(sorted(LOW_PRIORITY_KINDS))
        for channel, until in [*self.paused.items(), *self.full_until.items()]:
            if now < until:
                query = query.where(~on_channel(channel))
        if budgets is not None:
            for channel, left in budgets.items():
                if left.remaining <= 0:
                    query = query.where(~on_channel(channel))
                elif left.low_priority_remaining <= 0:
                    query = query.where(~(on_channel(channel) & low))
        return conn.execute(query.order_by(low, outbox.c.id).limit(self.batch_size)).all()

    def _waiting_for_budget(self, conn: Connection, now: datetime, budgets: dict[str, Budget]) -> int:
        """How many due rows wait for room in a window; alerts once per full window, naming when it frees."""
        waiting = 0
        low = outbox.c.kind.in_(sorted(LOW_PRIORITY_KINDS))
        self._note_full_windows(budgets)
        for channel, left in budgets.items():
            if left.remaining > 0 and left.low_priority_remaining > 0:
                continue
            held = on_channel(channel) if left.remaining <= 0 else on_channel(channel) & low
            count = conn.execute(select(func.count()).where(_pending_and_due(now), held)).scalar_one()
            waiting += count
            if count and left.spent_window is not None and left.frees_at is not None:
                if self.budget_alerted.get(channel) == left.frees_at:
                    continue
                self.budget_alerted[channel] = left.frees_at
                what = "DMs" if channel == "dm" else "public replies"
                message = (
                    f"X allows {left.spent_window.describe()} {what} ({self.limits.tier} access); {count} wait "
                    f"until {left.frees_at:%H:%M} UTC."
                )
                add_alert(conn, "posting_budget", message, {"channel": channel, "waiting": count})
                log.warning("posting budget: %s", message)
        return waiting

    def _note_full_windows(self, budgets: dict[str, Budget]) -> None:
        """Remember until when each full channel is full: X's windows need not be counted again before then."""
        for channel, room in budgets.items():
            if room.remaining <= 0 and room.frees_at is not None:
                self.full_until[channel] = room.frees_at

    def _waiting_in_full_windows(self, conn: Connection, now: datetime) -> int:
        """Due rows of the channels whose window was full when last counted (none counted: no query)."""
        if not self.full_until:
            return 0
        full = or_(*(on_channel(channel) for channel in self.full_until))
        return int(conn.execute(select(func.count()).where(_pending_and_due(now), full)).scalar_one())

    def send_due(self) -> SendReport:
        """Post the pending replies that are due, one at a time, each claimed before its request."""
        now = self.clock()
        self.paused = {channel: until for channel, until in self.paused.items() if now < until}
        self.full_until = {channel: until for channel, until in self.full_until.items() if now < until}
        if len(self.paused) == 2:
            return SendReport(rate_limited_until=self.paused_until)
        with self.engine.connect() as conn:
            if not self.due(conn, now):
                # idle, or only rows of a channel whose window is full: X's windows need not be counted again
                waiting = self._waiting_in_full_windows(conn, now)
                return SendReport(rate_limited_until=self.paused_until, waiting_for_budget=waiting)
            budgets = self.budgets(conn, now)
            self._note_full_windows(budgets)
            rows = self.due(conn, now, budgets)
        left = {channel: (b.remaining, b.low_priority_remaining) for channel, b in budgets.items()}
        counts = {"sent": 0, "failed": 0, "deferred": 0, "unknown": 0}
        for row in rows:
            channel = channel_of(row.target_tweet_id)
            remaining, low_remaining = left[channel]
            if channel in self.paused:
                continue  # X rate-limited this channel during this step
            if remaining <= 0 or (row.kind in LOW_PRIORITY_KINDS and low_remaining <= 0):
                continue  # counted below
            outcome = self.send_one(row)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome in ("sent", "unknown"):
                spent_low = 1 if row.kind in LOW_PRIORITY_KINDS else 0
                left[channel] = (remaining - 1, min(low_remaining - spent_low, remaining - 1))
        waiting = 0
        if any(remaining <= 0 or low_remaining <= 0 for remaining, low_remaining in left.values()):
            with self.engine.begin() as conn:
                after = self.clock()
                waiting = self._waiting_for_budget(conn, after, self.budgets(conn, after))
        return SendReport(
            counts["sent"], counts["failed"], counts["deferred"], counts["unknown"],
            rate_limited_until=self.paused_until, waiting_for_budget=waiting,
        )  # fmt: skip

    def send_one(self, row: Row[Any]) -> str:
        now = self.clock()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id, outbox.c.state == "pending")
                .values(state="sending", attempts=row.attempts + 1, updated_at=now)
            ).rowcount
        if claimed != 1:
            return "deferred"  # another sender has it
        self.in_flight.add(row.id)
        try:
            outcome = self._send_claimed(row, now)
        except Exception:
            log.exception("outbox row %s: unexpected error while sending; it is looked for on X first", row.id)
            self.settle_interrupted()
            return "unknown"
        self.in_flight.discard(row.id)
        return outcome

    def _send_claimed(self, row: Row[Any], now: datetime) -> str:
        participant = self._dm_participant(row) if is_dm_target(row.target_tweet_id) else None
        if is_dm_target(row.target_tweet_id) and participant is None:
            with self.engine.begin() as conn:
                self._fail(conn, row, f"no customer is known for DM conversation {row.conversation_id}", now)
            return "failed"
        refused = None if participant is not None else self._reply_not_allowed(row)
        if refused is not None:
            with self.engine.begin() as conn:
                self._fail(conn, row, refused, now)
            return "failed"
        try:
            if participant is not None:
                posted_id = self.client.send_dm(participant, row.text)
            else:
                posted_id = self.client.create_reply(row.text, row.target_tweet_id)
        except XRateLimited as exc:
            self._pause(exc, channel_of(row.target_tweet_id))
            self._back_to_pending(row, now, datetime.fromtimestamp(exc.reset_at, UTC), str(exc), undo_attempt=True)
            return "deferred"
        except XCreditsDepleted as exc:
            self._out_of_credits(exc, now)
            self._back_to_pending(row, now, now + CREDITS_RECHECK, str(exc), undo_attempt=True)
            return "deferred"
        except XUnavailable as exc:
            if now - as_utc(row.created_at) >= GIVE_UP_AFTER:
                with self.engine.begin() as conn:
                    self._fail(conn, row, f"X was unavailable for {GIVE_UP_AFTER}: {exc}", now)
                return "failed"
            self._back_to_pending(row, now, now + self._backoff(row.attempts + 1), str(exc))
            return "deferred"
        except XOutcomeUnknown as exc:
            with self.engine.begin() as conn:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(
                        state="unknown", last_error=str(exc), updated_at=now, next_attempt_at=now + self.reconcile_after
                    )
                )
            return "unknown"
        except XReplyNotAllowed as exc:
            why = f"X refused it (HTTP {exc.status}): the author of that tweet did not mention or quote us"
            with self.engine.begin() as conn:
                self._fail(conn, row, no_reply_reason(self._customer_handle(row), why), now)
            return "failed"
        except XRejected as exc:
            with self.engine.begin() as conn:
                if exc.duplicate:
                    # Perhaps an earlier attempt of ours went through: look before giving up.
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(state="unknown", last_error=f"{DUPLICATE}: {exc}", updated_at=now, next_attempt_at=now)
                    )
                    return "unknown"
                self._fail(conn, row, f"X refused the reply: {exc}", now)
            return "failed"
        failpoint("after_post")
        self.alerted.clear()
        with self.engine.begin() as conn:
            self._mark_sent(conn, row, posted_id, now)
        failpoint("after_mark_sent")
        return "sent"

    def _reply_not_allowed(self, row: Row[Any]) -> str | None:
        """Why X's reply restriction would refuse this public reply (None: it may be tried): its target is a
        keyword-search hit that never mentioned us. Any other target (a mention, our own tweet, one carebot did
        not read) is tried, and X's 403 says the rest."""
        with self.engine.connect() as conn:
            tweet = conn.execute(
                select(inbound_tweets.c.source, inbound_tweets.c.author_username).where(
                    inbound_tweets.c.tweet_id == row.target_tweet_id
                )
            ).first()
        if tweet is None or tweet.source != "search":
            return None
        who = f"@{tweet.author_username}" if tweet.author_username else "the customer"
        return no_reply_reason(
            tweet.author_username,
            f"{who} never mentioned us in that tweet (a keyword-search hit), and X takes a reply only under a tweet "
            "that mentions us",
        )  # fmt: skip

    def _customer_handle(self, row: Row[Any]) -> str | None:
        """The handle of the customer in the row's conversation, for the agent's message."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(inbound_tweets.c.author_username)
                .where(inbound_tweets.c.conversation_id == row.conversation_id)
                .order_by(inbound_tweets.c.fetched_at)
                .limit(1)
            ).scalar()

    # ------------------------------------------------------------------ state changes
    def _dm_participant(self, row: Row[Any]) -> str | None:
        with self.engine.connect() as conn:
            author = conn.execute(
                select(inbound_tweets.c.author_id).where(inbound_tweets.c.conversation_id == row.conversation_id)
            ).first()
        if author is None and (row.conversation_id or "").startswith("dm-") and row.conversation_id[3:].isdigit():
            return str(row.conversation_id[3:])  # a first DM to a customer who has not written by DM (dm-<their id>)
        return None if author is None else str(author.author_id)

    def _back_to_pending(
        self, row: Row[Any], now: datetime, retry_at: datetime, error: str, *, undo_attempt: bool = False
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(
                    state="pending",
                    next_attempt_at=retry_at,
                    last_error=error,
                    updated_at=now,
                    attempts=row.attempts if undo_attempt else row.attempts + 1,
                )  # fmt: skip
            )

    def _mark_sent(self, conn: Connection, row: Row[Any], posted_id: str, now: datetime) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == row.id)
            .values(state="sent", posted_tweet_id=posted_id, sent_at=now, updated_at=now, last_error=None)
        )
        if row.ticket_id is not None:
            self.handoff.mark_delivery(conn, row.id, "sent", posted_id)

    def _fail(self, conn: Connection, row: Row[Any], error: str, now: datetime) -> None:
        """The reply will not be posted: say so, and make sure a person has the tweet."""
        conn.execute(
            update(outbox).where(outbox.c.id == row.id).values(state="failed", last_error=error, updated_at=now)
        )
        add_alert(conn, "reply_failed", f"A reply to tweet {row.target_tweet_id} was not posted: {error}")
        if row.ticket_id is not None:
            self.handoff.mark_delivery(conn, row.id, "failed", None)
            return
        tweet = conn.execute(select(inbound_tweets).where(inbound_tweets.c.tweet_id == row.target_tweet_id)).first()
        if tweet is None:
            return
        ticket_id = self.handoff.escalate(
            conn,
            Escalation(
                conversation_id=tweet.conversation_id or tweet.tweet_id, tweet_id=tweet.tweet_id,
                customer_id=tweet.author_id, customer_handle=tweet.author_username, text=tweet.text,
                created_at=tweet.created_at or now, source="dm" if tweet.source == "dm" else "mention",
                band="human", reasons=[f"The bot's reply could not be posted ({error}), so a person takes it."],
                priority=2, skill="general",
            ),
        )  # fmt: skip
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(ticket_id=ticket_id))


def _pending_and_due(now: datetime) -> ColumnElement[bool]:
    """Outbox rows waiting to be sent whose next attempt is due."""
    return and_(outbox.c.state == "pending", or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now))
