"""The errors of the X adapter (bot/channel/x_client.py), in carebot's words; the worker imports these, never tweepy.

    XError                      any failed X API call; `endpoint` names the call (mentions, create_tweet, …)
     ├── XRateLimited           429: wait until `reset_at` (epoch seconds); `limit` is window | 24h | usage_cap
     │                          (the monthly usage cap: X names no reset, so it is asked again later) | unknown
     ├── XCreditsDepleted       402: the account's pay-per-use credits are spent; nothing was done, nothing is lost
     ├── XUnavailable           5xx / network / timeout after the retries of a read; a write that was not sent
     ├── XOutcomeUnknown        a write (tweet, DM) that may or may not have happened: look on X before re-sending
     └── XRejected              X refused the request (4xx): `status`, `detail`, `duplicate` (403 duplicate content)
          ├── XAuthError        401, or 403 for credentials or app permissions
          ├── XReplyNotAllowed  403: X's reply restriction (self-serve apps): the author of the tweet replied to
          │                     did not @mention or quote the care account
          └── XOutsideSearchWindow  400: a recent search's since_id, until_id or start_time is older than its 7 days

Messages are one line and never contain credentials.
"""

from __future__ import annotations

from typing import Literal

RateLimitKind = Literal["window", "24h", "usage_cap", "unknown"]


class XError(Exception):
    """An X API call failed."""

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class XRateLimited(XError):
    """X says too many requests: nothing more on this endpoint before `reset_at`."""

    def __init__(self, message: str, *, endpoint: str, reset_at: float, limit: RateLimitKind) -> None:
        super().__init__(message, endpoint=endpoint)
        self.reset_at = reset_at
        self.limit: RateLimitKind = limit


class XCreditsDepleted(XError):
    """X answered 402: the account has no pay-per-use credits left. The request was refused, not done; the same
    request succeeds once the credits are topped up, so replies wait instead of failing."""


class XUnavailable(XError):
    """X is down, too slow or unreachable (reads: after the retries); for a write: the request was never sent."""


class XOutcomeUnknown(XError):
    """A write was sent but no answer came back (timeout, dropped connection, 5xx): it may have happened.
    The caller must look on X before any re-send."""


class XRejected(XError):
    """X refused the request (a 4xx other than 429); re-sending it unchanged will not help."""

    def __init__(self, message: str, *, endpoint: str, status: int, detail: str, duplicate: bool = False) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status
        self.detail = detail
        self.duplicate = duplicate


class XAuthError(XRejected):
    """X refused our credentials or the app's permissions (401, or 403 for authentication)."""


class XReplyNotAllowed(XRejected):
    """X refused a reply under a tweet whose author did not summon the care account. Since 2026-02-23 a self-serve
    app may reply only where the tweet's author @mentioned the replying account or quoted one of its posts
    (docs.x.com/x-api/posts/manage-tweets/integrate); X answers 403 "Reply to this conversation is not allowed …".
    The same reply under the same tweet never succeeds: answer by DM, or in a new tweet that mentions the customer."""


class XOutsideSearchWindow(XRejected):
    """Recent search reaches back 7 days only: X refused the `parameters` named (since_id, until_id, start_time) as
    older than that. `window_start` (epoch seconds) is the oldest time X named, when its message names one."""

    def __init__(
        self, message: str, *, endpoint: str, detail: str, parameters: tuple[str, ...], window_start: float | None
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=400, detail=detail)
        self.parameters = parameters
        self.window_start = window_start
