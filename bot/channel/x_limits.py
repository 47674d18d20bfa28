"""X's published limits, one table per access tier: the posting budget they leave for the sender, and the read
budget that paces the worker's polls.

X counts requests per endpoint in sliding windows; over a limit it answers 429 and the reply waits (bot.channel.
sender pauses until X's reset). carebot would rather not reach that point: an outage storm, an incident update to
every linked customer or a round of satisfaction questions could otherwise spend the whole window and leave an
agent's urgent reply waiting for a quarter of an hour. So the sender counts what it has posted in each window and
only sends a row while the window has room; satisfaction questions (outbox kind `csat_question`) may use only part
of the DM window, so that agents' DMs always find room.

The figures (X's rate-limit tables as carebot read them on 2026-12-01; README, "The X channel"):
- pay-per-use (the default): POST /2/tweets 100 per 15 minutes per user, 10,000 per 24 hours per app;
  POST /2/dm_conversations/with/:participant_id/messages 15 per 15 minutes and 1,440 per 24 hours.
- basic: POST /2/tweets 100 per 24 hours per user and 1,667 per 24 hours per app. X's tables for basic give no
  separate DM figure that carebot could confirm, so the pay-per-use DM limits apply.

Reads (X's per-user limits for 15 minutes, pay-per-use): mentions 300, recent search 300, users/me 75, DM events
15. Basic: mentions 10 per 15 minutes, recent search 60 per 15 minutes, DM events 1 per 24 hours; for users/me
carebot could confirm no basic figure, so pay-per-use's 75 apply (the worker asks once per start). The worker
(bot.channel.worker) paces each read endpoint so that its regular polls use READ_POLL_SHARE of the window
(DM_POLL_SHARE for DM events, whose limit is the tightest), and counts every request it makes (pages and retries
too) in a sliding window, so a gap backfill's extra pages use the spare part and never run past X's limit. The
tier `unmetered` has the pay-per-use posting limits and no read limits: it is the sandbox X's unmetered mode, for
tests and benchmarks that poll fast; against X it would meet X's 429s.

What the sender counts is its own outbox: rows sent, or in doubt (posted or not), in the window. A request X
refused also counts against X's window but not here; the sender then meets X's 429 and pauses as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from bot.channel.models import outbox

FIFTEEN_MINUTES: Final = timedelta(minutes=15)
ONE_DAY: Final = timedelta(hours=24)

# Outbox kinds that may use only part of a window: they can always wait, an agent's reply cannot.
LOW_PRIORITY_KINDS: Final = frozenset({"csat_question"})
LOW_PRIORITY_SHARE: Final = 0.5  # of each window's limit


@dataclass(frozen=True)
class Window:
    limit: int
    length: timedelta

    @property
    def span(self) -> str:
        return "15 minutes" if self.length == FIFTEEN_MINUTES else "24 hours"

    def describe(self) -> str:
        return f"{self.limit} per {self.span}"


@dataclass(frozen=True)
class PostingLimits:
    """How many public replies (tweets) and how many DMs the account may send in each of X's windows."""

    tier: str
    tweets: tuple[Window, ...]
    dms: tuple[Window, ...]

    def windows(self, channel: str) -> tuple[Window, ...]:
        return self.dms if channel == "dm" else self.tweets


TIERS: Final[dict[str, PostingLimits]] = {
    "pay-per-use": PostingLimits(
        "pay-per-use",
        tweets=(Window(100, FIFTEEN_MINUTES), Window(10_000, ONE_DAY)),
        dms=(Window(15, FIFTEEN_MINUTES), Window(1_440, ONE_DAY)),
    ),
    "basic": PostingLimits(
        "basic",
        tweets=(Window(100, ONE_DAY), Window(1_667, ONE_DAY)),
        dms=(Window(15, FIFTEEN_MINUTES), Window(1_440, ONE_DAY)),
    ),
}
TIERS["unmetered"] = PostingLimits("unmetered", TIERS["pay-per-use"].tweets, TIERS["pay-per-use"].dms)
DEFAULT_TIER: Final = "pay-per-use"

READ_ENDPOINTS: Final = ("mentions", "search", "dm_events", "users_me")
READ_LIMITS: Final[dict[str, dict[str, Window]]] = {
    "pay-per-use": {
        "mentions": Window(300, FIFTEEN_MINUTES), "search": Window(300, FIFTEEN_MINUTES),
        "dm_events": Window(15, FIFTEEN_MINUTES), "users_me": Window(75, FIFTEEN_MINUTES),
    },
    "basic": {
        "mentions": Window(10, FIFTEEN_MINUTES), "search": Window(60, FIFTEEN_MINUTES),
        "dm_events": Window(1, ONE_DAY), "users_me": Window(75, FIFTEEN_MINUTES),
    },
    "unmetered": {},
}  # fmt: skip
READ_POLL_SHARE: Final = 0.8  # of a read endpoint's window that regular polls use; the rest is for backfill pages
DM_POLL_SHARE: Final = 0.6  # DM events: 9 of pay-per-use's 15 reads per 15 minutes, one every 100 s


def read_limits_for(tier: str) -> dict[str, Window]:
    """The read limits of an access tier by endpoint (none for `unmetered`)."""
    limits_for(tier)  # an unknown tier is the same ValueError
    return READ_LIMITS[tier]


def poll_spacing_s(window: Window, share: float, readers: int = 1) -> float:
    """Seconds between regular polls of one of `readers` that share an endpoint's window, so that together they
    use `share` of it (at least one poll per window)."""
    polls = max(1, int(window.limit * share))
    return window.length.total_seconds() * readers / polls


def limits_for(tier: str) -> PostingLimits:
    """The posting limits of an access tier (see TIERS); an unknown tier is a ValueError naming the known ones."""
    try:
        return TIERS[tier]
    except KeyError:
        raise ValueError(f"unknown X access tier {tier!r}; carebot knows {', '.join(sorted(TIERS))}") from None


def channel_of(target_tweet_id: str) -> str:
    """`dm` for a DM outbox row (its target is `dm-…`), else `tweet`."""
    return "dm" if target_tweet_id.startswith("dm-") else "tweet"


@dataclass(frozen=True)
class Budget:
    """What one channel may still send now, and when the fullest window frees a request when it is spent."""

    channel: str
    remaining: int  # requests left in the tightest window
    low_priority_remaining: int  # of those, what a low-priority kind may use
    frees_at: datetime | None  # when a request is next freed, if remaining is 0 (else None)
    spent_window: Window | None  # the window that is full, if any

    def allows(self, kind: str) -> bool:
        return (self.low_priority_remaining if kind in LOW_PRIORITY_KINDS else self.remaining) > 0


def on_channel(channel: str) -> ColumnElement[bool]:
    is_dm = outbox.c.target_tweet_id.like("dm-%")
    return is_dm if channel == "dm" else ~is_dm


def _in_window(channel: str, since: datetime) -> ColumnElement[bool]:
    """Rows of the channel that used a request of X's window starting at `since`: sent in it, or being sent or
    in doubt (posted or not) since then."""
    return and_(
        on_channel(channel),
        or_(
            and_(outbox.c.state == "sent", outbox.c.sent_at > since),
            and_(outbox.c.state.in_(("sending", "unknown")), outbox.c.updated_at > since),
        ),
    )


@dataclass(frozen=True)
class WindowUse:
    window: Window
    used: int


def window_use(conn: Connection, limits: PostingLimits, channel: str, now: datetime) -> list[WindowUse]:
    """How many requests of each of the channel's windows are used now (for the lead view)."""
    uses = []
    for window in limits.windows(channel):
        used = conn.execute(select(func.count()).where(_in_window(channel, now - window.length))).scalar_one()
        uses.append(WindowUse(window, int(used)))
    return uses


def budget(conn: Connection, limits: PostingLimits, channel: str, now: datetime) -> Budget:
    """The channel's budget from the outbox: rows sent in each window, and rows in doubt or being sent."""
    remaining: int | None = None
    low_remaining: int | None = None
    frees_at: datetime | None = None
    spent: Window | None = None
    for window in limits.windows(channel):
        used_at = func.coalesce(outbox.c.sent_at, outbox.c.updated_at)
        in_window = _in_window(channel, now - window.length)
        used, oldest = conn.execute(select(func.count(), func.min(used_at)).where(in_window)).one()
        low_used = conn.execute(
            select(func.count()).where(in_window, outbox.c.kind.in_(sorted(LOW_PRIORITY_KINDS)))
        ).scalar_one()
        left = max(window.limit - used, 0)
        low_left = max(min(int(window.limit * LOW_PRIORITY_SHARE) - low_used, left), 0)
        if remaining is None or left < remaining:
            remaining = left
        low_remaining = low_left if low_remaining is None else min(low_remaining, low_left)
        if left == 0 and oldest is not None:
            freed = _as_aware(oldest, now) + window.length
            if frees_at is None or freed > frees_at:
                frees_at, spent = freed, window
    return Budget(channel, remaining or 0, low_remaining or 0, frees_at, spent)


def _as_aware(moment: datetime, like: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=like.tzinfo)
