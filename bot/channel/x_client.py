"""The X API adapter: the one module of carebot that imports tweepy. Reads mentions, keyword searches, tweets, our
own posts and DMs; posts replies and DMs; turns every failure into an error of bot.channel.errors.

tweepy's Client always calls https://api.twitter.com and sets no timeout, so a requests adapter mounted on its
session sends X's hosts to the configured base URL (X itself, or the sandbox X) with our timeout on every request.
Reads are retried with bounded exponential backoff on 5xx, network errors and timeouts; writes are never retried
here (X has no idempotency key): the caller decides, after looking on X when the outcome is unknown. A 429 is never
retried here either: XRateLimited says until when to wait. A reset time X announces is trusted only within X's own
windows (15 minutes, 24 hours for the daily caps, each plus a minute for clock skew); a reset header that is not a
positive finite number counts as no reset time at all.

Nothing but carebot's errors leaves this module: an answer tweepy itself cannot read (an error body that is no JSON
object makes it raise AttributeError or TypeError) is classified by its HTTP status all the same. Items X sends
incomplete (a tweet without author_id, a DM event without sender_id: X's schema requires neither) are skipped and
counted in a log line; the rest of the page is kept. A recent search refused for a since_id, until_id or start_time
older than its 7 days raises XOutsideSearchWindow, for intake to read again from inside them. Tweets are read with
note_tweet: a long post's whole text, where X's `text` holds only its first 280 weighted characters.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from bot.channel.errors import (
    RateLimitKind,
    XAuthError,
    XCreditsDepleted,
    XError,
    XOutcomeUnknown,
    XOutsideSearchWindow,
    XRateLimited,
    XRejected,
    XReplyNotAllowed,
    XUnavailable,
)
from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

# tweepy and the OAuth libraries log request headers (a bearer token, OAuth parameters) and whole response bodies
# (customer text over several lines) at DEBUG: keep those records out of every log.
for _chatty in ("tweepy", "requests_oauthlib", "oauthlib"):
    logging.getLogger(_chatty).setLevel(logging.INFO)

X_HOSTS = ("https://api.twitter.com", "https://api.x.com")
PAGE_SIZE = 100
# X serves only the 800 most recent mentions: a read that got this many may have missed older ones.
MENTIONS_REACHABLE = 800
# note_tweet: a long post (over 280 weighted characters) has its whole text only there; its `text` is cut.
TWEET_FIELDS = [
    "id", "text", "author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets",
    "note_tweet",
]  # fmt: skip
USER_FIELDS = ["id", "name", "username"]
DM_EVENT_FIELDS = ["id", "event_type", "text", "sender_id", "created_at", "dm_conversation_id"]
# The sandbox X accepts any OAuth 1.0a credentials as the care account.
SANDBOX_CREDENTIALS = ("sandbox-consumer-key", "sandbox-consumer-secret", "0-sandbox-token", "sandbox-token-secret")
_MAX_DETAIL_CHARS = 500
# The longest wait a 429 may ask for: X's rate-limit windows are 15 minutes, its daily caps 24 hours (plus a minute
# for clock skew). A reset time beyond them is an error on X's side, not a reason to stop reading for years.
RATE_WINDOW_MAX_WAIT_S = 15 * 60 + 60
DAILY_CAP_MAX_WAIT_S = 24 * 3600 + 60
USAGE_CAP_RECHECK_S = 3600  # X names no reset for its monthly usage cap: ask again after an hour
_RESET_HEADER = re.compile(r"[0-9]{1,20}")  # epoch seconds, as tweepy reads x-rate-limit-reset
_X_ID = re.compile(r"[0-9]{1,19}")  # X's ids: 64-bit integers as decimal strings
# Recent search's 7 days: the parameters X refuses when they are older, and the oldest time its message names
# ("'since_id' must be a tweet id created after 2026-07-31T11:45Z. Please use a 'since_id' that is larger than …",
# "Invalid 'start_time':'…'. 'start_time' must be on or after 2026-07-31T11:45Z").
SEARCH_WINDOW_PARAMETERS = ("since_id", "until_id", "start_time")
_WINDOW_START = re.compile(
    r"(?:created after|on or after) ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)Z"
)
SKIPPED_IDS_REMEMBERED = 10_000  # incomplete items are logged as a warning once per id, later at debug level
# Failures of a read worth another try (a 5xx too); any other requests error is not.
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.JSONDecodeError,
)


@dataclass(frozen=True)
class XUser:
    id: str
    username: str
    name: str


@dataclass(frozen=True)
class XTweet:
    id: str
    text: str
    author_id: str
    author_username: str | None
    conversation_id: str | None
    in_reply_to_tweet_id: str | None
    in_reply_to_user_id: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class MentionsRead:
    """Mentions newer than the since_id asked for, oldest first. `complete` is False when the endpoint ended (or
    max_pages did) before reaching since_id: there may be a gap to backfill, e.g. through search."""

    tweets: list[XTweet]
    newest_id: str | None
    complete: bool


@dataclass(frozen=True)
class XDirectMessage:
    id: str
    sender_id: str
    text: str
    created_at: datetime | None
    conversation_id: str | None
    sender_username: str | None = None  # from the sender_id expansion, when X includes it


class _BaseUrlAdapter(HTTPAdapter):
    """Sends requests for X's hosts to `base_url` instead, with our timeout, and signs OAuth 1.0a requests again
    for the URL actually requested (the signature covers the URL). A 429's x-rate-limit-reset that is not a whole
    number of epoch seconds is dropped before tweepy parses it. Per thread, it remembers whether the current call
    sent a request and the answer it got: when tweepy itself fails on an answer (an error body that is no JSON
    object), XClient still knows what X said."""

    def __init__(self, base_url: str, timeout_s: float, signer: Callable[[Any], Any] | None) -> None:
        super().__init__()  # no retries in urllib3: ours depend on whether the request was a write
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._signer = signer
        self._call = threading.local()

    def begin_call(self) -> None:
        self._call.sent = False
        self._call.response = None

    def sent(self) -> bool:
        return bool(getattr(self._call, "sent", False))

    def last_response(self) -> requests.Response | None:
        return getattr(self._call, "response", None)

    def rewrite(self, url: str) -> str:
        for host in X_HOSTS:
            if url.lower().startswith(host + "/"):
                return self._base_url + url[len(host) :]
        return url

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        url = self.rewrite(request.url or "")
        if url != request.url:
            request.url = url
            if self._signer is not None and str(request.headers.get("Authorization", "")).startswith("OAuth "):
                del request.headers["Authorization"]
                self._signer(request)
            if proxies:  # the environment's proxies were chosen for X's host, not for this one
                proxies = requests.utils.get_environ_proxies(url)
        self._call.sent = True
        response = super().send(
            request, stream=stream, timeout=self._timeout_s, verify=verify, cert=cert, proxies=proxies
        )
        self._call.response = response
        reset = response.headers.get("x-rate-limit-reset")
        if response.status_code == 429 and reset is not None and not _RESET_HEADER.fullmatch(reset):
            del response.headers["x-rate-limit-reset"]  # tweepy's int() would raise ValueError: no reset time given
        return response


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not leave this machine (no connection was ever made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args and isinstance(exc.args[0], MaxRetryError):
        # NewConnectionError and NameResolutionError are ConnectTimeoutErrors too
        return isinstance(exc.args[0].reason, ConnectTimeoutError)
    return isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.InvalidSchema)


def _network_problem(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.JSONDecodeError):
        return "answered with invalid JSON"
    return f"connection failed ({type(exc).__name__})"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _problem_of(response: requests.Response) -> dict[str, str]:
    """The title, type, reason and detail of an X error answer (v2 problem or v1-style errors list)."""
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.reason or ""}
    if not isinstance(body, dict):
        return {"detail": response.reason or ""}
    problem = {key: str(body[key]) for key in ("title", "type", "reason", "detail") if body.get(key)}
    messages = []
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            text = error.get("detail") or error.get("message")
            if text and str(text) not in messages:
                messages.append(str(text))
            problem.setdefault("type", str(error.get("type") or ""))
        elif isinstance(error, str):
            messages.append(error)
    parts = [problem.get("detail") or problem.get("title") or response.reason or ""]
    parts += [message for message in messages if message != parts[0]]
    problem["detail"] = "; ".join(part for part in parts if part)
    return problem


def _outside_search_window(response: requests.Response) -> tuple[tuple[str, ...], float | None]:
    """The parameters (since_id, until_id, start_time) a 400 of recent search refused as older than its 7 days,
    and the oldest time X's message names (epoch seconds), if it names one."""
    try:
        body = response.json()
    except ValueError:
        return (), None
    errors = body.get("errors") if isinstance(body, dict) else None
    refused: list[str] = []
    window_start: float | None = None
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict) or not isinstance(error.get("parameters"), dict):
            continue
        message = str(error.get("message") or "")
        matched = _WINDOW_START.search(message)
        if matched is None:
            continue
        refused += [name for name in SEARCH_WINDOW_PARAMETERS if name in error["parameters"] and name not in refused]
        try:
            named = datetime.fromisoformat(matched[1]).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
        window_start = named if window_start is None else max(window_start, named)
    return tuple(refused), window_start


# X's 403 for a reply its reply restriction refuses begins so (bot.sandbox.server.REPLY_NOT_ALLOWED has it whole).
_REPLY_NOT_ALLOWED_MARKER = "reply to this conversation is not allowed"
_AUTH_MARKERS = (
    "unsupported-authentication",
    "client-forbidden",
    "client-not-enrolled",
    "oauth",
    "authenticat",
    "credential",
    "permission",
    "not permitted",
)


def _parse_time(value: object) -> datetime | None:
    """X's created_at; None when missing or not a time (an optional field is no reason to drop a tweet)."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _x_id(value: object) -> str | None:
    """An id as X sends them (a 64-bit integer as decimal digits, a number from a careless server too); else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and _X_ID.fullmatch(value) else None


def _by_id(items: Iterable[Any]) -> list[Any]:
    """Unique by id, oldest (smallest id) first."""
    unique = {item.id: item for item in items}
    return sorted(unique.values(), key=lambda item: int(item.id))


@dataclass
class _Items:
    """What a response's `data` held: the items carebot can use, and how many it skipped for what reason."""

    items: list[Any] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_ids: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return len(self.items) + sum(self.skipped.values())

    def skip(self, data: object, reason: str) -> None:
        self.skipped[reason] += 1
        item_id = _x_id(data.get("id")) if isinstance(data, dict) else None
        if item_id is not None:
            self.skipped_ids.append(item_id)


def _page_data(page: object) -> list[Any]:
    """A page's `data` list (none: empty). A page that is no JSON object, or data that is no list, is unexpected."""
    if not isinstance(page, dict):
        raise TypeError(f"a page is {type(page).__name__}, not an object")
    data = page.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise TypeError(f"data is {type(data).__name__}, not a list")
    return data


def _reaches(stop_at: str | None, page: object) -> bool:
    """True when a page holds an item with an id at or below `stop_at` (ids are decimal snowflakes)."""
    if stop_at is None or not stop_at.isdecimal():
        return False
    try:
        items = _page_data(page)
    except TypeError:
        return False  # parsing the page names what is wrong with it
    for item in items:
        item_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(item_id, str) and item_id.isdecimal() and int(item_id) <= int(stop_at):
            return True
    return False


def _usernames(page: dict[str, Any]) -> dict[str, str]:
    """User id → username from a page's `includes.users` (the author_id or sender_id expansion); users without
    an id or a username are left out."""
    includes = page.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    return {
        user_id: user["username"]
        for user in (users if isinstance(users, list) else [])
        if isinstance(user, dict)
        and (user_id := _x_id(user.get("id"))) is not None
        and isinstance(user.get("username"), str)
    }


def _tweets_of(pages: Iterable[dict[str, Any]]) -> _Items:
    """The tweets of the pages. X's schema requires only id and text: a tweet without an id, text or author_id
    (or with ids that are no numbers) is skipped and counted, and the rest of the page kept."""
    parsed = _Items()
    for page in pages:
        usernames = _usernames(page)
        for data in _page_data(page):
            if not isinstance(data, dict):
                parsed.skip(data, "not an object")
                continue
            tweet_id, author_id, text = _x_id(data.get("id")), _x_id(data.get("author_id")), data.get("text")
            note = data.get("note_tweet")
            if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"].strip():
                text = note["text"]  # a long post: `text` is only its first 280 weighted characters
            if tweet_id is None:
                parsed.skip(data, "without id")
                continue
            if author_id is None:
                parsed.skip(data, "without author_id")
                continue
            if not isinstance(text, str):
                parsed.skip(data, "without text")
                continue
            references = data.get("referenced_tweets")
            replied_to = next(
                (
                    _x_id(ref.get("id"))
                    for ref in (references if isinstance(references, list) else [])
                    if isinstance(ref, dict) and ref.get("type") == "replied_to"
                ),
                None,
            )
            parsed.items.append(
                XTweet(
                    id=tweet_id,
                    text=text,
                    author_id=author_id,
                    author_username=usernames.get(author_id),
                    conversation_id=_x_id(data.get("conversation_id")),
                    in_reply_to_tweet_id=replied_to,
                    in_reply_to_user_id=_x_id(data.get("in_reply_to_user_id")),
                    created_at=_parse_time(data.get("created_at")),
                )
            )
    return parsed


def _received_dms(pages: Iterable[dict[str, Any]], me_id: str) -> _Items:
    """The MessageCreate events others sent us. A DM event without an id or a sender_id (the schema requires
    neither) is skipped and counted; text is optional (a DM may be only an attachment)."""
    parsed = _Items()
    for page in pages:
        usernames = _usernames(page)
        for event in _page_data(page):
            if not isinstance(event, dict):
                parsed.skip(event, "not an object")
                continue
            if event.get("event_type", "MessageCreate") != "MessageCreate":
                continue
            event_id, sender_id = _x_id(event.get("id")), _x_id(event.get("sender_id"))
            if event_id is None:
                parsed.skip(event, "without id")
                continue
            if sender_id is None:
                parsed.skip(event, "without sender_id")
                continue
            if sender_id == me_id:
                continue
            text = event.get("text")
            conversation_id = event.get("dm_conversation_id")
            parsed.items.append(
                XDirectMessage(
                    id=event_id,
                    sender_id=sender_id,
                    text=text if isinstance(text, str) else "",
                    created_at=_parse_time(event.get("created_at")),
                    conversation_id=conversation_id if isinstance(conversation_id, str) else None,
                    sender_username=usernames.get(sender_id),
                )
            )
    return parsed


class XClient:
    """The X API v2, as carebot uses it. Reuse one per process: its only state is the connection pool (shared
    by threads as requests allows) and the care account, asked once."""

    def __init__(
        self,
        base_url: str,
        *,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        access_token: str | None = None,
        access_token_secret: str | None = None,
        bearer_token: str | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 60.0,
        rate_limit_default_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        oauth1 = (consumer_key, consumer_secret, access_token, access_token_secret)
        if all(oauth1):
            self._user_auth = True
            signer = tweepy.OAuth1UserHandler(*oauth1).apply_auth()
        elif bearer_token:
            self._user_auth = False
            signer = None
        else:
            raise ValueError("XClient needs OAuth 1.0a user credentials (all four) or a bearer token")
        self.base_url = base_url.rstrip("/")
        self._secrets = [secret for secret in (*oauth1, bearer_token) if secret]
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._rate_limit_default_wait_s = rate_limit_default_wait_s
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._me: XUser | None = None
        self._requests_lock = threading.Lock()
        self._requests: dict[str, int] = {}
        self._skipped_lock = threading.Lock()
        self._skipped_seen: set[str] = set()
        self._skipped_order: deque[str] = deque()
        self._tweepy = tweepy.Client(
            bearer_token=bearer_token,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            return_type=dict,
            wait_on_rate_limit=False,
        )
        self._adapter = _BaseUrlAdapter(self.base_url, timeout_s, signer)
        for host in X_HOSTS:
            self._tweepy.session.mount(host + "/", self._adapter)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> XClient:
        """A client for settings.effective_x_api_url. Without X credentials (the sandbox X), placeholder OAuth 1.0a
        credentials. `options` (sleep, clock, rng, backoff_base_s) are for tests. App-only credentials (a bearer
        token without OAuth 1.0a user context) raise SettingsError: X refuses them for users/me, DMs and posts."""
        settings.check_x_user_context()
        secrets = [
            None if value is None else value.get_secret_value()
            for value in (
                settings.x_consumer_key,
                settings.x_consumer_secret,
                settings.x_access_token,
                settings.x_access_token_secret,
            )
        ]
        bearer = settings.x_bearer_token.get_secret_value() if settings.x_bearer_token else None
        if any(secrets) and not all(secrets):
            raise SettingsError(
                "X OAuth 1.0a needs all four of CAREBOT_X_CONSUMER_KEY, CAREBOT_X_CONSUMER_SECRET, "
                "CAREBOT_X_ACCESS_TOKEN and CAREBOT_X_ACCESS_TOKEN_SECRET"
            )
        if not any(secrets) and not bearer:
            secrets = list(SANDBOX_CREDENTIALS)
        consumer_key, consumer_secret, access_token, access_token_secret = secrets
        return cls(
            settings.effective_x_api_url,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            bearer_token=bearer,
            timeout_s=settings.x_timeout_s,
            max_retries=settings.x_max_retries,
            backoff_max_s=settings.x_backoff_max_s,
            rate_limit_default_wait_s=settings.x_rate_limit_default_wait_s,
            **options,
        )

    def __enter__(self) -> XClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"XClient({self.base_url!r})"

    def close(self) -> None:
        self._tweepy.session.close()

    def requests_made(self, endpoint: str) -> int:
        """How many read requests this client has sent to an endpoint (every page and retry X saw), for the
        worker's read budget (bot.channel.worker)."""
        with self._requests_lock:
            return self._requests.get(endpoint, 0)

    def _counting(self, endpoint: str, call: Callable[[], Any]) -> Any:
        """`call()`, counted as a request to `endpoint` if it left this machine, whatever came back."""
        try:
            return call()
        finally:
            if self._adapter.sent():
                with self._requests_lock:
                    self._requests[endpoint] = self._requests.get(endpoint, 0) + 1

    # reads

    def me(self) -> XUser:
        """The care account (asked once, then remembered)."""
        if self._me is None:
            payload = self._read(
                "users_me", functools.partial(self._tweepy.get_me, user_fields=USER_FIELDS, user_auth=self._user_auth)
            )
            self._me = self._parsed(
                "users_me",
                lambda: XUser(
                    id=str(payload["data"]["id"]),
                    username=str(payload["data"]["username"]),
                    name=str(payload["data"].get("name") or ""),
                ),
            )
        return self._me

    def mentions(self, since_id: str | None, *, max_pages: int = 10) -> MentionsRead:
        """Mentions of the care account newer than since_id (all the endpoint serves when None), oldest first."""
        user_id = self.me().id

        def page(token: str | None) -> dict[str, Any]:
            return self._tweepy.get_users_mentions(
                user_id, since_id=since_id, pagination_token=token, **self._tweet_params()
            )

        pages, exhausted = self._pages("mentions", page, max_pages)
        parsed = self._items("mentions", functools.partial(_tweets_of, pages))
        tweets = _by_id(parsed.items)
        if not exhausted:
            complete = False
        elif since_id is None:
            complete = True
        else:
            complete = parsed.seen < MENTIONS_REACHABLE  # skipped ones count: they are among the 800 served
        return MentionsRead(tweets=tweets, newest_id=tweets[-1].id if tweets else None, complete=complete)

    def search_recent(
        self,
        query: str,
        *,
        since_id: str | None = None,
        until_id: str | None = None,
        start_time: datetime | None = None,
        max_pages: int = 5,
    ) -> list[XTweet]:
        """Recent tweets matching a keyword query, oldest first. X searches the last 7 days only: a since_id,
        until_id or start_time older than that raises XOutsideSearchWindow. X takes since_id or start_time, not
        both."""

        def page(token: str | None) -> dict[str, Any]:
            return self._tweepy.search_recent_tweets(
                query, since_id=since_id, until_id=until_id, start_time=start_time, next_token=token,
                **self._tweet_params(),
            )  # fmt: skip

        pages, _ = self._pages("search", page, max_pages)
        return _by_id(self._items("search", functools.partial(_tweets_of, pages)).items)

    def get_tweets(self, ids: Sequence[str]) -> list[XTweet]:
        """The tweets with these ids that exist and are visible, in the order asked."""
        wanted = list(dict.fromkeys(str(tweet_id) for tweet_id in ids))
        tweets: list[XTweet] = []
        for start in range(0, len(wanted), PAGE_SIZE):
            chunk = wanted[start : start + PAGE_SIZE]
            payload = self._read(
                "tweet_lookup",
                functools.partial(
                    self._tweepy.get_tweets,
                    chunk,
                    tweet_fields=TWEET_FIELDS,
                    expansions=["author_id"],
                    user_fields=USER_FIELDS,
                    user_auth=self._user_auth,
                ),
            )
            found = {
                tweet.id: tweet for tweet in self._items("tweet_lookup", functools.partial(_tweets_of, [payload])).items
            }
            tweets += [found[tweet_id] for tweet_id in chunk if tweet_id in found]
        return tweets

    def own_tweets(self, *, since_id: str | None = None, max_pages: int = 5) -> list[XTweet]:
        """The care account's own posts (newer than since_id), oldest first: where a reply in doubt is looked for."""
        user_id = self.me().id

        def page(token: str | None) -> dict[str, Any]:
            return self._tweepy.get_users_tweets(
                user_id, since_id=since_id, pagination_token=token, **self._tweet_params()
            )

        pages, _ = self._pages("user_tweets", page, max_pages)
        return _by_id(self._items("user_tweets", functools.partial(_tweets_of, pages)).items)

    def dm_events(self, *, max_pages: int = 3, stop_at: str | None = None) -> list[XDirectMessage]:
        """Direct messages received by the care account (the most recent ones), oldest first. The endpoint has no
        since_id: with `stop_at` (the newest event already stored) paging ends at the page that reaches it, so a
        poll with nothing new costs one request, not max_pages."""
        me = self.me()

        def page(token: str | None) -> dict[str, Any]:
            return self._tweepy.get_direct_message_events(
                event_types="MessageCreate",
                dm_event_fields=DM_EVENT_FIELDS,
                expansions=["sender_id"],
                user_fields=USER_FIELDS,
                max_results=PAGE_SIZE,
                pagination_token=token,
                user_auth=self._user_auth,
            )

        pages, _ = self._pages("dm_events", page, max_pages, until=functools.partial(_reaches, stop_at))
        return _by_id(self._items("dm_events", functools.partial(_received_dms, pages, me.id)).items)

    # writes

    def create_reply(self, text: str, in_reply_to_tweet_id: str) -> str:
        """Post a reply; returns the new tweet's id. Never retried here: see XOutcomeUnknown."""
        payload = self._write(
            "create_tweet",
            functools.partial(
                self._tweepy.create_tweet,
                text=text,
                in_reply_to_tweet_id=in_reply_to_tweet_id,
                user_auth=self._user_auth,
            ),
        )
        return self._written_id("create_tweet", lambda: str(payload["data"]["id"]))

    def send_dm(self, participant_id: str, text: str) -> str:
        """Send a direct message; returns the new DM event's id. Never retried here: see XOutcomeUnknown."""
        payload = self._write(
            "dm_send",
            functools.partial(
                self._tweepy.create_direct_message,
                participant_id=participant_id,
                text=text,
                user_auth=self._user_auth,
            ),
        )
        return self._written_id("dm_send", lambda: str(payload["data"]["dm_event_id"]))

    # how calls are made

    def _tweet_params(self) -> dict[str, Any]:
        return {
            "max_results": PAGE_SIZE,
            "tweet_fields": TWEET_FIELDS,
            "expansions": ["author_id"],
            "user_fields": USER_FIELDS,
            "user_auth": self._user_auth,
        }

    def _pages(
        self,
        endpoint: str,
        fetch: Callable[[str | None], dict[str, Any]],
        max_pages: int,
        until: Callable[[object], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to max_pages pages, or until a page for which `until` is true; True when the endpoint had no more
        (no next_token)."""
        pages: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(max_pages):
            payload = self._read(endpoint, functools.partial(fetch, token))
            pages.append(payload)
            if until is not None and until(payload):
                return pages, False
            meta = payload.get("meta") if isinstance(payload, dict) else None
            token = meta.get("next_token") if isinstance(meta, dict) else None
            if not isinstance(token, str) or not token:
                return pages, True
        return pages, False

    # Errors made from an X answer are raised `from None`: X's words are in our message (scrubbed, on one line),
    # while tweepy's exception would carry them unscrubbed into every logged traceback.

    def _read(self, endpoint: str, call: Callable[[], Any]) -> Any:
        """A read, retried on 5xx, network errors and timeouts with capped exponential backoff and jitter."""
        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            self._adapter.begin_call()
            try:
                return self._counting(endpoint, call)
            except tweepy.TooManyRequests as exc:
                raise self._rate_limited(endpoint, exc.response) from None
            except tweepy.TwitterServerError as exc:
                problem, cause = f"HTTP {exc.response.status_code}", None
            except tweepy.HTTPException as exc:
                raise self._rejected(endpoint, exc.response) from None
            except _TRANSIENT as exc:
                problem, cause = _network_problem(exc), exc
            except requests.RequestException as exc:
                raise XUnavailable(f"X API {endpoint}: {_network_problem(exc)}", endpoint=endpoint) from exc
            except Exception as exc:  # tweepy failed on X's answer (an error body that is no JSON object) or itself
                response = self._adapter.last_response()
                status = response.status_code if response is not None else 0
                if response is None or status < 400:
                    raise XUnavailable(
                        f"X API {endpoint} failed on an unexpected answer ({type(exc).__name__})", endpoint=endpoint
                    ) from None
                if status == 429:
                    raise self._rate_limited(endpoint, response) from None
                if status < 500:
                    raise self._rejected(endpoint, response) from None
                problem, cause = f"HTTP {status}", None
            if attempt < attempts:
                delay = self._backoff(attempt)
                log.warning(
                    "X API %s: %s; retry %d of %d in %.1f s", endpoint, problem, attempt, self._max_retries, delay
                )
                self._sleep(delay)
        raise XUnavailable(
            f"X API {endpoint} unavailable: {problem} after {attempts} attempts", endpoint=endpoint
        ) from cause

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _write(self, endpoint: str, call: Callable[[], Any]) -> Any:
        """A write, tried once: its failures say whether it may have happened."""
        self._adapter.begin_call()
        try:
            return call()
        except tweepy.TooManyRequests as exc:
            raise self._rate_limited(endpoint, exc.response) from None
        except tweepy.TwitterServerError as exc:
            raise XOutcomeUnknown(
                f"X API {endpoint}: HTTP {exc.response.status_code}; it may have been posted", endpoint=endpoint
            ) from None
        except tweepy.HTTPException as exc:
            raise self._rejected(endpoint, exc.response) from None
        except requests.RequestException as exc:
            if _never_sent(exc):
                raise XUnavailable(f"X API {endpoint}: {_network_problem(exc)}; not sent", endpoint=endpoint) from exc
            raise XOutcomeUnknown(
                f"X API {endpoint}: {_network_problem(exc)} after sending; it may have been posted", endpoint=endpoint
            ) from exc
        except Exception as exc:  # tweepy failed on X's answer (an error body that is no JSON object) or itself
            response = self._adapter.last_response()
            status = response.status_code if response is not None else 0
            if response is not None and status == 429:
                raise self._rate_limited(endpoint, response) from None
            if response is not None and 400 <= status < 500:
                raise self._rejected(endpoint, response) from None
            if response is None and not self._adapter.sent():
                raise XUnavailable(
                    f"X API {endpoint} failed before sending ({type(exc).__name__}); not sent", endpoint=endpoint
                ) from None
            answer = f"HTTP {status}" if response is not None else "no answer"
            raise XOutcomeUnknown(
                f"X API {endpoint} failed on an unexpected answer ({answer}, {type(exc).__name__}); "
                "it may have been posted",
                endpoint=endpoint,
            ) from None

    def _items(self, endpoint: str, parse: Callable[[], _Items]) -> _Items:
        """Parse a read's pages; items X sent incomplete are skipped, counted and logged (a warning the first
        time an id is seen, so a skipped item fetched again on every poll does not flood the log)."""
        parsed: _Items = self._parsed(endpoint, parse)
        if parsed.skipped:
            with self._skipped_lock:
                new = [item_id for item_id in parsed.skipped_ids if item_id not in self._skipped_seen]
                for item_id in new:
                    self._skipped_seen.add(item_id)
                    self._skipped_order.append(item_id)
                    if len(self._skipped_order) > SKIPPED_IDS_REMEMBERED:
                        self._skipped_seen.discard(self._skipped_order.popleft())
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(parsed.skipped.items()))
            ids = f"; ids {', '.join(parsed.skipped_ids[:10])}" if parsed.skipped_ids else ""
            level = logging.WARNING if new or len(parsed.skipped_ids) < parsed.skipped.total() else logging.DEBUG
            log.log(
                level, "X API %s: skipped %d of %d items X sent incomplete (%s)%s",
                endpoint, parsed.skipped.total(), parsed.seen, reasons, ids,
            )  # fmt: skip
        return parsed

    def _parsed(self, endpoint: str, parse: Callable[[], Any]) -> Any:
        try:
            return parse()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise XUnavailable(
                f"X API {endpoint} answered with something unexpected ({type(exc).__name__})", endpoint=endpoint
            ) from exc

    def _written_id(self, endpoint: str, parse: Callable[[], str]) -> str:
        try:
            return parse()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise XOutcomeUnknown(
                f"X API {endpoint} accepted the request but its answer has no id; it may have been posted",
                endpoint=endpoint,
            ) from exc

    def _rate_limited(self, endpoint: str, response: requests.Response) -> XRateLimited:
        headers = response.headers
        now = self._clock()

        def number(name: str) -> float | None:
            """The header as a finite number ≥ 0; None when it is missing or garbage."""
            try:
                value = float(headers[name])
            except (KeyError, TypeError, ValueError):
                return None
            return value if math.isfinite(value) and value >= 0 else None

        for cap in ("x-user-limit-24hour", "x-app-limit-24hour"):
            reset = number(f"{cap}-reset")
            if number(f"{cap}-remaining") == 0 and reset:
                return self._rate_limit_error(endpoint, reset, now, DAILY_CAP_MAX_WAIT_S, "24h", "24-hour cap")
        if (
            _problem_of(response).get("type", "").endswith("/usage-capped")
            or (number("x-rate-limit-remaining") or 0) > 0
        ):
            # The monthly usage cap, not the window: X names no reset for it, so ask again after a while.
            return self._rate_limit_error(
                endpoint, now + USAGE_CAP_RECHECK_S, now, USAGE_CAP_RECHECK_S, "usage_cap", "usage cap reached"
            )
        reset = number("x-rate-limit-reset")
        if reset:
            return self._rate_limit_error(endpoint, reset, now, RATE_WINDOW_MAX_WAIT_S, "window", "rate limit")
        return self._rate_limit_error(
            endpoint, now + self._rate_limit_default_wait_s, now, self._rate_limit_default_wait_s, "unknown",
            "rate limit (no reset time given)",
        )  # fmt: skip

    @staticmethod
    def _rate_limit_error(
        endpoint: str, reset: float, now: float, max_wait_s: float, limit: RateLimitKind, what: str
    ) -> XRateLimited:
        # A reset time in the past (clock skew) must not make the caller spin, one far in the future not stop it.
        reset_at = min(max(reset, now + 1.0), now + max(max_wait_s, 1.0))
        until = datetime.fromtimestamp(reset_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return XRateLimited(
            f"X API {endpoint}: {what}; wait until {until}", endpoint=endpoint, reset_at=reset_at, limit=limit
        )

    def _rejected(self, endpoint: str, response: requests.Response) -> XRejected | XCreditsDepleted:
        status = response.status_code
        problem = _problem_of(response)
        detail = self._scrub(_one_line(problem.get("detail", "")))[:_MAX_DETAIL_CHARS]
        if status == 402:  # X's OpenAPI description names no 402 body: the status alone says it
            return XCreditsDepleted(
                f"X API {endpoint}: HTTP 402: the account's credits are spent: {detail}", endpoint=endpoint
            )
        if endpoint == "search" and status == 400:
            refused, window_start = _outside_search_window(response)
            if refused:
                return XOutsideSearchWindow(
                    f"X API {endpoint} rejected the request: HTTP 400: {', '.join(refused)} older than recent "
                    f"search's 7 days: {detail}",
                    endpoint=endpoint, detail=detail, parameters=refused, window_start=window_start,
                )  # fmt: skip
        duplicate = status == 403 and "duplicate" in detail.lower()
        clues = " ".join(problem.values()).lower()
        error_type: type[XRejected] = XRejected
        if endpoint == "create_tweet" and status == 403 and _REPLY_NOT_ALLOWED_MARKER in detail.lower():
            # X's reply restriction for self-serve apps (bot.channel.errors.XReplyNotAllowed): not the credentials.
            return XReplyNotAllowed(
                f"X API {endpoint} rejected the reply: HTTP 403: X allows no reply here: {detail}",
                endpoint=endpoint, status=status, detail=detail,
            )  # fmt: skip
        if status == 401 or (status == 403 and not duplicate and any(marker in clues for marker in _AUTH_MARKERS)):
            error_type = XAuthError
        what = "refused our credentials" if error_type is XAuthError else "rejected the request"
        return error_type(
            f"X API {endpoint} {what}: HTTP {status}: {detail}",
            endpoint=endpoint,
            status=status,
            detail=detail,
            duplicate=duplicate,
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


__all__ = [
    "MentionsRead",
    "XAuthError",
    "XClient",
    "XDirectMessage",
    "XError",
    "XOutcomeUnknown",
    "XRateLimited",
    "XRejected",
    "XReplyNotAllowed",
    "XTweet",
    "XUnavailable",
    "XUser",
]
