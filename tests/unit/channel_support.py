"""An in-memory X for the worker's unit tests: mentions (only the newest 800 served, like X), search (only the last
7 days, refusing older since_id and until_id like X), DMs, our own timeline and replies, with scripted failures per
call. Ids are snowflakes, as on X: the time a tweet was made is in its id. Real HTTP is tested against the sandbox X."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.channel.errors import XError, XOutcomeUnknown, XOutsideSearchWindow, XRejected
from bot.channel.store import TWITTER_EPOCH_MS, id_at
from bot.channel.x_client import MentionsRead, XDirectMessage, XTweet, XUser

ACCOUNT = XUser(id="100", username="KestrelCare", name="Kestrel Care")
MENTIONS_SERVED = 800
SEARCH_DAYS = 7


def made_at(tweet_id: str) -> datetime:
    """When X made the tweet with this (snowflake) id."""
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


def key(tweet_id: str) -> tuple[int, str]:
    return (len(tweet_id), tweet_id)


@dataclass
class FakeX:
    tweets: dict[str, XTweet] = field(default_factory=dict)
    dms: list[XDirectMessage] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[str, list[BaseException | Callable[[], None]]] = field(default_factory=lambda: defaultdict(list))
    _ids: itertools.count = field(default_factory=lambda: itertools.count(int(id_at(datetime.now(UTC)))))
    _old_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    users: dict[str, str] = field(default_factory=dict)
    search_calls: list[dict[str, object]] = field(default_factory=list)

    def next_id(self) -> str:
        return str(next(self._ids))

    # ------------------------------------------------------------ the world
    def customer_tweet(
        self, username: str, text: str, in_reply_to: str | None = None, *, at: datetime | None = None
    ) -> XTweet:
        """A customer tweets, now or (with `at`) in the past: the id is then a snowflake of that time."""
        user_id = self.users.setdefault(username, str(5000 + len(self.users)))
        tweet_id = self.next_id() if at is None else str(int(id_at(at)) + next(self._old_ids))
        parent = self.tweets.get(in_reply_to) if in_reply_to else None
        tweet = XTweet(
            id=tweet_id, text=text, author_id=user_id, author_username=username,
            conversation_id=(parent.conversation_id or parent.id) if parent else tweet_id,
            in_reply_to_tweet_id=in_reply_to, in_reply_to_user_id=parent.author_id if parent else None,
            created_at=at or datetime.now(UTC),
        )  # fmt: skip
        self.tweets[tweet_id] = tweet
        return tweet

    def customer_dm(self, username: str, text: str) -> XDirectMessage:
        user_id = self.users.setdefault(username, str(5000 + len(self.users)))
        dm = XDirectMessage(self.next_id(), user_id, text, datetime.now(UTC), f"{user_id}-{ACCOUNT.id}", username)
        self.dms.append(dm)
        return dm

    def our_replies(self) -> list[XTweet]:
        return [t for t in self.tweets.values() if t.author_id == ACCOUNT.id]

    def replies_to(self, tweet_id: str) -> list[XTweet]:
        return [t for t in self.our_replies() if t.in_reply_to_tweet_id == tweet_id]

    def fail(self, endpoint: str, *errors: BaseException | Callable[[], None]) -> None:
        """The next calls of `endpoint` raise these errors (or run these callables first), in order."""
        self.failures[endpoint].extend(errors)

    def requests_made(self, endpoint: str) -> int:
        return self.calls[endpoint]

    def _call(self, endpoint: str) -> None:
        self.calls[endpoint] += 1
        if self.failures[endpoint]:
            failure = self.failures[endpoint].pop(0)
            if isinstance(failure, BaseException):
                raise failure
            failure()

    # ------------------------------------------------------------ the API the worker uses
    def me(self) -> XUser:
        self._call("users_me")
        return ACCOUNT

    def _mentions(self) -> list[XTweet]:
        handle = f"@{ACCOUNT.username}".lower()
        found = [
            t for t in self.tweets.values()
            if t.author_id != ACCOUNT.id and (handle in t.text.lower() or t.in_reply_to_user_id == ACCOUNT.id)
        ]  # fmt: skip
        return sorted(found, key=lambda t: key(t.id))

    def mentions(self, since_id: str | None, *, max_pages: int = 10) -> MentionsRead:
        self._call("mentions")
        served = self._mentions()[-MENTIONS_SERVED:][-max_pages * 100 :]
        newer = [t for t in served if since_id is None or key(t.id) > key(since_id)]
        reached = since_id is None or any(key(t.id) <= key(since_id) for t in served) or len(served) < MENTIONS_SERVED
        return MentionsRead(newer, newer[-1].id if newer else None, reached)

    def search_recent(
        self,
        query: str,
        *,
        since_id: str | None = None,
        until_id: str | None = None,
        start_time: datetime | None = None,
        max_pages: int = 5,
    ) -> list[XTweet]:
        self.search_calls.append({"query": query, "since_id": since_id, "until_id": until_id, "start_time": start_time})
        self._call("search")
        window_start = datetime.now(UTC) - timedelta(days=SEARCH_DAYS)
        if since_id is not None and start_time is not None:
            raise XRejected("since_id with start_time", endpoint="search", status=400, detail="at most one of them")
        refused = tuple(
            name for name, value in (("since_id", since_id), ("until_id", until_id))
            if value is not None and made_at(value) < window_start
        )  # fmt: skip
        if refused or (start_time is not None and start_time < window_start):
            raise XOutsideSearchWindow(
                f"{refused or 'start_time'} older than 7 days", endpoint="search", detail="older than 7 days",
                parameters=refused or ("start_time",), window_start=window_start.timestamp(),
            )  # fmt: skip
        words = query.lower().split()
        return sorted(
            (
                t for t in self.tweets.values()
                if all(w in t.text.lower() for w in words)
                and (since_id is None or key(t.id) > key(since_id))
                and (until_id is None or key(t.id) < key(until_id))
                and made_at(t.id) >= max(window_start, start_time or window_start)
            ),
            key=lambda t: key(t.id),
        )  # fmt: skip

    def dm_events(self, *, max_pages: int = 3, stop_at: str | None = None) -> list[XDirectMessage]:
        self._call("dm_events")
        return [dm for dm in self.dms if dm.sender_id != ACCOUNT.id]

    def own_tweets(self, *, since_id: str | None = None, max_pages: int = 5) -> list[XTweet]:
        self._call("user_tweets")
        return [t for t in self.our_replies() if since_id is None or key(t.id) > key(since_id)]

    def create_reply(self, text: str, in_reply_to_tweet_id: str) -> str:
        self._call("create_tweet")
        return self._post(text, in_reply_to_tweet_id)

    def _post(self, text: str, in_reply_to_tweet_id: str) -> str:
        if any(t.text == text for t in self.our_replies()):
            raise XRejected(
                "duplicate", endpoint="create_tweet", status=403, detail="duplicate content", duplicate=True
            )
        parent = self.tweets[in_reply_to_tweet_id]
        tweet = XTweet(
            id=self.next_id(), text=text, author_id=ACCOUNT.id, author_username=ACCOUNT.username,
            conversation_id=parent.conversation_id or parent.id, in_reply_to_tweet_id=in_reply_to_tweet_id,
            in_reply_to_user_id=parent.author_id, created_at=datetime.now(UTC),
        )  # fmt: skip
        self.tweets[tweet.id] = tweet
        return tweet.id

    def post_then_drop(self, in_reply_to_tweet_id: str) -> Callable[[], None]:
        """A failure for create_tweet: the reply is stored on X, then the connection drops."""

        def failure() -> None:
            self._post("(posted before the connection dropped) ^bot", in_reply_to_tweet_id)
            raise XOutcomeUnknown("connection dropped after sending", endpoint="create_tweet")

        return failure

    def send_dm(self, participant_id: str, text: str) -> str:
        self._call("dm_send")
        dm = XDirectMessage(self.next_id(), ACCOUNT.id, text, datetime.now(UTC), f"{participant_id}-{ACCOUNT.id}")
        self.dms.append(dm)
        return dm.id

    def close(self) -> None:
        pass


__all__ = ["ACCOUNT", "FakeX", "XError"]
