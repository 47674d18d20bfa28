"""Intake: read mentions, keyword searches and DMs from X and store each tweet once.

Invariant 1 of the design: a fetched tweet is stored (unique tweet id) in the same transaction that moves the
read checkpoint past it, so a crash between fetch and commit only means the tweets are fetched again; the
duplicates are absorbed by the unique key. The mentions endpoint serves only the 800 most recent mentions: when a
read ends before reaching the checkpoint, an alert is raised and the gap is backfilled through recent search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine

from bot.channel.failpoints import failpoint
from bot.channel.models import inbound_tweets
from bot.channel.store import (
    add_alert,
    get_checkpoint,
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


class XReader(Protocol):
    """What intake needs of bot.channel.x_client.XClient."""

    def me(self) -> Any: ...
    def mentions(self, since_id: str | None, *, max_pages: int = 10) -> Any: ...
    def search_recent(
        self, query: str, *, since_id: str | None = None, until_id: str | None = None, max_pages: int = 5
    ) -> list[Any]: ...
    def dm_events(self, *, max_pages: int = 3) -> list[Any]: ...


@dataclass(frozen=True)
class IntakeReport:
    fetched: int
    new: int
    gap: bool = False


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


def dm_key(event_id: str) -> str:
    return f"dm-{event_id}"


class Intake:
    def __init__(self, engine: Engine, client: XReader) -> None:
        self.engine = engine
        self.client = client

    def _store(self, rows: Sequence[dict[str, Any]], checkpoint: str, since_id: str | None) -> int:
        with self.engine.begin() as conn:
            new = insert_ignoring_duplicates(conn, inbound_tweets, rows)
            set_checkpoint(conn, checkpoint, since_id)
        return new

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
        if gap:
            oldest = min((t.id for t in read.tweets), key=id_key, default=None)
            backfill = self.client.search_recent(f"@{me.username}", since_id=since, until_id=oldest)
            known = {row["tweet_id"] for row in rows}
            rows += [
                inbound_row(t, "backfill", now=now)
                for t in backfill
                if t.id not in known and t.author_id != me.id
            ]
        failpoint("after_fetch")
        with self.engine.begin() as conn:
            new = insert_ignoring_duplicates(conn, inbound_tweets, rows)
            if gap:
                add_alert(
                    conn, "mention_gap",
                    f"More mentions arrived than X's mentions endpoint returns (800) since the last read; "
                    f"{len(rows) - len(tweets)} were backfilled through search.",
                    {"since_id": since, "fetched": len(read.tweets)},
                )  # fmt: skip
                log.warning("mention gap since %s: backfilled %d through search", since, len(rows) - len(tweets))
            set_checkpoint(conn, MENTIONS, newest_id([read.newest_id, *(row["tweet_id"] for row in rows)]))
        return IntakeReport(len(read.tweets), new, gap)

    def read_search(self, query: str) -> IntakeReport:
        """Keyword search for monitoring: hits are for humans only, unless they address us after all."""
        me = self.client.me()
        checkpoint = f"search:{query}"
        with self.engine.connect() as conn:
            since = get_checkpoint(conn, checkpoint)
        hits = self.client.search_recent(query, since_id=since)
        now = utcnow()
        handle = f"@{me.username}".casefold()
        rows = []
        for tweet in hits:
            if tweet.author_id == me.id:
                continue
            addressed = tweet.in_reply_to_user_id == me.id or handle in tweet.text.casefold()
            rows.append(inbound_row(tweet, "mention" if addressed else "search", now=now, search_query=query))
        new = self._store(rows, checkpoint, newest_id(t.id for t in hits))
        return IntakeReport(len(hits), new)

    def read_dms(self) -> IntakeReport:
        """Received DMs, stored as inbound messages of source "dm" (a DM conversation per customer)."""
        me = self.client.me()
        events = self.client.dm_events()
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
