"""The X channel's bookkeeping in the database: storing fetched tweets once, read checkpoints, opt-outs and alerts.

Tweet ids are decimal strings; `newest_id` compares them as numbers (length first), as X's ids are 64-bit integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.channel.models import alerts, checkpoints, opt_outs


def utcnow() -> datetime:
    return datetime.now(UTC)


def id_key(tweet_id: str) -> tuple[int, str]:
    return (len(tweet_id), tweet_id)


def newest_id(ids: Iterable[str | None]) -> str | None:
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


TWITTER_EPOCH_MS = 1288834974657  # X's ids are snowflakes: (id >> 22) + this is when the id was made, in ms


def id_at(moment: datetime) -> str:
    """The smallest id X can give a tweet made at `moment`: a since_id that every later tweet is newer than."""
    return str(max(0, int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22)


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping those whose primary or unique key exists already. Returns how many were new."""
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - carebot supports SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    new = 0
    for row in rows:  # one by one: rowcount tells which were new on both databases
        new += conn.execute(statement.values(**row)).rowcount
    return new


def get_checkpoint(conn: Connection, name: str) -> str | None:
    return conn.execute(select(checkpoints.c.since_id).where(checkpoints.c.name == name)).scalar_one_or_none()


def set_checkpoint(conn: Connection, name: str, since_id: str | None) -> None:
    """Move a checkpoint forward (never back); called in the transaction that stored the tweets it covers."""
    if since_id is None:
        return
    current = get_checkpoint(conn, name)
    if current is not None and id_key(current) >= id_key(since_id):
        return
    if current is None and not conn.execute(select(checkpoints.c.name).where(checkpoints.c.name == name)).first():
        conn.execute(insert(checkpoints).values(name=name, since_id=since_id, updated_at=utcnow()))
    else:
        conn.execute(
            update(checkpoints).where(checkpoints.c.name == name).values(since_id=since_id, updated_at=utcnow())
        )


def inbound_row(tweet: Any, source: str, *, now: datetime, search_query: str | None = None) -> dict[str, Any]:
    """The x_inbound_tweets row of a fetched tweet (an XTweet) or a DM turned into one."""
    return {
        "tweet_id": tweet.id,
        "source": source,
        "author_id": tweet.author_id,
        "author_username": tweet.author_username,
        "text": tweet.text,
        "conversation_id": tweet.conversation_id or tweet.id,
        "in_reply_to_tweet_id": tweet.in_reply_to_tweet_id,
        "created_at": tweet.created_at,
        "fetched_at": now,
        "search_query": search_query,
        "state": "new",
        "attempts": 0,
    }


def add_alert(conn: Connection, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
    conn.execute(insert(alerts).values(kind=kind, message=message, details=details, created_at=utcnow()))


def record_opt_out(conn: Connection, author_id: str, tweet_id: str) -> None:
    insert_ignoring_duplicates(conn, opt_outs, [{"author_id": author_id, "tweet_id": tweet_id, "created_at": utcnow()}])
