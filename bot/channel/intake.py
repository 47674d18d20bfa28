"""Intake: read mentions, keyword searches and DMs from X and store each tweet once.

Invariant 1 of the design: a fetched tweet is stored (unique tweet id) in the same transaction that moves the
read checkpoint past it, so a crash between fetch and commit only means the tweets are fetched again; the
duplicates are absorbed by the unique key. The mentions endpoint serves only the 800 most recent mentions: when a
read ends before reaching the checkpoint, an alert is raised and the gap is backfilled through recent search.

Recent search reaches back 7 days, and X refuses (400) a since_id or until_id older than that: a keyword without
hits for a week, or a gap backfill after an outage of more than a week, would fail on every poll. On that refusal
the search is re-anchored inside X's window (start_time = its oldest time + SEARCH_WINDOW_MARGIN, for clock skew),
what is there is read, an alert says what could not be reached, and the checkpoint moves into the window so the
next poll asks with a since_id X accepts. The mentions endpoint has no 7-day rule (only its 800), so it needs none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from bot.channel.errors import XOutsideSearchWindow
from bot.channel.failpoints import failpoint
from bot.channel.models import inbound_tweets
from bot.channel.store import (
    add_alert,
    get_checkpoint,
    id_at,
    id_key,
    inbound_row,
    insert_ignoring_duplicates,
    newest_id,
    set_checkpoint,
    utcnow,
)

log = logging.getLogger(__name__)

MENTIONS = "mentions"
DMS = "dms"
SEARCH_WINDOW = timedelta(days=7)  # how far back X's recent search reaches
# Re-anchored searches start this much after the oldest time X takes: for clock skew between us and X, the minute
# X rounds its message to, and the time the request takes. Tweets in these first minutes of the 7 days are given up.
SEARCH_WINDOW_MARGIN = timedelta(minutes=2)
# After a re-anchored search the checkpoint moves at least to an id of this long before the read: search shows a
# tweet some seconds after it was posted, so no tweet newer than that is skipped, and a keyword without any hit
# gets a since_id X accepts for the next 7 days.
SEARCH_INDEXING_LAG = timedelta(minutes=5)


class XReader(Protocol):
    """What intake needs of bot.channel.x_client.XClient."""

    def me(self) -> Any: ...
    def mentions(self, since_id: str | None, *, max_pages: int = 10) -> Any: ...
    def search_recent(
        self,
        query: str,
        *,
        since_id: str | None = None,
        until_id: str | None = None,
        start_time: datetime | None = None,
        max_pages: int = 5,
    ) -> list[Any]: ...
    def dm_events(self, *, max_pages: int = 3, stop_at: str | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class IntakeReport:
    fetched: int
    new: int
    gap: bool = False
    reanchored: bool = False  # the checkpoint was older than recent search's 7 days: read from inside them


@dataclass(frozen=True)
class _Search:
    """A recent search from a checkpoint: its hits, and the start_time it used when X refused the checkpoint as
    older than its 7 days (None: since_id as asked)."""

    hits: list[Any]
    reanchored_at: datetime | None = None


@dataclass(frozen=True)
class _DmAsTweet:
    """A received DM in the shape of a tweet, so it is stored and triaged like one (source "dm")."""

    id: str
    text: str
    author_id: str
    author_username: str | None
    conversation_id: str
    in_reply_to_tweet_id: str | None
    created_at: Any


def mention_query(username: str) -> str:
    """The recent-search query for the tweets that mention our account (@username): a gap's backfill."""
    return f"@{username}"


def dm_key(event_id: str) -> str:
    return f"dm-{event_id}"


def _window_anchor(refused: XOutsideSearchWindow, now: datetime) -> datetime:
    """Where a re-anchored search starts: the oldest time recent search takes, by our clock or by X's word when
    its message names a later one, plus SEARCH_WINDOW_MARGIN."""
    oldest = now - SEARCH_WINDOW
    if refused.window_start is not None:
        oldest = max(oldest, datetime.fromtimestamp(refused.window_start, UTC))
    return oldest + SEARCH_WINDOW_MARGIN


class Intake:
    def __init__(self, engine: Engine, client: XReader) -> None:
        self.engine = engine
        self.client = client

    def _store(self, rows: Sequence[dict[str, Any]], checkpoint: str, since_id: str | None) -> int:
        with self.engine.begin() as conn:
            new = insert_ignoring_duplicates(conn, inbound_tweets, rows)
            set_checkpoint(conn, checkpoint, since_id)
        return new

    def _search(self, query: str, since: str | None, until_id: str | None = None) -> _Search:
        """Recent search for what is newer than `since` (and older than until_id). When X refuses `since` as older
        than its 7 days, the search is asked again from the oldest time X takes (plus the margin). A refused
        until_id is raised: nothing before it is within X's reach."""
        try:
            return _Search(self.client.search_recent(query, since_id=since, until_id=until_id))
        except XOutsideSearchWindow as refused:
            if "until_id" in refused.parameters or "since_id" not in refused.parameters:
                raise
            anchor = _window_anchor(refused, utcnow())
            log.warning(
                "search %r: X refused since_id %s as older than recent search's 7 days; reading from %s instead",
                query, since, anchor.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )  # fmt: skip
            return _Search(self.client.search_recent(query, until_id=until_id, start_time=anchor), anchor)

    def read_mentions(self) -> IntakeReport:
        """Fetch mentions newer than the checkpoint; store them and move the checkpoint in one transaction."""
        me = self.client.me()
        with self.engine.connect() as conn:
            since = get_checkpoint(conn, MENTIONS)
        read = self.client.mentions(since)
        now = utcnow()
        tweets = [t for t in read.tweets if t.author_id != me.id]
        rows = [inbound_row(t, "mention", now=now) for t in tweets]
        gap = since is not None and not read.complete
        backfill = _Search([])
        unreachable = False
        if gap:
            oldest = min((t.id for t in read.tweets), key=id_key, default=None)
            try:
                backfill = self._search(mention_query(me.username), since, until_id=oldest)
            except XOutsideSearchWindow as refused:
                if "until_id" not in refused.parameters:
                    raise
                unreachable = True  # even the oldest mention served is older than search's 7 days
            known = {row["tweet_id"] for row in rows}
            rows += [
                inbound_row(t, "backfill", now=now)
                for t in backfill.hits
                if t.id not in known and t.author_id != me.id
            ]
        failpoint("after_fetch")
        beyond_search = unreachable or backfill.reanchored_at is not None
        with self.engine.begin() as conn:
            new = insert_ignoring_duplicates(conn, inbound_tweets, rows)
            if gap:
                backfilled = len(rows) - len(tweets)
                message = (
                    f"More mentions arrived than X's mentions endpoint returns (800) since the last read; "
                    f"{backfilled} were backfilled through search."
                )
                if beyond_search:
                    message += (
                        " The last read was more than 7 days ago: mentions from before recent search's 7 days "
                        "could not be backfilled."
                    )
                details = {"since_id": since, "fetched": len(read.tweets), "beyond_search": beyond_search}
                add_alert(conn, "mention_gap", message, details)
                log.warning(
                    "mention gap since %s: backfilled %d through search%s", since, backfilled,
                    "; older mentions are beyond recent search's 7 days" if beyond_search else "",
                )  # fmt: skip
            set_checkpoint(conn, MENTIONS, newest_id([read.newest_id, *(row["tweet_id"] for row in rows)]))
        return IntakeReport(len(read.tweets), new, gap, reanchored=beyond_search)

    def read_search(self, query: str) -> IntakeReport:
        """Keyword search for monitoring: hits are for humans only, unless they address us after all."""
        me = self.client.me()
        checkpoint = f"search:{query}"
        with self.engine.connect() as conn:
            since = get_checkpoint(conn, checkpoint)
        started = utcnow()
        search = self._search(query, since)
        hits = search.hits
        now = utcnow()
        handle = f"@{me.username}".casefold()
        rows = []
        for tweet in hits:
            if tweet.author_id == me.id:
                continue
            addressed = tweet.in_reply_to_user_id == me.id or handle in tweet.text.casefold()
            rows.append(inbound_row(tweet, "mention" if addressed else "search", now=now, search_query=query))
        moved_to = newest_id(t.id for t in hits)
        if search.reanchored_at is None:
            new = self._store(rows, checkpoint, moved_to)
            return IntakeReport(len(hits), new)
        # Into X's window even without a hit, or the next poll would be refused again.
        moved_to = newest_id([moved_to, id_at(started - SEARCH_INDEXING_LAG)])
        message = (
            f"The keyword search {query!r} was last read more than 7 days ago, longer back than X's recent search "
            f"reaches; it was read again from {search.reanchored_at:%Y-%m-%d %H:%M} UTC ({len(hits)} found). "
            "Older tweets can no longer be searched."
        )
        details = {
            "query": query,
            "since_id": since,
            "start_time": search.reanchored_at.isoformat(),
            "found": len(hits),
        }
        with self.engine.begin() as conn:
            new = insert_ignoring_duplicates(conn, inbound_tweets, rows)
            add_alert(conn, "search_window", message, details)
            set_checkpoint(conn, checkpoint, moved_to)
        return IntakeReport(len(hits), new, reanchored=True)

    def read_dms(self) -> IntakeReport:
        """Received DMs, stored as inbound messages of source "dm" (a DM conversation per customer)."""
        me = self.client.me()
        with self.engine.connect() as conn:
            newest_stored = get_checkpoint(conn, DMS)
        events = self.client.dm_events(stop_at=newest_stored)
        now = utcnow()
        rows = [
            inbound_row(
                _DmAsTweet(dm_key(e.id), e.text, e.sender_id, e.sender_username, f"dm-{e.sender_id}", None,
                           e.created_at),  # fmt: skip
                "dm", now=now,
            )  # fmt: skip
            for e in events
            if e.sender_id != me.id
        ]
        new = self._store(rows, DMS, newest_id(e.id for e in events))
        return IntakeReport(len(events), new)
