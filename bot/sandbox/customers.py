"""What customers do on the sandbox X (through /sandbox/ and the page), checked like X checks it.

Everything is checked before anything is written: a refused tweet or message creates no customer either.
"""

from __future__ import annotations

from typing import Any

from bot.sandbox.store import HANDLE, DmEvent, Store, Tweet, UnknownTweet, User, is_snowflake
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

DM_MAX_CHARS = 10_000
LONG_POST_MAX_LENGTH = 25_000  # X Premium's long posts (note tweets), in weighted characters


class SandboxInputError(ValueError):
    """Bad input to a sandbox-only endpoint; the message says what is wrong."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def post_customer_tweet(store: Store, username: Any, text: Any, in_reply_to: Any, quote_of: Any = None) -> Tweet:
    """A customer tweets (the sandbox endpoint and the page), perhaps quoting a post (`quote_of`). Customers may
    write long posts, as X Premium subscribers do: over 280 weighted characters (served as X serves them, see
    bot.sandbox.server), up to LONG_POST_MAX_LENGTH."""
    handle = customer_handle(store, username)
    if not isinstance(text, str) or not text.strip():
        raise SandboxInputError("text: a tweet needs text")
    length = weighted_length(text)
    if length > LONG_POST_MAX_LENGTH:
        raise SandboxInputError(
            f"text: {length} weighted characters, X allows {MAX_WEIGHTED_LENGTH} (a long post: {LONG_POST_MAX_LENGTH})"
        )
    target: int | None = None
    if in_reply_to not in (None, ""):
        if isinstance(in_reply_to, bool) or not is_snowflake(str(in_reply_to)):
            raise SandboxInputError(f"in_reply_to_tweet_id: not a tweet id: {in_reply_to!r}")
        target = int(in_reply_to)
        if not store.tweets_by_id([target]):
            raise SandboxInputError(f"in_reply_to_tweet_id: no tweet with the id {target}")
    quoted: int | None = None
    if quote_of not in (None, ""):
        if isinstance(quote_of, bool) or not is_snowflake(str(quote_of)):
            raise SandboxInputError(f"quote_tweet_id: not a tweet id: {quote_of!r}")
        quoted = int(quote_of)
        if not store.tweets_by_id([quoted]):
            raise SandboxInputError(f"quote_tweet_id: no tweet with the id {quoted}")
    try:
        return store.create_tweet(store.create_user(handle), text, in_reply_to=target, quote_of=quoted)
    except UnknownTweet as exc:
        raise SandboxInputError(f"in_reply_to_tweet_id or quote_tweet_id: {exc}") from exc


def customer_handle(store: Store, username: Any) -> str:
    """The customer's handle, checked (nothing is stored yet)."""
    if not isinstance(username, str):
        raise SandboxInputError("username: required (1-15 letters, digits or _)")
    handle = username.strip().removeprefix("@")
    if not HANDLE.fullmatch(handle):
        raise SandboxInputError(f"username: not a valid X handle (1-15 letters, digits or _): {handle!r}")
    if handle.lower() == store.account.username.lower():
        raise SandboxInputError(f"username: @{store.account.username} is the care account, not a customer")
    return handle


def customer(store: Store, username: Any) -> User:
    """The customer with this handle, created on first use."""
    return store.create_user(customer_handle(store, username))


def post_customer_dm(store: Store, username: Any, text: Any) -> DmEvent:
    """A customer sends the care account a direct message."""
    handle = customer_handle(store, username)
    if not isinstance(text, str) or not text.strip():
        raise SandboxInputError("text: a message needs text")
    if len(text) > DM_MAX_CHARS:
        raise SandboxInputError(f"text: a message has at most {DM_MAX_CHARS} characters")
    return store.create_dm(store.create_user(handle), store.account, text)
