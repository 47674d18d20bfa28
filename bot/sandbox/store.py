"""The sandbox X's own persistent store: users, tweets, mentions and direct messages in a SQLite file.

These tables belong to the sandbox alone (created with create_all, not carebot's migrations). Ids are 64-bit,
increasing and snowflake-like (milliseconds since X's epoch shifted left by 22 bits, plus a sequence), kept as
integers here and sent as strings in JSON. Every write goes through one lock, so the store is safe to share
between threads.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)

metadata = MetaData()

users = Table(
    "sandbox_users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("username", String(15), nullable=False),
    Column("username_key", String(15), nullable=False, unique=True),  # lower case: handles are case-insensitive
    Column("name", String(50), nullable=False),
    Column("created_at", String(24), nullable=False),
)

tweets = Table(
    "sandbox_tweets",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("author_id", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Column("conversation_id", BigInteger, nullable=False),
    Column("in_reply_to_tweet_id", BigInteger, nullable=True),
    Column("in_reply_to_user_id", BigInteger, nullable=True),
    Column("created_at", String(24), nullable=False),
    Column("via_api", Boolean, nullable=False, default=False),  # created through POST /2/tweets
    Column("connection_dropped", Boolean, nullable=False, default=False),  # stored, but the client got no answer
    Column("quoted_tweet_id", BigInteger, nullable=True),  # a quote post: the post it quotes (added to older stores)
    Index("ix_sandbox_tweets_author", "author_id", "id"),
    Index("ix_sandbox_tweets_reply", "in_reply_to_tweet_id"),
)

mentions = Table(
    "sandbox_mentions",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("tweet_id", BigInteger, primary_key=True),
)

dm_events = Table(
    "sandbox_dm_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("recipient_id", BigInteger, nullable=False),
    Column("dm_conversation_id", String(48), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", String(24), nullable=False),
    Column("via_api", Boolean, nullable=False, default=False),
    Column("connection_dropped", Boolean, nullable=False, default=False),
    Index("ix_sandbox_dm_recipient", "recipient_id", "id"),
    Index("ix_sandbox_dm_sender", "sender_id", "id"),
)

TWITTER_EPOCH_MS = 1288834974657
HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")  # use fullmatch: "$" would let a final newline in
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})(?!\w)")


def is_snowflake(raw: str) -> bool:
    """Whether `raw` is an id the store can hold: decimal digits of a positive 64-bit signed integer."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) < 2**63


def iso_time(moment: datetime) -> str:
    """X's timestamp format: 2026-11-26T05:17:02.000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def snowflake_time(snowflake: int) -> datetime:
    """When a snowflake id was made (to the millisecond)."""
    return datetime.fromtimestamp(((snowflake >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


def snowflake_at(moment: datetime) -> int:
    """The smallest snowflake id made at `moment` (to the millisecond): every later tweet has a larger id."""
    return max(0, int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS) << 22


def display_name(handle: str) -> str:
    """Split a CamelCase handle into words ("KestrelCare" → "Kestrel Care"); other handles stay as they are."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", handle)


class UnknownUser(LookupError):
    """No user with that id or handle."""


class UnknownTweet(LookupError):
    """No tweet with that id."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    name: str
    created_at: str


@dataclass(frozen=True)
class Tweet:
    id: int
    author_id: int
    author_username: str
    text: str
    conversation_id: int
    in_reply_to_tweet_id: int | None
    in_reply_to_user_id: int | None
    created_at: str
    via_api: bool
    connection_dropped: bool
    quoted_tweet_id: int | None = None


@dataclass(frozen=True)
class DmEvent:
    id: int
    sender_id: int
    sender_username: str
    recipient_id: int
    dm_conversation_id: str
    text: str
    created_at: str
    via_api: bool
    connection_dropped: bool


class Store:
    """The sandbox's data. `account` is the care account's handle: created on first use."""

    def __init__(self, path: Path, account: str) -> None:
        if not HANDLE.fullmatch(account):
            raise ValueError(f"not a valid X handle: {account!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine: Engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
        event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:  # a store made before quote posts: add their column
            columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(sandbox_tweets)")}
            if "quoted_tweet_id" not in columns:
                conn.exec_driver_sql("ALTER TABLE sandbox_tweets ADD COLUMN quoted_tweet_id BIGINT")
        self._lock = threading.RLock()
        with self.engine.connect() as conn:
            highest = [conn.scalar(select(func.max(table.c.id))) for table in (users, tweets, dm_events)]
        self._last_id = max((value for value in highest if value is not None), default=0)
        self.account = self.user_by_handle(account) or self.create_user(account)

    def close(self) -> None:
        self.engine.dispose()

    # ids

    def next_id(self) -> int:
        with self._lock:
            now_ms = int(time.time() * 1000)
            candidate = ((now_ms - TWITTER_EPOCH_MS) << 22) | (1 << 12)
            self._last_id = max(candidate, self._last_id + 1)
            return self._last_id

    # users

    def create_user(self, handle: str) -> User:
        if not HANDLE.fullmatch(handle):
            raise ValueError(f"not a valid X handle (1-15 letters, digits or _): {handle!r}")
        with self._lock, self.engine.begin() as conn:
            existing = conn.execute(select(users).where(users.c.username_key == handle.lower())).first()
            if existing is not None:
                return _user(existing)
            user_id = self.next_id()
            row: dict[str, Any] = {
                "id": user_id, "username": handle, "username_key": handle.lower(), "name": display_name(handle),
                "created_at": iso_time(snowflake_time(user_id)),
            }  # fmt: skip
            conn.execute(insert(users).values(row))
        return User(row["id"], handle, row["name"], row["created_at"])

    def user(self, user_id: int) -> User:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise UnknownUser(f"no user with the id {user_id}")
        return _user(row)

    def user_by_handle(self, handle: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username_key == handle.lower())).first()
        return _user(row) if row is not None else None

    def users_by_id(self, ids: Iterable[int]) -> dict[int, User]:
        wanted = set(ids)
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).where(users.c.id.in_(wanted))).all()
        return {row.id: _user(row) for row in rows}

    # tweets

    def create_tweet(
        self, author: User, text: str, *, in_reply_to: int | None = None, via_api: bool = False,
        require_unique_text: bool = False, quote_of: int | None = None,
    ) -> Tweet:  # fmt: skip
        """Store a tweet (with `quote_of`, a quote post of that tweet). Raises UnknownTweet for an unknown reply
        target or quoted tweet, DuplicateTweet when `require_unique_text` and the author has posted the same text
        before."""
        with self._lock, self.engine.begin() as conn:
            if require_unique_text:
                same = select(tweets.c.id).where(tweets.c.author_id == author.id, tweets.c.text == text).limit(1)
                if conn.scalar(same) is not None:
                    raise DuplicateTweet("the author has already posted this text")
            conversation_id: int | None = None
            reply_user: int | None = None
            if in_reply_to is not None:
                target = conn.execute(select(tweets).where(tweets.c.id == in_reply_to)).first()
                if target is None:
                    raise UnknownTweet(f"no tweet with the id {in_reply_to}")
                conversation_id, reply_user = target.conversation_id, target.author_id
            if quote_of is not None and conn.scalar(select(tweets.c.id).where(tweets.c.id == quote_of)) is None:
                raise UnknownTweet(f"no tweet with the id {quote_of}")
            tweet_id = self.next_id()
            row: dict[str, Any] = {
                "id": tweet_id, "author_id": author.id, "text": text, "conversation_id": conversation_id or tweet_id,
                "in_reply_to_tweet_id": in_reply_to, "in_reply_to_user_id": reply_user,
                "created_at": iso_time(snowflake_time(tweet_id)), "via_api": via_api, "connection_dropped": False,
                "quoted_tweet_id": quote_of,
            }  # fmt: skip
            conn.execute(insert(tweets).values(row))
            mentioned = {handle.lower() for handle in _MENTION.findall(text)}
            mentioned_ids = set()
            if mentioned:
                mentioned_ids = set(conn.scalars(select(users.c.id).where(users.c.username_key.in_(mentioned))))
            if reply_user is not None:
                mentioned_ids.add(reply_user)
            mentioned_ids.discard(author.id)
            if mentioned_ids:
                conn.execute(insert(mentions), [{"user_id": uid, "tweet_id": tweet_id} for uid in mentioned_ids])
        return Tweet(author_username=author.username, **row)

    def allows_reply(self, tweet: Tweet, user: User) -> bool:
        """Whether X's reply restriction for self-serve apps (bot.sandbox.server, REPLY_NOT_ALLOWED) lets `user`
        reply under `tweet`: its author summoned the user (summons), or it is the user's own tweet. X's documented
        rule speaks only of the summons; developers report that X takes a reply under the account's own post (a
        thread), and carebot's follow-ups in a thread go there, so the sandbox takes it too."""
        return tweet.author_id == user.id or self.summons(tweet, user)

    def summons(self, tweet: Tweet, user: User) -> bool:
        """Whether `tweet` summons `user` in the sense of X's reply restriction for self-serve apps: someone else
        wrote it and @mentions the user in it. A reply to one of the user's tweets counts: on X its text starts
        with the user's @handle, which X adds to every reply and lists in entities.mentions (the sandbox stores
        replies without that prefix, so it goes by the reply's target). The user's own tweets never summon the
        user. X's other condition: the tweet quotes one of the user's posts."""
        if tweet.author_id == user.id:
            return False
        if tweet.in_reply_to_user_id == user.id:
            return True
        if tweet.quoted_tweet_id is not None:
            quoted = self.tweets_by_id([tweet.quoted_tweet_id]).get(tweet.quoted_tweet_id)
            if quoted is not None and quoted.author_id == user.id:
                return True
        return user.username.lower() in {handle.lower() for handle in _MENTION.findall(tweet.text)}

    def mark_tweet_dropped(self, tweet_id: int) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(tweets).where(tweets.c.id == tweet_id).values(connection_dropped=True))

    def tweets_by_id(self, ids: Sequence[int]) -> dict[int, Tweet]:
        if not ids:
            return {}
        return {tweet.id: tweet for tweet in self._tweets(tweets.c.id.in_(set(ids)))}

    def mention_ids(self, user_id: int, *, limit: int) -> list[int]:
        """The ids of the `limit` most recent tweets mentioning the user, newest first."""
        query = (
            select(mentions.c.tweet_id).where(mentions.c.user_id == user_id).order_by(mentions.c.tweet_id.desc())
        ).limit(limit)
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def nth_newest_tweet_id(self, author_id: int, n: int) -> int | None:
        """The id of the author's n-th most recent tweet; None when they have fewer."""
        query = (
            select(tweets.c.id).where(tweets.c.author_id == author_id).order_by(tweets.c.id.desc()).offset(n - 1)
        ).limit(1)
        with self.engine.connect() as conn:
            return conn.scalar(query)

    def tweets_newest_first(
        self, *, author_id: int | None = None, since_id: int | None = None, until_id: int | None = None,
        not_before: str | None = None, limit: int | None = None,
    ) -> list[Tweet]:  # fmt: skip
        conditions: list[Any] = []
        if author_id is not None:
            conditions.append(tweets.c.author_id == author_id)
        if since_id is not None:
            conditions.append(tweets.c.id > since_id)
        if until_id is not None:
            conditions.append(tweets.c.id < until_id)
        if not_before is not None:
            conditions.append(tweets.c.created_at >= not_before)
        return self._tweets(*conditions, newest_first=True, limit=limit)

    def timeline(
        self, *, since_id: int | None = None, in_reply_to: int | None = None, limit: int | None = None
    ) -> list[Tweet]:
        """Tweets oldest first; with `limit`, the most recent ones."""
        conditions: list[Any] = []
        if since_id is not None:
            conditions.append(tweets.c.id > since_id)
        if in_reply_to is not None:
            conditions.append(tweets.c.in_reply_to_tweet_id == in_reply_to)
        found = self._tweets(*conditions, newest_first=True, limit=limit)
        found.reverse()
        return found

    def api_posts(self) -> list[Tweet]:
        """Every tweet the care account created through the API, oldest first."""
        return self._tweets(tweets.c.via_api.is_(True))

    def _tweets(self, *conditions: Any, newest_first: bool = False, limit: int | None = None) -> list[Tweet]:
        query = (
            select(tweets, users.c.username)
            .join(users, users.c.id == tweets.c.author_id)
            .where(*conditions)
            .order_by(tweets.c.id.desc() if newest_first else tweets.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_tweet(row) for row in conn.execute(query)]

    # direct messages

    def create_dm(self, sender: User, recipient: User, text: str, *, via_api: bool = False) -> DmEvent:
        with self._lock, self.engine.begin() as conn:
            event_id = self.next_id()
            low, high = sorted((sender.id, recipient.id))
            row: dict[str, Any] = {
                "id": event_id, "sender_id": sender.id, "recipient_id": recipient.id,
                "dm_conversation_id": f"{low}-{high}", "text": text, "created_at": iso_time(snowflake_time(event_id)),
                "via_api": via_api, "connection_dropped": False,
            }  # fmt: skip
            conn.execute(insert(dm_events).values(row))
        return DmEvent(sender_username=sender.username, **row)

    def mark_dm_dropped(self, event_id: int) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(dm_events).where(dm_events.c.id == event_id).values(connection_dropped=True))

    def dm_events_newest_first(self, user_id: int, *, until_id: int | None = None, limit: int) -> list[DmEvent]:
        """DM events the user sent or received, newest first."""
        conditions: list[Any] = [(dm_events.c.recipient_id == user_id) | (dm_events.c.sender_id == user_id)]
        if until_id is not None:
            conditions.append(dm_events.c.id < until_id)
        return self._dms(*conditions, newest_first=True, limit=limit)

    def api_dms(self) -> list[DmEvent]:
        """Every DM the care account sent through the API, oldest first."""
        return self._dms(dm_events.c.via_api.is_(True))

    def _dms(self, *conditions: Any, newest_first: bool = False, limit: int | None = None) -> list[DmEvent]:
        query = (
            select(dm_events, users.c.username)
            .join(users, users.c.id == dm_events.c.sender_id)
            .where(*conditions)
            .order_by(dm_events.c.id.desc() if newest_first else dm_events.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_dm(row) for row in conn.execute(query)]


class DuplicateTweet(ValueError):
    """The same author has already posted this text."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _user(row: Any) -> User:
    return User(row.id, row.username, row.name, row.created_at)


def _tweet(row: Any) -> Tweet:
    return Tweet(
        id=row.id, author_id=row.author_id, author_username=row.username, text=row.text,
        conversation_id=row.conversation_id, in_reply_to_tweet_id=row.in_reply_to_tweet_id,
        in_reply_to_user_id=row.in_reply_to_user_id, created_at=row.created_at, via_api=bool(row.via_api),
        connection_dropped=bool(row.connection_dropped), quoted_tweet_id=row.quoted_tweet_id,
    )  # fmt: skip


def _dm(row: Any) -> DmEvent:
    return DmEvent(
        id=row.id, sender_id=row.sender_id, sender_username=row.username, recipient_id=row.recipient_id,
        dm_conversation_id=row.dm_conversation_id, text=row.text, created_at=row.created_at,
        via_api=bool(row.via_api), connection_dropped=bool(row.connection_dropped),
    )  # fmt: skip
