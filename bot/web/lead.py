"""The lead view's service layer: the roster, a live picture of the shift, and surge detection.

The roster and every change to it (status, capacity, reassigning a ticket) go through handoff.Handoff, which
audits them. The picture of the shift is read from the handoff tables and the X channel's stored tweets: open
tickets by priority, SLA breaches, the oldest waiting ticket, inbound volume in the last hour against the hour
before, and the share of it that went to people. A surge (an outage storm) is when that volume or that share
passes the configured levels; the lead view then proposes on-call agents to bring online.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select

from bot.channel.models import alerts, inbound_tweets, outbox, worker_heartbeats
from bot.channel.x_limits import DEFAULT_TIER, TIERS, PostingLimits, window_use
from bot.db import as_utc
from bot.settings import Settings
from bot.web.console import ConsoleError
from handoff import HandoffError, TicketNotFound
from handoff.models import tickets
from handoff.states import CLAIMABLE_STATES

ESCALATED_BANDS = ("human", "approve")
IGNORE_REASONS = {
    "own_tweet": "our own tweets", "spam": "spam or off-topic", "opt_out": "explicit opt-outs",
    "duplicate": "repeats of a tweet already handled", "closing_thanks": "thank-yous closing an answered conversation",
    "csat_answer": "answers to a satisfaction question",
}  # fmt: skip


@dataclass(frozen=True)
class ChannelHealth:
    """How the X channel is doing: the worker's last sign of life, replies not yet out, recent alerts."""

    worker_seen_s: int | None  # seconds since the worker's last step; None: never seen
    replies_waiting: int  # pending or being sent
    replies_in_doubt: int  # posted or not: being looked for on X
    replies_failed_today: int
    tweets_waiting_for_nlu: int
    alerts: list[Any]  # the latest, newest first: kind, message, created_at
    ignored_today: tuple[tuple[str, int], ...] = ()  # (what the reason says, how many) in the last 24 hours
    posting: tuple[PostingUse, ...] = ()  # how much of X's posting limits is used, per channel and window
    posting_tier: str = DEFAULT_TIER  # the X access tier whose limits those are

    @property
    def worker_stale(self) -> bool:
        return self.worker_seen_s is None or self.worker_seen_s > 60


@dataclass(frozen=True)
class PostingUse:
    """How much of one of X's posting windows the account has used (bot.channel.x_limits)."""

    channel: str  # "public replies" | "DMs"
    window: str  # "15 minutes" | "24 hours"
    used: int
    limit: int

    @property
    def full(self) -> bool:
        return self.used >= self.limit


class LeadError(ConsoleError):
    """The change cannot be made; the message says why, in words a lead reads."""


@dataclass(frozen=True)
class SurgeLevels:
    volume_ratio: float  # tweets in the last hour ÷ the hour before
    min_tweets_per_hour: int  # below this volume there is no surge, whatever the ratio
    escalation_share: float  # share of the last hour's triaged tweets that went to people

    @classmethod
    def from_settings(cls, settings: Settings) -> SurgeLevels:
        return cls(settings.surge_volume_ratio, settings.surge_min_tweets_per_hour, settings.surge_escalation_share)


@dataclass(frozen=True)
class Volume:
    last_hour: int
    hour_before: int
    triaged_last_hour: int
    escalated_last_hour: int

    @property
    def ratio(self) -> float | None:
        """Last hour ÷ the hour before; None when the hour before had no tweets."""
        return None if self.hour_before == 0 else self.last_hour / self.hour_before

    @property
    def escalation_share(self) -> float | None:
        return None if self.triaged_last_hour == 0 else self.escalated_last_hour / self.triaged_last_hour


@dataclass(frozen=True)
class Surge:
    reasons: list[str]  # empty: no surge
    proposals: list[Any]  # handoff RosterRow of on-call agents to bring online, best first
    missing_capacity: int  # waiting tickets beyond the free capacity of the agents online

    @property
    def active(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class Shift:
    now: datetime
    open_by_priority: dict[int, int]  # priority → open tickets (every priority 1-4 present)
    open_total: int
    waiting: int  # open and held by nobody
    breached: int  # open, no first response, past the SLA deadline
    oldest_waiting_id: int | None
    oldest_waiting_s: int | None
    tickets_last_hour: int  # tickets created or reopened in the last hour…
    tickets_hour_before: int  # …and in the hour before it
    volume: Volume
    online: int
    free_capacity: int  # free places of agents online
    surge: Surge


def detect_surge(
    volume: Volume, levels: SurgeLevels, roster: list[Any], *, waiting: int
) -> Surge:
    """Whether the shift is in a surge, why, and which on-call agents (offline or away) to bring online."""
    reasons = []
    if volume.last_hour >= levels.min_tweets_per_hour:
        ratio = volume.ratio
        if ratio is None or ratio >= levels.volume_ratio:
            before = "none" if ratio is None else f"{volume.hour_before}, ×{ratio:.1f}"
            reasons.append(
                f"{volume.last_hour} tweets in the last hour (the hour before: {before}; the surge level is "
                f"×{levels.volume_ratio:g} from {levels.min_tweets_per_hour} an hour)."
            )
        share = volume.escalation_share
        if share is not None and share >= levels.escalation_share:
            reasons.append(
                f"{share:.0%} of the last hour's tweets went to people (the surge level is "
                f"{levels.escalation_share:.0%})."
            )
    free = sum(row.free for row in roster if row.agent.status == "online")
    missing = max(waiting - free, 0)
    proposals: list[Any] = []
    if reasons:
        candidates = [row for row in roster if row.agent.kind == "on_call" and row.agent.status != "online"]
        candidates.sort(key=lambda r: (r.agent.status != "away", -r.agent.capacity, r.agent.display_name))
        wanted = max(1, math.ceil(missing / max(1, max((r.agent.capacity for r in candidates), default=1))))
        covered = 0
        for row in candidates:
            if len(proposals) >= wanted and covered >= missing:
                break
            proposals.append(row)
            covered += row.agent.capacity
    return Surge(reasons, proposals, missing)


class LeadService:
    def __init__(
        self,
        handoff: Any,
        engine: Engine,
        levels: SurgeLevels,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        posting_limits: PostingLimits = TIERS[DEFAULT_TIER],
    ) -> None:
        self.handoff = handoff
        self.engine = engine
        self.levels = levels
        self.clock = clock
        self.posting_limits = posting_limits

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except TicketNotFound as exc:
            raise LeadError(str(exc) or "There is no such ticket.") from exc
        except HandoffError as exc:
            raise LeadError(str(exc)) from exc

    # ------------------------------------------------ reading

    def roster(self) -> list[Any]:
        rows: list[Any] = self.handoff.roster()
        return rows

    def volume(self) -> Volume:
        now = self.clock()
        hour_ago, two_hours_ago = now - timedelta(hours=1), now - timedelta(hours=2)
        at = inbound_tweets.c.fetched_at
        escalated = inbound_tweets.c.band.in_(ESCALATED_BANDS)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    func.count().filter(at >= hour_ago).label("last_hour"),
                    func.count().filter(and_(at >= two_hours_ago, at < hour_ago)).label("hour_before"),
                    func.count().filter(and_(at >= hour_ago, inbound_tweets.c.band.is_not(None))).label("triaged"),
                    func.count().filter(and_(at >= hour_ago, escalated)).label("escalated"),
                ).where(at >= two_hours_ago, inbound_tweets.c.source != "dm")
            ).one()
        return Volume(int(row.last_hour), int(row.hour_before), int(row.triaged), int(row.escalated))

    def shift(self) -> Shift:
        now = self.clock()
        picture = self.handoff.shift()  # open work by priority, SLA breaches, the longest wait, tickets per hour
        with self.engine.connect() as conn:
            waiting = conn.execute(select(func.count()).where(tickets.c.state.in_(CLAIMABLE_STATES))).scalar_one()
        roster = self.roster()
        volume = self.volume()
        online = [row for row in roster if row.agent.status == "online"]
        oldest = picture.oldest_waiting
        oldest_since = as_utc(oldest.waiting_since) if oldest is not None else None
        return Shift(
            now=now, open_by_priority=dict(picture.open_by_priority), open_total=picture.open_tickets,
            waiting=int(waiting), breached=int(picture.sla_breaches),
            oldest_waiting_id=oldest.id if oldest is not None else None,
            oldest_waiting_s=max(0, int((now - oldest_since).total_seconds())) if oldest_since else None,
            tickets_last_hour=picture.created_last_hour, tickets_hour_before=picture.created_hour_before,
            volume=volume, online=len(online), free_capacity=sum(row.free for row in online),
            surge=detect_surge(volume, self.levels, roster, waiting=int(waiting)),
        )  # fmt: skip

    def channel_health(self, *, alert_limit: int = 8) -> ChannelHealth:
        now = self.clock()
        with self.engine.connect() as conn:
            seen = conn.execute(select(func.max(worker_heartbeats.c.seen_at))).scalar()
            states: dict[str, int] = dict(
                conn.execute(
                    select(outbox.c.state, func.count()).where(
                        (outbox.c.state != "failed") | (outbox.c.updated_at >= now - timedelta(days=1))
                    ).group_by(outbox.c.state)
                ).all()
            )
            waiting_for_nlu = conn.execute(
                select(func.count()).select_from(inbound_tweets).where(inbound_tweets.c.state == "waiting")
            ).scalar_one()
            ignored = conn.execute(
                select(inbound_tweets.c.ignore_reason, func.count())
                .where(inbound_tweets.c.band == "ignore", inbound_tweets.c.fetched_at >= now - timedelta(days=1))
                .group_by(inbound_tweets.c.ignore_reason)
            ).all()
            recent = conn.execute(
                select(alerts.c.kind, alerts.c.message, alerts.c.created_at)
                .where(alerts.c.created_at >= now - timedelta(days=1))
                .order_by(alerts.c.id.desc())
                .limit(alert_limit)
            ).all()
            posting = tuple(
                PostingUse("DMs" if channel == "dm" else "public replies", use.window.span, use.used,
                           use.window.limit)
                for channel in ("tweet", "dm") for use in window_use(conn, self.posting_limits, channel, now)
            )  # fmt: skip
        seen_at = as_utc(seen)
        return ChannelHealth(
            worker_seen_s=max(0, int((now - seen_at).total_seconds())) if seen_at else None,
            replies_waiting=int(states.get("pending", 0) + states.get("sending", 0)),
            replies_in_doubt=int(states.get("unknown", 0)), replies_failed_today=int(states.get("failed", 0)),
            tweets_waiting_for_nlu=int(waiting_for_nlu), alerts=list(recent), posting=posting,
            posting_tier=self.posting_limits.tier,
            ignored_today=tuple(
                sorted(((IGNORE_REASONS.get(reason or "", reason or "no reason recorded"), int(count))
                        for reason, count in ignored), key=lambda pair: -pair[1])
            ),
        )  # fmt: skip

    def open_tickets(self, *, limit: int = 200) -> list[Any]:
        rows: list[Any] = self.handoff.queue(limit=limit)
        return rows

    def audit(self, *, limit: int = 30) -> list[Any]:
        events: list[Any] = self.handoff.audit(limit=limit)
        return events

    # ------------------------------------------------ changes (audited by handoff)

    def set_status(self, agent_id: int, status: str, *, by: str) -> Any:
        return self._call(lambda: self.handoff.set_status(agent_id, status, by))

    def set_capacity(self, agent_id: int, capacity: int, *, by: str) -> Any:
        return self._call(lambda: self.handoff.set_capacity(agent_id, capacity, by))

    def reassign(self, ticket_id: int, to_agent_id: int, *, by: str) -> Any:
        return self._call(lambda: self.handoff.reassign(ticket_id, to_agent_id, by))

    def agent(self, agent_id: int) -> Any:
        return self._call(lambda: self.handoff.agent(agent_id))
