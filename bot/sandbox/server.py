"""The sandbox X's HTTP server: the subset of X API v2 carebot uses, with X's JSON shapes and rules, plus
sandbox-only endpoints under /sandbox/ and the customer page at /.

`create_app(store_path, account, allowed_hosts=…, tier=…)` builds the FastAPI app over its own SQLite store. Any
`Authorization: Bearer …` or OAuth 1.0a header acts as the care account; none gets 401. Normal answers carry
x-rate-limit-* headers that count down per window like X's. With an access tier (pay-per-use, basic: `carebot
sandbox` takes CAREBOT_X_TIER) its per-user limits are enforced: over one, the endpoint answers X's 429 until its
window resets. `unmetered` (create_app's default, for tests) announces pay-per-use's figures and enforces none;
faults rate-limit on any tier. Faults that drop the connection need a real server (uvicorn): the client
then gets no response at all.

Sandbox-only endpoints (JSON, no authentication: a loopback tool):
  POST /sandbox/customer-tweets {username, text, in_reply_to_tweet_id?, quote_tweet_id?} → 201 the tweet (a
      customer tweets, perhaps quoting a post)
  POST /sandbox/customer-dms {username, text} → 201 the DM event (a customer writes to the care account)
  GET /sandbox/timeline?since_id=&in_reply_to_tweet_id=&limit= → {"data": tweets oldest first, "account"}
  GET /sandbox/posts → {"data": tweets, "dms": DMs} the care account created through the API, each with
      "connection_dropped" (stored, but the client got no answer)
  POST /sandbox/faults {endpoint, kind, count?, hang_s?, reset_in_s?}; GET and DELETE /sandbox/faults
  GET /sandbox/stats → {"requests": {endpoint: n}, "total": n}; DELETE /sandbox/stats sets them to zero
Tweets from the sandbox endpoints carry every tweet field plus author_username and in_reply_to_tweet_id.

Like X, a customer's long post (over 280 weighted characters, up to X Premium's 25,000) is stored whole but
served with `text` cut to 280 weighted characters; its whole text is in `note_tweet.text`, sent only when
tweet.fields asks for note_tweet. The sandbox endpoints and the page show it whole.

Like X, recent search reaches back 7 days: a since_id, until_id or start_time from before that gets X's 400 (the
message names the oldest time and the smallest since_id it would take), and since_id with start_time is refused.
A search query is held to X's query grammar (bot/sandbox/search.py): one X would refuse (unbalanced parentheses,
an unterminated quote, a dangling OR, only negated terms, an unknown operator, …) gets X's 400 with
`errors[0].parameters.query` and a message naming the problem and its position.
Every error answer is sent as application/problem+json, as X sends them.

Like X for self-serve apps (since 2026-02-23), a reply (POST /2/tweets with reply.in_reply_to_tweet_id) is taken
only under a tweet whose author summoned the care account: @mentioned it in that tweet (a reply to one of the
account's tweets counts, see Store.summons), or quoted one of its posts; and, as developers report X does, under the
account's own tweet (Store.allows_reply). Any other reply gets X's 403
(REPLY_NOT_ALLOWED). `reply_restriction=False` (CAREBOT_SANDBOX_REPLY_RESTRICTION=false) is X for enterprise apps,
which the rule does not cover: every reply is taken. `app.state.reply_restriction` switches it while it runs.

Bad input gets a 400 in X's error shape, never a 500, and is refused before anything is written: a JSON body must
be UTF-8 JSON without NaN or Infinity, nested at most MAX_JSON_DEPTH deep, with no lone surrogate (an unpaired
\\ud800 to \\udfff escape) in any text; a pagination token must name a tweet id. Because /sandbox/ has no
authentication, the server answers only requests whose Host header names a loopback address (127.0.0.1, localhost,
::1, any port) or one of `allowed_hosts` (CAREBOT_SANDBOX_ALLOWED_HOSTS): a web page that rebinds its own domain
name to 127.0.0.1 still sends its own name as the Host, and is refused.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import regex
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from bot.channel.x_limits import FIFTEEN_MINUTES, Window, limits_for, read_limits_for
from bot.sandbox.customers import DM_MAX_CHARS, SandboxInputError, post_customer_dm, post_customer_tweet
from bot.sandbox.faults import Fault, FaultError, Faults, make_fault
from bot.sandbox.page import add_page
from bot.sandbox.search import Candidate, QueryError, compile_query
from bot.sandbox.store import (
    DmEvent,
    DuplicateTweet,
    Store,
    Tweet,
    UnknownTweet,
    User,
    is_snowflake,
    iso_time,
    snowflake_at,
    snowflake_time,
)
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

# X's per-user limits by access tier (bot.channel.x_limits holds the one table of X's figures), announced in the
# x-rate-limit-* headers. A tier other than `unmetered` is enforced: over its limit an endpoint answers 429 until
# its window resets, as X does. `unmetered` announces pay-per-use's figures and enforces none (tests, benchmarks).
# Lookups (tweet_lookup, user_tweets) carebot does not pace: X's pay-per-use 900 per 15 minutes, on every tier.
RATE_WINDOW_S = 900
LOOKUP_LIMITS = {"tweet_lookup": Window(900, FIFTEEN_MINUTES), "user_tweets": Window(900, FIFTEEN_MINUTES)}


def rate_limits(tier: str) -> dict[str, Window]:
    """Every endpoint's first window on `tier`: reads, lookups, and the posting endpoints' tightest window."""
    posting = limits_for(tier)
    figures = read_limits_for("pay-per-use" if tier == "unmetered" else tier)
    return {**LOOKUP_LIMITS, **figures, "create_tweet": posting.tweets[0], "dm_send": posting.dms[0]}

DAILY_POST_LIMIT = 2400  # announced by the 429_24h fault
USAGE_CAPPED_TYPE = "https://api.twitter.com/2/problems/usage-capped"  # X's UsageCapExceededProblem
# X documents 402 for spent pay-per-use credits, but its OpenAPI description (2.166, 2.167) names no 402 response
# and no problem type for it: this type is the sandbox's own, and the client goes by the status alone.
CREDITS_DEPLETED_TYPE = "https://api.twitter.com/2/problems/credits-depleted"
MENTIONS_REACHABLE = 800  # like X: only the 800 most recent mentions can be read
USER_TWEETS_REACHABLE = 3200
SEARCH_DAYS = 7
SEARCH_BATCH = 500  # tweets read from the store at a time while searching

TWEET_FIELDS = {
    "attachments", "author_id", "card_uri", "context_annotations", "conversation_id", "created_at", "edit_controls",
    "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang", "non_public_metrics",
    "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics", "public_metrics", "referenced_tweets",
    "reply_settings", "scopes", "source", "text", "withheld",
}  # fmt: skip
USER_FIELDS = {
    "affiliation", "connection_status", "created_at", "description", "entities", "id", "location",
    "most_recent_tweet_id", "name", "pinned_tweet_id", "profile_banner_url", "profile_image_url", "protected",
    "public_metrics", "receives_your_dm", "subscription_type", "url", "username", "verified", "verified_type",
    "withheld",
}  # fmt: skip
TWEET_EXPANSIONS = {
    "attachments.media_keys", "attachments.poll_ids", "author_id", "edit_history_tweet_ids",
    "entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "referenced_tweets.id",
    "referenced_tweets.id.author_id",
}  # fmt: skip
DM_EVENT_FIELDS = {
    "id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id", "participant_ids",
    "referenced_tweets", "attachments",
}  # fmt: skip
DM_EXPANSIONS = {"attachments.media_keys", "referenced_tweets.id", "sender_id", "participant_ids"}
DM_EVENT_TYPES = {"MessageCreate", "ParticipantsJoin", "ParticipantsLeave"}

# X's reply restriction for self-serve apps (Free, Basic, Pro, pay-per-use; enterprise apps are not covered), in X's
# words (docs.x.com/x-api/posts/manage-tweets/integrate, "Post creation restrictions (self-serve)"): "Replies via
# the API are only permitted if the replying account has been explicitly summoned by the original post's author.
# This means one of the following must be true: The original author @mentions the replying user/account in their
# post. The original author quotes a post from the replying user/account. If neither condition is met, the reply
# request will be rejected." X's changelog dates it 2026-02-23. "The original post" is taken to be the tweet
# replied to. A reply under the account's own post is not named there; developers report that X takes it (threads
# of one's own), and so does the sandbox. X does not publish the refusal's wording; this detail is the one
# developers quote from X's 403, and
# the body is X's generic Problem (about:blank, as for duplicate content), the shape X's OpenAPI description gives
# POST /2/tweets' errors (openapi-2.166.json: `default` → Problem, application/problem+json).
REPLY_NOT_ALLOWED = (
    "Reply to this conversation is not allowed because you have not been mentioned or otherwise engaged by the "
    "author of the post you are replying to."
)
INVALID_REQUEST_TYPE = "https://api.twitter.com/2/problems/invalid-request"
NOT_FOUND_TYPE = "https://api.twitter.com/2/problems/resource-not-found"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_JSON_DEPTH = 32  # X's bodies are a few levels deep; Python's parser gives up (RecursionError) near 1000
_HOST_HEADER = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::[0-9]{1,5})?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_GRAPHEME = regex.compile(r"\X")


class InvalidRequest(Exception):
    """A request parameter X would refuse (400 "Invalid Request")."""

    def __init__(self, parameter: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.parameter, self.value, self.message = parameter, value, message


class ProblemResponse(JSONResponse):
    """An error answer: JSON sent as application/problem+json (RFC 7807), as X sends its errors."""

    media_type = "application/problem+json"


class ConnectionDropped(Exception):
    """The fault closed the connection; raised where no real connection exists (an in-process test client)."""


class SandboxApp(FastAPI):
    """A FastAPI app that answers only requests for the hosts in `allowed_hosts` (loopback unless configured
    otherwise; "*" for any), and remembers each request's transport, so a fault can close the connection
    unanswered."""

    allowed_hosts: frozenset[str] = LOOPBACK_HOSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), "")
            if not self.host_allowed(host):
                refused = invalid_request_body("Host", host, f"The sandbox X does not answer for the host [{host}]")
                await ProblemResponse(refused, status_code=400)(scope, receive, send)
                return
            # uvicorn's `send` is a method of its request cycle, which holds the connection's transport.
            scope["sandbox.transport"] = getattr(getattr(send, "__self__", None), "transport", None)
        await super().__call__(scope, receive, send)

    def host_allowed(self, header: str) -> bool:
        """Whether a Host header ("127.0.0.1:8090", "[::1]:8090", "localhost") names an allowed host."""
        if "*" in self.allowed_hosts:
            return True
        matched = _HOST_HEADER.fullmatch(header.strip().lower())
        if matched is None:
            return False
        return (matched["ipv6"] or matched["name"].rstrip(".")) in self.allowed_hosts


class RateWindows:
    """The x-rate-limit-* headers: per endpoint, requests left in its current window (15 minutes, or 24 hours for
    a daily limit), and whether an enforced limit is spent."""

    def __init__(self, tier: str = "unmetered") -> None:
        self.tier = tier
        self.enforced = tier != "unmetered"
        self.limits = rate_limits(tier)
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def limit(self, endpoint: str) -> int:
        return self.limits[endpoint].limit

    def reset_at(self, endpoint: str) -> int:
        with self._lock:
            start, _ = self._current(endpoint)
        return math.ceil(start + self._length_s(endpoint))

    def spent(self, endpoint: str) -> bool:
        """True when the tier is enforced and the endpoint's window has no request left."""
        if not self.enforced:
            return False
        with self._lock:
            _, used = self._current(endpoint)
        return used >= self.limit(endpoint)

    def use(self, endpoint: str) -> dict[str, str]:
        with self._lock:
            start, used = self._current(endpoint)
            self._windows[endpoint] = (start, used + 1)
        limit = self.limit(endpoint)
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(0, limit - used - 1)),
            "x-rate-limit-reset": str(math.ceil(start + self._length_s(endpoint))),
        }

    def _length_s(self, endpoint: str) -> float:
        return self.limits[endpoint].length.total_seconds()

    def _current(self, endpoint: str) -> tuple[float, int]:
        now = time.time()
        start, used = self._windows.get(endpoint, (now, 0))
        if now >= start + self._length_s(endpoint):
            start, used = now, 0
        self._windows[endpoint] = (start, used)
        return start, used


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """X's error body: {"title", "detail", "type", "status"}."""
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}


def invalid_request_body(parameter: str, value: Any, message: str) -> dict[str, Any]:
    """X's 400 "Invalid Request" body, naming the parameter and the value it refused."""
    return {
        "errors": [{"parameters": {parameter: [str(value)]}, "message": message}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST_TYPE,
    }  # fmt: skip


def create_app(
    store_path: Path, account: str = "KestrelCare", *, allowed_hosts: Iterable[str] = (), tier: str = "unmetered",
    reply_restriction: bool = True,
) -> FastAPI:  # fmt: skip
    """The sandbox X over the SQLite store at `store_path` (created if missing), with `account` as the care
    account that every API credential acts as. It answers requests for loopback hosts and for `allowed_hosts`
    (host names or addresses without a port; "*" for any host), enforces the rate limits of X's access
    `tier` (bot.channel.x_limits; `unmetered`: none) and, with `reply_restriction`, X's reply restriction for
    self-serve apps (REPLY_NOT_ALLOWED)."""
    store = Store(store_path, account)
    faults = Faults()
    windows = RateWindows(tier)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = SandboxApp(title="carebot sandbox X", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.allowed_hosts = LOOPBACK_HOSTS | {host.strip().strip("[]").lower().rstrip(".") for host in allowed_hosts}
    app.state.store = store
    app.state.faults = faults
    app.state.reply_restriction = reply_restriction

    @app.exception_handler(InvalidRequest)
    async def invalid_request(_request: Request, exc: InvalidRequest) -> JSONResponse:
        return ProblemResponse(invalid_request_body(exc.parameter, exc.value, exc.message), status_code=400)

    @app.exception_handler(SandboxInputError)
    async def sandbox_input_error(_request: Request, exc: SandboxInputError) -> JSONResponse:
        title = "Unsupported Media Type" if exc.status == 415 else "Invalid Request"
        return ProblemResponse(problem(exc.status, title, str(exc)), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """No such route (404), or not with this method (405, with Allow): in X's problem shape too."""
        title = "Not Found" if exc.status_code == 404 else str(exc.detail)
        return ProblemResponse(
            problem(exc.status_code, title, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    async def gate(request: Request, endpoint: str) -> Response | None:
        """Count the request, check its credentials and apply a fault. A Response ends the request here. For
        post_then_drop, `request.state.drop_after_storing` tells the handler to store, then drop."""
        fault = faults.take(endpoint)
        if not _authorized(request):
            return ProblemResponse(problem(401, "Unauthorized", "Unauthorized"), status_code=401)
        if windows.spent(endpoint):
            return rate_limited(endpoint, Fault(endpoint=endpoint, kind="429_window"))
        if fault is None:
            return None
        if fault.kind == "hang":
            await asyncio.sleep(fault.hang_s)
            return None
        if fault.kind == "reset":
            return await drop_connection(request)
        if fault.kind == "post_then_drop":
            request.state.drop_after_storing = True
            return None
        if fault.kind.startswith("429"):
            return rate_limited(endpoint, fault)
        status = int(fault.kind)
        if status == 402:
            body = problem(402, "Payment Required", "Your account has no credits left. Add credits to continue.")
            return ProblemResponse({**body, "type": CREDITS_DEPLETED_TYPE}, status_code=402)
        title = "Internal Server Error" if status == 500 else "Service Unavailable"
        return ProblemResponse(problem(status, title, title), status_code=status)

    def rate_limited(endpoint: str, fault: Fault) -> JSONResponse:
        now = time.time()
        window_reset = windows.reset_at(endpoint)
        headers = {"x-rate-limit-limit": str(windows.limit(endpoint))}
        if fault.kind == "429_24h":
            headers["x-rate-limit-remaining"] = str(windows.limit(endpoint) - 1)
            headers["x-rate-limit-reset"] = str(window_reset)
            headers["x-user-limit-24hour-limit"] = str(DAILY_POST_LIMIT)
            headers["x-user-limit-24hour-remaining"] = "0"
            reset_in = fault.reset_in_s if fault.reset_in_s is not None else 86_400
            headers["x-user-limit-24hour-reset"] = str(math.ceil(now + reset_in))
        elif fault.kind == "429_usage_cap":
            headers["x-rate-limit-remaining"] = str(windows.limit(endpoint) - 1)
            headers["x-rate-limit-reset"] = str(window_reset)
            capped = problem(429, "UsageCapExceeded", "Usage cap exceeded: Monthly product cap")
            capped.update(type=USAGE_CAPPED_TYPE, period="Monthly", scope="Product")
            return ProblemResponse(capped, status_code=429, headers=headers)
        else:
            headers["x-rate-limit-remaining"] = "0"
            if fault.kind in ("429", "429_window"):  # 429_window: the tier's limit is spent, not a fault
                reset = math.ceil(now + fault.reset_in_s) if fault.reset_in_s is not None else window_reset
                headers["x-rate-limit-reset"] = str(reset)
        body = problem(429, "Too Many Requests", "Too Many Requests")
        return ProblemResponse(body, status_code=429, headers=headers)

    def answer(endpoint: str, body: dict[str, Any], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=windows.use(endpoint))

    # X API v2

    @app.get("/2/users/me")
    async def users_me(request: Request) -> Response:
        if (early := await gate(request, "users_me")) is not None:
            return early
        user_fields = _fields(request, "user.fields", USER_FIELDS)
        return answer("users_me", {"data": user_json(store.account, user_fields)})

    @app.get("/2/users/{user_id}/mentions")
    async def user_mentions(request: Request, user_id: str) -> Response:
        if (early := await gate(request, "mentions")) is not None:
            return early
        view = TweetView.from_request(store, request)
        since_id, until_id = _id_param(request, "since_id"), _id_param(request, "until_id")
        bound = _token_param(request, "pagination_token")
        max_results = _max_results(request, 5, 100, 10)
        user = _known_user(store, user_id)
        if user is None:
            return answer("mentions", not_found("user", "id", user_id))
        reachable = store.mention_ids(user.id, limit=MENTIONS_REACHABLE)
        ids = [i for i in reachable if _within(i, since_id, _lowest(until_id, bound))]
        page, more = ids[:max_results], len(ids) > max_results
        found = store.tweets_by_id(page)
        return answer("mentions", view.page([found[i] for i in page if i in found], more, "next_token"))

    @app.get("/2/tweets/search/recent")
    async def search_recent(request: Request) -> Response:
        if (early := await gate(request, "search")) is not None:
            return early
        view = TweetView.from_request(store, request)
        query = request.query_params.get("query")
        if query is None:
            raise InvalidRequest("query", "", "The `query` query parameter can not be empty")
        try:
            matches = compile_query(query)
        except QueryError as exc:
            raise InvalidRequest("query", query, f"There were errors processing your request: {exc}") from exc
        since_id, until_id = _id_param(request, "since_id"), _id_param(request, "until_id")
        start_time = _time_param(request, "start_time")
        bound = _token_param(request, "next_token") or _token_param(request, "pagination_token")
        max_results = _max_results(request, 10, 100, 10)
        window_start = datetime.now(UTC) - timedelta(days=SEARCH_DAYS)
        _check_search_window(window_start, since_id, until_id, start_time)
        not_before = iso_time(max(window_start, start_time or window_start))
        hits: list[Tweet] = []
        upper = _lowest(until_id, bound)
        while len(hits) <= max_results:  # newest first, a batch at a time, until one more than a page is found
            batch = store.tweets_newest_first(
                since_id=since_id, until_id=upper, not_before=not_before, limit=SEARCH_BATCH
            )
            reply_users = store.users_by_id(t.in_reply_to_user_id for t in batch if t.in_reply_to_user_id)
            for tweet in batch:
                replied = reply_users.get(tweet.in_reply_to_user_id or 0)
                if matches(Candidate(tweet.text, tweet.author_username, replied.username if replied else None)):
                    hits.append(tweet)
                    if len(hits) > max_results:
                        break
            if len(batch) < SEARCH_BATCH:
                break
            upper = batch[-1].id
        return answer("search", view.page(hits[:max_results], len(hits) > max_results, "next_token"))

    @app.get("/2/tweets")
    async def tweets_lookup(request: Request) -> Response:
        if (early := await gate(request, "tweet_lookup")) is not None:
            return early
        view = TweetView.from_request(store, request)
        raw = request.query_params.get("ids", "")
        parts = [part.strip() for part in raw.split(",")] if raw else []
        if not 1 <= len(parts) <= 100 or not all(is_snowflake(part) for part in parts):
            raise InvalidRequest("ids", raw, "The `ids` query parameter needs 1 to 100 comma-separated tweet ids")
        return answer("tweet_lookup", lookup(view, parts, many=True))

    @app.get("/2/tweets/{tweet_id}")
    async def tweet_lookup(request: Request, tweet_id: str) -> Response:
        if (early := await gate(request, "tweet_lookup")) is not None:
            return early
        view = TweetView.from_request(store, request)
        if not is_snowflake(tweet_id):
            raise InvalidRequest("id", tweet_id, f"The `id` query parameter value [{tweet_id}] is not valid")
        return answer("tweet_lookup", lookup(view, [tweet_id], many=False))

    def lookup(view: TweetView, ids: Sequence[str], *, many: bool) -> dict[str, Any]:
        numeric = [int(i) for i in ids if is_snowflake(i)]
        found = store.tweets_by_id(numeric)
        present = [found[int(i)] for i in ids if is_snowflake(i) and int(i) in found]
        body: dict[str, Any] = view.render(present)
        if not many and "data" in body:
            body["data"] = body["data"][0]
        missing = [i for i in ids if not (is_snowflake(i) and int(i) in found)]
        if missing:
            body["errors"] = [not_found("tweet", "ids" if many else "id", i)["errors"][0] for i in missing]
        return body

    @app.get("/2/users/{user_id}/tweets")
    async def user_tweets(request: Request, user_id: str) -> Response:
        if (early := await gate(request, "user_tweets")) is not None:
            return early
        view = TweetView.from_request(store, request)
        since_id, until_id = _id_param(request, "since_id"), _id_param(request, "until_id")
        bound = _token_param(request, "pagination_token")
        max_results = _max_results(request, 5, 100, 10)
        user = _known_user(store, user_id)
        if user is None:
            return answer("user_tweets", not_found("user", "id", user_id))
        oldest_reachable = store.nth_newest_tweet_id(user.id, USER_TWEETS_REACHABLE)
        lower = max(since_id or 0, oldest_reachable - 1 if oldest_reachable else 0) or None
        own = store.tweets_newest_first(
            author_id=user.id, since_id=lower, until_id=_lowest(until_id, bound), limit=max_results + 1
        )
        return answer("user_tweets", view.page(own[:max_results], len(own) > max_results, "next_token"))

    @app.post("/2/tweets")
    async def create_tweet(request: Request) -> Response:
        raw = await request.body()  # received in full before any fault, as a real server would have it
        if (early := await gate(request, "create_tweet")) is not None:
            return early
        body = _json_body(raw)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest("text", text if text is not None else "", "A tweet needs a non-empty `text`")
        length = weighted_length(text)
        if length > MAX_WEIGHTED_LENGTH:
            raise InvalidRequest("text", text, f"Your Tweet text is too long: {length} of {MAX_WEIGHTED_LENGTH}")
        reply = body.get("reply")
        target: int | None = None
        if reply is not None:
            target_raw = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
            if (
                isinstance(target_raw, bool)
                or not isinstance(target_raw, str | int)
                or not is_snowflake(str(target_raw))
            ):
                raise InvalidRequest("reply.in_reply_to_tweet_id", target_raw, "`in_reply_to_tweet_id` is not valid")
            target = int(target_raw)
            replied_to = store.tweets_by_id([target]).get(target)
            if (
                replied_to is not None
                and app.state.reply_restriction
                and not store.allows_reply(replied_to, store.account)
            ):
                return ProblemResponse(
                    problem(403, "Forbidden", REPLY_NOT_ALLOWED), status_code=403, headers=windows.use("create_tweet")
                )
        try:
            tweet = store.create_tweet(store.account, text, in_reply_to=target, via_api=True, require_unique_text=True)
        except DuplicateTweet:
            detail = "You are not allowed to create a Tweet with duplicate content."
            return ProblemResponse(
                problem(403, "Forbidden", detail), status_code=403, headers=windows.use("create_tweet")
            )
        except UnknownTweet as exc:
            raise InvalidRequest(
                "reply.in_reply_to_tweet_id", target, f"The tweet you are replying to does not exist: {target}"
            ) from exc
        if getattr(request.state, "drop_after_storing", False):  # stored, and the client never hears of it
            store.mark_tweet_dropped(tweet.id)
            return await drop_connection(request)
        data = {"id": str(tweet.id), "text": tweet.text, "edit_history_tweet_ids": [str(tweet.id)]}
        return answer("create_tweet", {"data": data}, status=201)

    @app.post("/2/dm_conversations/with/{participant_id}/messages")
    async def dm_send(request: Request, participant_id: str) -> Response:
        raw = await request.body()  # received in full before any fault, as a real server would have it
        if (early := await gate(request, "dm_send")) is not None:
            return early
        body = _json_body(raw)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest("text", text if text is not None else "", "A message needs a non-empty `text`")
        if len(text) > DM_MAX_CHARS:
            raise InvalidRequest("text", f"{len(text)} characters", f"A message has at most {DM_MAX_CHARS} characters")
        recipient = _known_user(store, participant_id)
        if recipient is None or recipient.id == store.account.id:
            raise InvalidRequest("participant_id", participant_id, "`participant_id` is not a user you can message")
        dm = store.create_dm(store.account, recipient, text, via_api=True)
        if getattr(request.state, "drop_after_storing", False):
            store.mark_dm_dropped(dm.id)
            return await drop_connection(request)
        data = {"dm_conversation_id": dm.dm_conversation_id, "dm_event_id": str(dm.id)}
        return answer("dm_send", {"data": data}, status=201)

    @app.get("/2/dm_events")
    async def dm_events(request: Request) -> Response:
        if (early := await gate(request, "dm_events")) is not None:
            return early
        fields = _fields(request, "dm_event.fields", DM_EVENT_FIELDS)
        expansions = _fields(request, "expansions", DM_EXPANSIONS)
        user_fields = _fields(request, "user.fields", USER_FIELDS)
        event_types = _fields(request, "event_types", DM_EVENT_TYPES)
        bound = _token_param(request, "pagination_token")
        max_results = _max_results(request, 1, 100, 100)
        events: list[DmEvent] = []
        if not event_types or "MessageCreate" in event_types:
            events = store.dm_events_newest_first(store.account.id, until_id=bound, limit=max_results + 1)
        page = events[:max_results]
        body: dict[str, Any] = {}
        if page:
            body["data"] = [dm_json(event, fields) for event in page]
            if "sender_id" in expansions:
                senders = store.users_by_id(event.sender_id for event in page)
                body["includes"] = {
                    "users": [user_json(senders[i], user_fields) for i in _unique(e.sender_id for e in page)]
                }
        meta: dict[str, Any] = {"result_count": len(page)}
        if len(events) > max_results:
            meta["next_token"] = _encode_token(page[-1].id)
        body["meta"] = meta
        return answer("dm_events", body)

    # sandbox-only endpoints

    @app.post("/sandbox/customer-tweets", status_code=201)
    async def customer_tweet(request: Request) -> JSONResponse:
        body = await _sandbox_body(request, {"username", "text", "in_reply_to_tweet_id", "quote_tweet_id"})
        tweet = post_customer_tweet(
            store, body.get("username"), body.get("text"), body.get("in_reply_to_tweet_id"), body.get("quote_tweet_id")
        )
        return JSONResponse(sandbox_tweet_json(tweet), status_code=201)

    @app.post("/sandbox/customer-dms", status_code=201)
    async def customer_dm(request: Request) -> JSONResponse:
        body = await _sandbox_body(request, {"username", "text"})
        dm = post_customer_dm(store, body.get("username"), body.get("text"))
        return JSONResponse(sandbox_dm_json(dm), status_code=201)

    @app.get("/sandbox/timeline")
    async def timeline(request: Request) -> JSONResponse:
        since_id = _sandbox_id(request, "since_id")
        in_reply_to = _sandbox_id(request, "in_reply_to_tweet_id")
        limit = request.query_params.get("limit")
        if limit is not None and (not is_snowflake(limit) or int(limit) < 1):
            raise SandboxInputError(f"limit: a positive number of tweets, not {limit!r}")
        found = store.timeline(since_id=since_id, in_reply_to=in_reply_to, limit=int(limit) if limit else None)
        return JSONResponse({"data": [sandbox_tweet_json(tweet) for tweet in found], "account": account_json()})

    @app.get("/sandbox/posts")
    async def posts() -> JSONResponse:
        return JSONResponse({
            "data": [sandbox_tweet_json(tweet) for tweet in store.api_posts()],
            "dms": [sandbox_dm_json(dm) for dm in store.api_dms()],
        })  # fmt: skip

    @app.get("/sandbox/faults")
    async def list_faults() -> JSONResponse:
        return JSONResponse({"faults": [fault.as_dict() for fault in faults.list()]})

    @app.post("/sandbox/faults", status_code=201)
    async def set_fault(request: Request) -> JSONResponse:
        try:
            fault = make_fault(await _json_or_error(request))
        except FaultError as exc:
            raise SandboxInputError(str(exc)) from exc
        faults.set(fault)
        return JSONResponse({"fault": fault.as_dict()}, status_code=201)

    @app.delete("/sandbox/faults")
    async def clear_faults() -> JSONResponse:
        faults.clear()
        return JSONResponse({"faults": []})

    @app.get("/sandbox/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(faults.stats())

    @app.delete("/sandbox/stats")
    async def reset_stats() -> JSONResponse:
        faults.reset_stats()
        return JSONResponse(faults.stats())

    def account_json() -> dict[str, Any]:
        return {"id": str(store.account.id), "username": store.account.username, "name": store.account.name}

    add_page(app, store)
    return app


class TweetView:
    """How a request wants tweets rendered: which fields and expansions."""

    def __init__(self, store: Store, fields: set[str], expansions: set[str], user_fields: set[str]) -> None:
        self.store, self.fields, self.expansions, self.user_fields = store, fields, expansions, user_fields

    @classmethod
    def from_request(cls, store: Store, request: Request) -> TweetView:
        return cls(
            store, _fields(request, "tweet.fields", TWEET_FIELDS), _fields(request, "expansions", TWEET_EXPANSIONS),
            _fields(request, "user.fields", USER_FIELDS),
        )  # fmt: skip

    def render(self, found: Sequence[Tweet]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if not found:
            return body
        body["data"] = [tweet_json(tweet, self.fields) for tweet in found]
        includes: dict[str, Any] = {}
        user_ids: list[int] = []
        if "author_id" in self.expansions:
            user_ids += [tweet.author_id for tweet in found]
        if "in_reply_to_user_id" in self.expansions:
            user_ids += [tweet.in_reply_to_user_id for tweet in found if tweet.in_reply_to_user_id]
        if {"referenced_tweets.id", "referenced_tweets.id.author_id"} & self.expansions:
            referenced = self.store.tweets_by_id([t.in_reply_to_tweet_id for t in found if t.in_reply_to_tweet_id])
            if referenced:
                includes["tweets"] = [tweet_json(t, self.fields) for t in referenced.values()]
                if "referenced_tweets.id.author_id" in self.expansions:
                    user_ids += [t.author_id for t in referenced.values()]
        if user_ids:
            known = self.store.users_by_id(user_ids)
            includes["users"] = [user_json(known[i], self.user_fields) for i in _unique(user_ids) if i in known]
        if includes:
            body["includes"] = includes
        return body

    def page(self, found: Sequence[Tweet], more: bool, token_name: str) -> dict[str, Any]:
        body = self.render(found)
        meta: dict[str, Any] = {"result_count": len(found)}
        if found:
            meta["newest_id"], meta["oldest_id"] = str(found[0].id), str(found[-1].id)
        if found and more:
            meta[token_name] = _encode_token(found[-1].id)
        body["meta"] = meta
        return body


async def drop_connection(request: Request) -> Response:
    """Close the client's connection without a response. The returned Response is never sent."""
    transport = request.scope.get("sandbox.transport")
    if transport is None:
        raise ConnectionDropped("the sandbox dropped the connection (fault injection)")
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection gone, so it sends nothing more
    return Response(status_code=204)


def cut_to_weighted(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> str:
    """The longest start of `text` (whole grapheme clusters) of at most `limit` weighted characters."""
    graphemes = _GRAPHEME.findall(text)
    fits, too_long = 0, len(graphemes) + 1  # a start of `fits` graphemes fits; one of `too_long` does not
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if weighted_length("".join(graphemes[:middle])) <= limit:
            fits = middle
        else:
            too_long = middle
    return "".join(graphemes[:fits])


def tweet_json(tweet: Tweet, fields: set[str]) -> dict[str, Any]:
    """A tweet as X renders it. A long post (over 280 weighted characters) has its `text` cut to 280, and its
    whole text only in `note_tweet.text`, sent when tweet.fields asks for note_tweet."""
    text = tweet.text
    long_post = weighted_length(text) > MAX_WEIGHTED_LENGTH
    if long_post:
        text = cut_to_weighted(text)
    data: dict[str, Any] = {"id": str(tweet.id), "text": text, "edit_history_tweet_ids": [str(tweet.id)]}
    if "note_tweet" in fields and long_post:
        data["note_tweet"] = {"text": tweet.text}
    if "author_id" in fields:
        data["author_id"] = str(tweet.author_id)
    if "conversation_id" in fields:
        data["conversation_id"] = str(tweet.conversation_id)
    if "created_at" in fields:
        data["created_at"] = tweet.created_at
    if "in_reply_to_user_id" in fields and tweet.in_reply_to_user_id is not None:
        data["in_reply_to_user_id"] = str(tweet.in_reply_to_user_id)
    references = []
    if tweet.in_reply_to_tweet_id is not None:
        references.append({"type": "replied_to", "id": str(tweet.in_reply_to_tweet_id)})
    if tweet.quoted_tweet_id is not None:
        references.append({"type": "quoted", "id": str(tweet.quoted_tweet_id)})
    if "referenced_tweets" in fields and references:
        data["referenced_tweets"] = references
    return data


ALL_TWEET_FIELDS = {"author_id", "conversation_id", "created_at", "in_reply_to_user_id", "referenced_tweets"}


def sandbox_tweet_json(tweet: Tweet) -> dict[str, Any]:
    """A tweet with every field, its author's handle and its reply target (the sandbox's own endpoints)."""
    data = tweet_json(tweet, ALL_TWEET_FIELDS)
    data["text"] = tweet.text  # a long post whole, as the customer wrote it
    data["author_username"] = tweet.author_username
    data["in_reply_to_tweet_id"] = str(tweet.in_reply_to_tweet_id) if tweet.in_reply_to_tweet_id else None
    if tweet.via_api:
        data["connection_dropped"] = tweet.connection_dropped
    return data


def sandbox_dm_json(dm: DmEvent) -> dict[str, Any]:
    data = dm_json(dm, DM_EVENT_FIELDS)
    data["sender_username"] = dm.sender_username
    data["recipient_id"] = str(dm.recipient_id)
    if dm.via_api:
        data["connection_dropped"] = dm.connection_dropped
    return data


def user_json(user: User, fields: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"id": str(user.id), "name": user.name, "username": user.username}
    if "created_at" in fields:
        data["created_at"] = user.created_at
    if "protected" in fields:
        data["protected"] = False
    return data


def dm_json(dm: DmEvent, fields: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"id": str(dm.id), "event_type": "MessageCreate", "text": dm.text}
    if "sender_id" in fields:
        data["sender_id"] = str(dm.sender_id)
    if "created_at" in fields:
        data["created_at"] = dm.created_at
    if "dm_conversation_id" in fields:
        data["dm_conversation_id"] = dm.dm_conversation_id
    return data


def not_found(resource: str, parameter: str, value: str) -> dict[str, Any]:
    """X's answer (HTTP 200) for a tweet or user that does not exist."""
    return {"errors": [{
        "value": value, "detail": f"Could not find {resource} with {parameter}: [{value}].", "title": "Not Found Error",
        "resource_type": resource, "parameter": parameter, "resource_id": value, "type": NOT_FOUND_TYPE,
    }]}  # fmt: skip


def _authorized(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    return scheme in ("Bearer", "OAuth") and bool(credentials.strip())


def _fields(request: Request, name: str, allowed: set[str]) -> set[str]:
    raw = request.query_params.get(name)
    if not raw:
        return set()
    values = {value.strip() for value in raw.split(",")}
    for value in sorted(values):
        if value not in allowed:
            raise InvalidRequest(name, value, f"The `{name}` query parameter value [{value}] is not one of "
                                              f"[{','.join(sorted(allowed))}]")  # fmt: skip
    return values


def _id_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not is_snowflake(raw):
        raise InvalidRequest(name, raw, f"The `{name}` query parameter value [{raw}] is not valid")
    return int(raw)


def _time_param(request: Request, name: str) -> datetime | None:
    """An RFC 3339 time (2026-11-26T05:17:02Z, fractions and offsets allowed; without an offset: UTC)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw) if raw.isascii() and len(raw) <= 40 else None
        if moment is not None:
            moment = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        message = f"Invalid '{name}':'{shown}'. '{name}' must be a time like 2026-11-26T05:17:02Z"
        raise InvalidRequest(name, shown, message)
    return moment


def _check_search_window(
    window_start: datetime, since_id: int | None, until_id: int | None, start_time: datetime | None
) -> None:
    """Recent search reaches back SEARCH_DAYS: like X, refuse a since_id, until_id or start_time from before that
    (400, naming the parameter and, for ids, the smallest id X would take), and since_id with start_time."""
    if since_id is not None and start_time is not None:
        raise InvalidRequest(
            "since_id", since_id, "Invalid use of 'since_id' with 'start_time': at most one of them may be provided"
        )
    shown = window_start.strftime("%Y-%m-%dT%H:%MZ")
    for name, value in (("since_id", since_id), ("until_id", until_id)):
        if value is not None and snowflake_time(value) < window_start:
            raise InvalidRequest(
                name, value, f"'{name}' must be a tweet id created after {shown}. "
                             f"Please use a '{name}' that is larger than {snowflake_at(window_start)}",
            )  # fmt: skip
    if start_time is not None and start_time < window_start:
        asked = start_time.strftime("%Y-%m-%dT%H:%MZ")
        message = f"Invalid 'start_time':'{asked}'. 'start_time' must be on or after {shown}"
        raise InvalidRequest("start_time", asked, message)


def _max_results(request: Request, low: int, high: int, default: int) -> int:
    raw = request.query_params.get("max_results")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidRequest(
            "max_results", raw, f"The `max_results` query parameter value [{raw}] is not between {low} and {high}"
        )
    return int(raw)


_TOKEN_PREFIX = "sbx"


def _encode_token(oldest_id: int) -> str:
    """An opaque pagination token: the next page holds what is older than `oldest_id`."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    value, out = oldest_id, ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return _TOKEN_PREFIX + (out or "0")


_TOKEN = re.compile(_TOKEN_PREFIX + "[0-9a-z]{1,13}")  # 13 base-36 digits hold any 64-bit id


def _token_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    bound = int(raw[len(_TOKEN_PREFIX) :], 36) if _TOKEN.fullmatch(raw) else 0
    if not 0 < bound < 2**63:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise InvalidRequest(name, shown, f"The `{name}` query parameter value [{shown}] is not valid")
    return bound


def _lowest(*bounds: int | None) -> int | None:
    present = [bound for bound in bounds if bound is not None]
    return min(present) if present else None


def _within(tweet_id: int, since_id: int | None, until_id: int | None) -> bool:
    return (since_id is None or tweet_id > since_id) and (until_id is None or tweet_id < until_id)


def _known_user(store: Store, user_id: str) -> User | None:
    if not is_snowflake(user_id):
        raise InvalidRequest("id", user_id, f"The `id` query parameter value [{user_id}] is not valid")
    try:
        return store.user(int(user_id))
    except LookupError:
        return None


def _unique(values: Any) -> list[Any]:
    return list(dict.fromkeys(values))


def parse_json(raw: bytes) -> Any:
    """A request body as JSON (empty: null). ValueError, saying why, for anything X would not read as JSON text:
    bytes that are not UTF-8, NaN or Infinity, numbers beyond a double or 30 digits, nesting deeper than
    MAX_JSON_DEPTH, and lone surrogates (unpaired \\ud800 to \\udfff escapes, which no UTF-8 text can hold)."""

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"the number {text[:20]} is too large")
        return value

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > 30:
            raise ValueError(f"the number {text[:20]}… is too large")
        return int(text)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(raw or b"null", parse_float=finite, parse_int=integer, parse_constant=constant)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep") from None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str) and _SURROGATE.search(item):
            raise ValueError("a text holds a lone surrogate (an unpaired \\ud800 to \\udfff escape)")
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep")
            children = [*item, *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return value


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise InvalidRequest("body", "", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("body", "", "The request body must be a JSON object")
    return body


async def _json_or_error(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":  # also keeps other web pages' forms from posting here
        raise SandboxInputError("send JSON with Content-Type: application/json", status=415)
    try:
        return parse_json(await request.body())
    except ValueError as exc:
        raise SandboxInputError(f"the request body is not valid JSON: {exc}") from None


async def _sandbox_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    body = await _json_or_error(request)
    if not isinstance(body, dict):
        raise SandboxInputError(f"expected a JSON object with {', '.join(sorted(allowed))}")
    unknown = set(body) - allowed
    if unknown:
        raise SandboxInputError(f"unknown fields: {', '.join(sorted(unknown))}")
    return body


def _sandbox_id(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if not is_snowflake(raw):
        raise SandboxInputError(f"{name}: not a tweet id: {raw!r}")
    return int(raw)
