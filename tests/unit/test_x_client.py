"""The X adapter against a scriptable local HTTP stub of the X API: where requests go and how they are signed, what is
read and parsed, how each failure becomes one of carebot's errors, how often a request is tried, and that no
credential ever reaches an error message or a log. Sleep and clock are injected: nothing really waits."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import oauthlib.oauth1
import pytest

from bot.channel.errors import (
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
from bot.channel.x_client import MENTIONS_REACHABLE, SANDBOX_CREDENTIALS, XClient
from bot.settings import Settings, SettingsError

NOW = 1_800_000_000.0
ME = {"id": "100", "username": "KestrelCare", "name": "Kestrel Care"}
CREDENTIALS = {
    "consumer_key": "ck-CONSUMERKEY-1234",
    "consumer_secret": "cs-CONSUMERSECRET-5678",
    "access_token": "100-ACCESSTOKEN-9012",
    "access_token_secret": "ats-TOKENSECRET-3456",
}
BEARER = "BEARER-TOKEN-abcdef-7890"
SECRETS = [*CREDENTIALS.values(), BEARER]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0
    drop: bool = False  # close the connection without any answer
    content_type: str = "application/json"
    raw: bytes | None = None  # sent as the body instead of `body` as JSON


class StubX:
    """A tiny X API on a local port: queued answers per (method, path), else a route, else 404."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._queued: dict[tuple[str, str], list[Answer]] = {}
        self._routes: dict[tuple[str, str], Callable[[Seen], Answer]] = {}
        self._lock = threading.Lock()
        self.route("GET", "/2/users/me", lambda seen: Answer(body={"data": ME}))
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(self.command, url.path, dict(parse_qsl(url.query)), dict(self.headers), None)
                seen.body = json.loads(raw) if raw else None
                answer = stub._answer_for(seen)
                if answer.hang_s:
                    time.sleep(answer.hang_s)
                if answer.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                payload = json.dumps(answer.body).encode() if answer.body is not None else b""
                if answer.raw is not None:
                    payload = answer.raw
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def queue(self, method: str, path: str, *answers: Answer) -> None:
        with self._lock:
            self._queued.setdefault((method, path), []).extend(answers)

    def route(self, method: str, path: str, respond: Callable[[Seen], Answer]) -> None:
        self._routes[(method, path)] = respond

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.seen if seen.method == method and seen.path == path)

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method and seen.path == path]

    def _answer_for(self, seen: Seen) -> Answer:
        key = (seen.method, seen.path)
        with self._lock:
            self.seen.append(seen)
            queued = self._queued.get(key)
            if queued:
                return queued.pop(0)
        if key in self._routes:
            return self._routes[key](seen)
        return Answer(404, {"title": "Not Found Error", "detail": f"no route {seen.path}", "status": 404})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def stub() -> Iterator[StubX]:
    server = StubX()
    yield server
    server.close()


@dataclass
class Harness:
    stub: StubX
    sleeps: list[float]
    client: XClient


def make_client(stub: StubX, sleeps: list[float], **options: Any) -> XClient:
    settings: dict[str, Any] = {
        **CREDENTIALS,
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_base_s": 0.5,
        "backoff_max_s": 4.0,
        "rate_limit_default_wait_s": 60.0,
        "sleep": sleeps.append,
        "clock": lambda: NOW,
        "rng": random.Random(7),
    }
    settings.update(options)
    return XClient(stub.url, **settings)


@pytest.fixture
def x(stub: StubX) -> Iterator[Harness]:
    sleeps: list[float] = []
    client = make_client(stub, sleeps)
    yield Harness(stub, sleeps, client)
    client.close()


def tweet(tweet_id: int, text: str = "hi @KestrelCare", author_id: str = "200", reply_to: str | None = None) -> dict:
    data: dict[str, Any] = {
        "id": str(tweet_id),
        "text": text,
        "author_id": author_id,
        "conversation_id": reply_to or str(tweet_id),
        "created_at": "2026-11-26T05:17:02.000Z",
    }
    if reply_to:
        data["referenced_tweets"] = [{"type": "replied_to", "id": reply_to}]
        data["in_reply_to_user_id"] = "100"
    return data


def page(tweets: list[dict], next_token: str | None = None, users: list[dict] | None = None) -> Answer:
    meta: dict[str, Any] = {"result_count": len(tweets)}
    if tweets:
        meta |= {"newest_id": tweets[0]["id"], "oldest_id": tweets[-1]["id"]}
    if next_token:
        meta["next_token"] = next_token
    body: dict[str, Any] = {"meta": meta}
    if tweets:
        body["data"] = tweets
        body["includes"] = {"users": users or [{"id": "200", "username": "alice", "name": "Alice"}]}
    return Answer(body=body)


def messages_of(exc: BaseException) -> str:
    """The text of an exception and of everything a traceback of it shows."""
    texts = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n".join(texts)


# where requests go, how they are signed


def test_requests_go_to_the_base_url_signed_with_oauth1_for_that_url(x: Harness) -> None:
    assert x.client.me().username == "KestrelCare"
    (seen,) = x.stub.seen
    header = seen.headers["Authorization"]
    assert header.startswith("OAuth ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    assert params["oauth_consumer_key"] == CREDENTIALS["consumer_key"]
    assert params["oauth_token"] == CREDENTIALS["access_token"]
    # the signature must be the one for the URL that was actually requested (not https://api.twitter.com)
    signer = oauthlib.oauth1.Client(
        CREDENTIALS["consumer_key"],
        client_secret=CREDENTIALS["consumer_secret"],
        resource_owner_key=CREDENTIALS["access_token"],
        resource_owner_secret=CREDENTIALS["access_token_secret"],
        nonce=params["oauth_nonce"],
        timestamp=params["oauth_timestamp"],
    )
    query = "&".join(f"{key}={value}" for key, value in seen.query.items()).replace(",", "%2C")
    _, expected, _ = signer.sign(f"{x.stub.url}{seen.path}?{query}", "GET")
    assert (
        dict(re.findall(r'(\w+)="([^"]*)"', expected["Authorization"]))["oauth_signature"] == params["oauth_signature"]
    )


def test_both_x_hosts_are_rewritten_to_the_base_url_and_other_urls_are_left_alone(x: Harness) -> None:
    adapter = x.client._tweepy.session.get_adapter("https://api.x.com/2/tweets")
    assert adapter is x.client._tweepy.session.get_adapter("https://api.twitter.com/2/tweets")
    assert adapter.rewrite("https://api.twitter.com/2/tweets?ids=1") == f"{x.stub.url}/2/tweets?ids=1"  # type: ignore[attr-defined]
    assert adapter.rewrite("https://api.x.com/2/users/me") == f"{x.stub.url}/2/users/me"  # type: ignore[attr-defined]
    assert adapter.rewrite("https://example.org/2/users/me") == "https://example.org/2/users/me"  # type: ignore[attr-defined]


def test_a_base_url_with_a_path_prefix_is_kept(stub: StubX) -> None:
    stub.route("GET", "/x/2/users/me", lambda seen: Answer(body={"data": ME}))
    client = XClient(stub.url + "/x/", **CREDENTIALS)
    assert client.me().id == "100"
    assert stub.seen[0].path == "/x/2/users/me"


def test_bearer_token_mode_sends_the_bearer_token(stub: StubX) -> None:
    client = XClient(stub.url, bearer_token=BEARER)
    client.me()
    assert stub.seen[0].headers["Authorization"] == f"Bearer {BEARER}"


def test_a_client_needs_credentials(stub: StubX) -> None:
    with pytest.raises(ValueError, match="credentials"):
        XClient(stub.url, consumer_key="only-one")


def test_from_settings_without_credentials_uses_placeholders_and_the_configured_url(stub: StubX, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, x_api_url=stub.url + "/")
    with XClient.from_settings(settings) as client:
        assert client.base_url == stub.url
        client.me()
    header = stub.seen[0].headers["Authorization"]
    assert f'oauth_consumer_key="{SANDBOX_CREDENTIALS[0]}"' in header


def test_from_settings_without_anything_talks_to_the_sandbox_address(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, sandbox_port=18099)
    assert XClient.from_settings(settings).base_url == "http://127.0.0.1:18099"


def test_from_settings_refuses_incomplete_oauth1_credentials(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, x_consumer_key="k", x_access_token="t")
    with pytest.raises(SettingsError, match="all four"):
        XClient.from_settings(settings)


def test_our_timeout_applies_to_every_request(stub: StubX) -> None:
    sleeps: list[float] = []
    client = make_client(stub, sleeps, timeout_s=0.2, max_retries=1)
    stub.queue("GET", "/2/users/me", Answer(body={"data": ME}, hang_s=1.0), Answer(body={"data": ME}, hang_s=1.0))
    started = time.monotonic()
    with pytest.raises(XUnavailable, match="timed out"):
        client.me()
    assert time.monotonic() - started < 1.5
    assert stub.count("GET", "/2/users/me") == 2


# reads


def test_me_is_asked_once(x: Harness) -> None:
    assert x.client.me() == x.client.me()
    assert x.stub.count("GET", "/2/users/me") == 1


def test_mentions_pages_with_since_id_and_parses_tweets_oldest_first(x: Harness) -> None:
    x.stub.queue(
        "GET",
        "/2/users/100/mentions",
        page(
            [tweet(305, reply_to="300"), tweet(304, author_id="201")],
            next_token="p2",
            users=[{"id": "200", "username": "alice", "name": "A"}, {"id": "201", "username": "bob", "name": "B"}],
        ),
        page([tweet(302)]),
    )
    read = x.client.mentions("301")
    assert [t.id for t in read.tweets] == ["302", "304", "305"]
    assert read.newest_id == "305" and read.complete
    first, second = x.stub.requests_to("GET", "/2/users/100/mentions")
    assert first.query["since_id"] == "301" and "pagination_token" not in first.query
    assert second.query["pagination_token"] == "p2" and second.query["since_id"] == "301"
    assert first.query["max_results"] == "100" and first.query["expansions"] == "author_id"
    assert set(first.query["tweet.fields"].split(",")) >= {"conversation_id", "created_at", "referenced_tweets"}
    reply = read.tweets[-1]
    assert reply.author_username == "alice" and reply.in_reply_to_tweet_id == "300"
    assert reply.conversation_id == "300" and reply.in_reply_to_user_id == "100"
    assert reply.created_at == datetime(2026, 11, 26, 5, 17, 2, tzinfo=UTC)
    assert read.tweets[1].author_username == "bob" and read.tweets[1].in_reply_to_tweet_id is None


def test_mentions_without_news(x: Harness) -> None:
    x.stub.queue("GET", "/2/users/100/mentions", page([]))
    read = x.client.mentions("500")
    assert read.tweets == [] and read.newest_id is None and read.complete


def test_mentions_report_a_gap_when_the_endpoint_ends_before_since_id(x: Harness) -> None:
    ids = list(range(10_000 + MENTIONS_REACHABLE, 10_000, -1))
    pages = [ids[i : i + 100] for i in range(0, len(ids), 100)]
    x.stub.queue(
        "GET",
        "/2/users/100/mentions",
        *[
            page([tweet(i) for i in chunk], next_token=f"t{n}" if n < len(pages) - 1 else None)
            for n, chunk in enumerate(pages)
        ],
    )
    read = x.client.mentions("5")
    assert len(read.tweets) == MENTIONS_REACHABLE and not read.complete
    assert read.newest_id == str(10_000 + MENTIONS_REACHABLE)


def test_mentions_cut_by_max_pages_are_not_complete(x: Harness) -> None:
    x.stub.queue(
        "GET", "/2/users/100/mentions", page([tweet(20)], next_token="more"), page([tweet(19)], next_token="x")
    )
    read = x.client.mentions("1", max_pages=2)
    assert [t.id for t in read.tweets] == ["19", "20"] and not read.complete
    assert x.stub.count("GET", "/2/users/100/mentions") == 2


def test_search_recent_passes_query_and_bounds_and_pages_with_next_token(x: Harness) -> None:
    x.stub.queue("GET", "/2/tweets/search/recent", page([tweet(9), tweet(8)], next_token="n2"), page([tweet(7)]))
    found = x.client.search_recent("kestrel outage", since_id="3", until_id="10")
    assert [t.id for t in found] == ["7", "8", "9"]
    first, second = x.stub.requests_to("GET", "/2/tweets/search/recent")
    assert (
        first.query["query"] == "kestrel outage" and first.query["since_id"] == "3" and first.query["until_id"] == "10"
    )
    assert second.query["next_token"] == "n2"


def test_get_tweets_in_chunks_of_100_in_the_order_asked(x: Harness) -> None:
    def lookup(seen: Seen) -> Answer:
        ids = seen.query["ids"].split(",")
        return Answer(body={"data": [tweet(int(i)) for i in ids if i != "55"], "includes": {"users": []}})

    x.stub.route("GET", "/2/tweets", lookup)
    ids = [str(i) for i in range(150, 0, -1)]
    found = x.client.get_tweets(ids)
    assert [t.id for t in found] == [i for i in ids if i != "55"]
    assert [len(s.query["ids"].split(",")) for s in x.stub.requests_to("GET", "/2/tweets")] == [100, 50]
    assert x.client.get_tweets([]) == []


def test_own_tweets_read_our_timeline(x: Harness) -> None:
    x.stub.queue(
        "GET",
        "/2/users/100/tweets",
        page(
            [tweet(42, author_id="100", reply_to="41")], users=[{"id": "100", "username": "KestrelCare", "name": "K"}]
        ),
    )
    (own,) = x.client.own_tweets(since_id="40")
    assert own.author_username == "KestrelCare" and own.in_reply_to_tweet_id == "41"
    assert x.stub.requests_to("GET", "/2/users/100/tweets")[0].query["since_id"] == "40"


def test_dm_events_are_the_received_messages_oldest_first(x: Harness) -> None:
    events = [
        {
            "id": "903",
            "event_type": "MessageCreate",
            "text": "my account is 1234",
            "sender_id": "200",
            "created_at": "2026-11-26T05:00:00.000Z",
            "dm_conversation_id": "100-200",
        },
        {
            "id": "902",
            "event_type": "MessageCreate",
            "text": "our answer",
            "sender_id": "100",
            "dm_conversation_id": "100-200",
        },
        {"id": "901", "event_type": "MessageCreate", "text": "hello", "sender_id": "201"},
    ]
    users = [{"id": "200", "name": "Lena", "username": "lena_k"}]
    body = {"data": events, "includes": {"users": users}, "meta": {"result_count": 3}}
    x.stub.queue("GET", "/2/dm_events", Answer(body=body))
    received = x.client.dm_events()
    assert [(m.id, m.sender_id) for m in received] == [("901", "201"), ("903", "200")]
    assert received[1].conversation_id == "100-200" and received[1].created_at is not None
    assert [m.sender_username for m in received] == [None, "lena_k"]  # the handle agents see, when X gives it
    query = x.stub.requests_to("GET", "/2/dm_events")[0].query
    assert query["event_types"] == "MessageCreate" and "sender_id" in query["dm_event.fields"]
    assert query["expansions"] == "sender_id" and "username" in query["user.fields"]


@pytest.mark.parametrize(
    "body",
    [{"data": {"id": "1", "text": "hi", "author_id": "200"}}, [1, 2], "data", 5],
    ids=["dict", "list", "str", "int"],
)
def test_an_unexpected_answer_is_an_error_not_a_crash(x: Harness, body: Any) -> None:
    x.stub.queue("GET", "/2/users/100/mentions", Answer(body=body))
    with pytest.raises(XUnavailable, match="unexpected"):
        x.client.mentions(None)


# partial objects: X's schema requires only id and text of a tweet, neither sender_id nor text of a DM event


def test_tweets_without_author_id_are_skipped_and_the_rest_of_the_page_kept(
    x: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    incomplete = [
        {"id": "306", "text": "no author"},
        {"text": "no id", "author_id": "200"},
        {"id": "307", "author_id": "200"},  # no text
        {"id": "not-a-number", "text": "odd id", "author_id": "200"},
        "not an object",
    ]
    broken_refs = {**tweet(308), "referenced_tweets": ["x", {"type": "replied_to"}], "created_at": "yesterday"}
    body = {
        "data": [tweet(305), *incomplete, broken_refs],
        "includes": {"users": [{"id": "200", "username": "alice"}, {"id": "201"}, "bob"]},
        "meta": {"result_count": 7},
    }
    x.stub.queue("GET", "/2/users/100/mentions", Answer(body=body))
    with caplog.at_level(logging.WARNING, logger="bot.channel.x_client"):
        read = x.client.mentions("300")
    assert [t.id for t in read.tweets] == ["305", "308"] and read.newest_id == "308" and read.complete
    assert read.tweets[0].author_username == "alice"
    assert read.tweets[1].in_reply_to_tweet_id is None and read.tweets[1].created_at is None
    (line,) = [r.getMessage() for r in caplog.records if "incomplete" in r.getMessage()]
    assert "skipped 5 of 7 items" in line and "1 without author_id" in line and "2 without id" in line
    assert "1 without text" in line and "1 not an object" in line and "306" in line


def test_a_skipped_tweet_fetched_again_is_logged_as_a_warning_only_once(
    x: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"data": [tweet(401), {"id": "402", "text": "no author"}]}
    x.stub.route("GET", "/2/tweets/search/recent", lambda seen: Answer(body=body))
    with caplog.at_level(logging.DEBUG, logger="bot.channel.x_client"):
        for _ in range(3):
            assert [t.id for t in x.client.search_recent("kestrel")] == ["401"]
    levels = [r.levelno for r in caplog.records if "incomplete" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_skipped_tweets_count_among_the_800_mentions_x_serves(x: Harness) -> None:
    ids = list(range(10_000 + MENTIONS_REACHABLE, 10_000, -1))
    pages = [ids[i : i + 100] for i in range(0, len(ids), 100)]

    def item(i: int) -> dict[str, Any]:
        return tweet(i) if i % 2 else {"id": str(i), "text": "author withheld"}

    x.stub.queue(
        "GET",
        "/2/users/100/mentions",
        *[
            page([item(i) for i in chunk], next_token=f"t{n}" if n < len(pages) - 1 else None)
            for n, chunk in enumerate(pages)
        ],
    )
    read = x.client.mentions("5")
    assert len(read.tweets) == MENTIONS_REACHABLE // 2 and not read.complete  # still a gap to backfill


def test_dms_without_sender_id_are_skipped_and_the_rest_kept(x: Harness, caplog: pytest.LogCaptureFixture) -> None:
    events = [
        {"id": "903", "event_type": "MessageCreate", "text": "hello", "sender_id": "200"},
        {"id": "904", "event_type": "MessageCreate", "text": "who am I"},
        {"event_type": "MessageCreate", "text": "no id", "sender_id": "200"},
        {"id": "905", "event_type": "MessageCreate", "sender_id": "201"},  # an attachment only: no text
        {"id": "906", "event_type": "ParticipantsJoin"},  # not a message: not counted as skipped
    ]
    x.stub.queue("GET", "/2/dm_events", Answer(body={"data": events, "meta": {"result_count": 5}}))
    with caplog.at_level(logging.WARNING, logger="bot.channel.x_client"):
        received = x.client.dm_events()
    assert [(m.id, m.sender_id, m.text) for m in received] == [("903", "200", "hello"), ("905", "201", "")]
    (line,) = [r.getMessage() for r in caplog.records if "incomplete" in r.getMessage()]
    assert "skipped 2 of 4 items" in line and "1 without sender_id" in line and "1 without id" in line


def test_a_page_whose_meta_is_no_object_ends_the_read(x: Harness) -> None:
    x.stub.queue("GET", "/2/tweets/search/recent", Answer(body={"data": [tweet(9)], "meta": ["next_token"]}))
    assert [t.id for t in x.client.search_recent("kestrel")] == ["9"]
    assert x.stub.count("GET", "/2/tweets/search/recent") == 1


# error bodies tweepy itself cannot read (it raises AttributeError or TypeError on them): still carebot's errors

ODD_ERROR_BODIES = {
    "list": b"[1, 2]",
    "string": b'"Bad Request"',
    "number": b"5",
    "errors-number": b'{"errors": 5}',
    "errors-of-numbers": b'{"errors": [5]}',
    "errors-null": b'{"errors": null}',
    "errors-string-and-error": b'{"errors": "x", "error": "y"}',
}


@pytest.mark.parametrize("raw", ODD_ERROR_BODIES.values(), ids=ODD_ERROR_BODIES.keys())
@pytest.mark.parametrize(
    ("status", "read_error", "write_error"),
    [
        (400, XRejected, XRejected),
        (403, XRejected, XRejected),
        (404, XRejected, XRejected),
        (402, XCreditsDepleted, XCreditsDepleted),  # X describes no 402 body: the status alone says it
        (429, XRateLimited, XRateLimited),
        (500, XUnavailable, XOutcomeUnknown),
        (503, XUnavailable, XOutcomeUnknown),
    ],
)
def test_an_error_body_that_is_no_json_object_is_an_x_error(
    x: Harness, raw: bytes, status: int, read_error: type[XError], write_error: type[XError]
) -> None:
    odd = Answer(status, raw=raw, headers={"x-rate-limit-reset": str(int(NOW) + 300)})
    x.stub.route("GET", "/2/users/100/mentions", lambda seen: odd)
    x.stub.route("POST", "/2/tweets", lambda seen: odd)
    x.client.me()
    with pytest.raises(read_error) as read:
        x.client.mentions(None)
    with pytest.raises(write_error) as write:
        x.client.create_reply("hello", "5")
    for caught in (read.value, write.value):
        assert type(caught) is not XAuthError and "\n" not in str(caught)
        if isinstance(caught, XRejected):
            assert caught.status == status
    reads = x.stub.count("GET", "/2/users/100/mentions")
    assert reads == (4 if status >= 500 else 1)  # a 5xx read is retried as ever, anything else is not
    assert x.stub.count("POST", "/2/tweets") == 1
    if status == 429:
        assert read.value.reset_at == NOW + 300  # type: ignore[attr-defined]


def test_an_exception_tweepy_raises_before_sending_is_an_x_error(x: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("tweepy broke")

    monkeypatch.setattr(x.client._tweepy, "get_users_mentions", broken)
    monkeypatch.setattr(x.client._tweepy, "create_tweet", broken)
    x.client.me()
    with pytest.raises(XUnavailable, match="unexpected"):
        x.client.mentions(None)
    with pytest.raises(XUnavailable, match="not sent"):
        x.client.create_reply("hello", "5")
    assert x.stub.count("POST", "/2/tweets") == 0


@pytest.mark.parametrize("content_type", ["application/problem+json", "application/json"])
def test_errors_sent_as_problem_json_are_read(x: Harness, content_type: str) -> None:
    body = {"title": "Forbidden", "type": "about:blank", "status": 403,
            "detail": "You are not allowed to create a Tweet with duplicate content."}  # fmt: skip
    x.stub.route("POST", "/2/tweets", lambda seen: Answer(403, body, content_type=content_type))
    with pytest.raises(XRejected) as caught:
        x.client.create_reply("same again", "5")
    assert caught.value.duplicate and caught.value.detail == body["detail"]


# recent search reaches back 7 days: X refuses an older since_id, until_id or start_time


def stale_since_id(since_id: str, parameter: str = "since_id") -> Answer:
    """X's answer to a recent search with a since_id (or until_id) from more than 7 days ago."""
    message = (
        f"'{parameter}' must be a tweet id created after 2027-01-08T08:00Z. "
        f"Please use a '{parameter}' that is larger than 2083157183716917248"
    )
    return Answer(
        400,
        {
            "errors": [{"parameters": {parameter: [since_id]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
        content_type="application/problem+json",
    )


def test_a_since_id_older_than_recent_search_reaches_is_outside_the_search_window(x: Harness) -> None:
    x.stub.queue("GET", "/2/tweets/search/recent", stale_since_id("1500000000000000000"))
    with pytest.raises(XOutsideSearchWindow) as caught:
        x.client.search_recent("kestrel", since_id="1500000000000000000")
    assert caught.value.status == 400 and caught.value.parameters == ("since_id",)
    assert caught.value.window_start == datetime(2027, 1, 8, 8, 0, tzinfo=UTC).timestamp()
    assert "since_id older than recent search's 7 days" in str(caught.value) and "\n" not in str(caught.value)
    assert x.stub.count("GET", "/2/tweets/search/recent") == 1 and x.sleeps == []


def test_a_start_time_refused_names_start_time(x: Harness) -> None:
    body = {
        "errors": [{"parameters": {"start_time": ["2027-01-01T00:00Z"]},
                    "message": "Invalid 'start_time':'2027-01-01T00:00Z'. 'start_time' must be on or after "
                               "2027-01-08T08:00Z"}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }  # fmt: skip
    x.stub.queue("GET", "/2/tweets/search/recent", Answer(400, body))
    with pytest.raises(XOutsideSearchWindow) as caught:
        x.client.search_recent("kestrel", start_time=datetime(2027, 1, 1, tzinfo=UTC))
    assert caught.value.parameters == ("start_time",)
    assert x.stub.requests_to("GET", "/2/tweets/search/recent")[0].query["start_time"] == "2027-01-01T00:00:00Z"


def test_other_refusals_of_a_since_id_are_plain_rejections(x: Harness) -> None:
    body = {
        "errors": [{"parameters": {"since_id": ["abc"]},
                    "message": "The `since_id` query parameter value [abc] is not valid"}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }  # fmt: skip
    x.stub.queue("GET", "/2/tweets/search/recent", Answer(400, body))
    with pytest.raises(XRejected) as caught:
        x.client.search_recent("kestrel", since_id="abc")
    assert type(caught.value) is XRejected


# read failures: retried with capped backoff, then XUnavailable; 4xx and 429 never retried


def test_a_read_is_retried_after_5xx_and_succeeds(x: Harness) -> None:
    x.stub.queue("GET", "/2/users/me", Answer(500, {"title": "boom"}), Answer(503, {"title": "later"}))
    assert x.client.me().id == "100"
    assert x.stub.count("GET", "/2/users/me") == 3
    assert len(x.sleeps) == 2 and 0.25 <= x.sleeps[0] <= 0.5 and 0.5 <= x.sleeps[1] <= 1.0


@pytest.mark.parametrize("failure", [Answer(500), Answer(503), Answer(drop=True)], ids=["500", "503", "reset"])
def test_a_read_gives_up_after_max_retries(x: Harness, failure: Answer) -> None:
    x.stub.route("GET", "/2/users/me", lambda seen: failure)
    with pytest.raises(XUnavailable) as caught:
        x.client.me()
    assert x.stub.count("GET", "/2/users/me") == 4
    assert len(x.sleeps) == 3
    assert caught.value.endpoint == "users_me" and "after 4 attempts" in str(caught.value)


def test_backoff_grows_and_is_capped(stub: StubX) -> None:
    sleeps: list[float] = []
    client = make_client(stub, sleeps, max_retries=8, backoff_base_s=1.0, backoff_max_s=4.0)
    stub.route("GET", "/2/users/me", lambda seen: Answer(502))
    with pytest.raises(XUnavailable):
        client.me()
    assert len(sleeps) == 8 and stub.count("GET", "/2/users/me") == 9
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    assert all(2.0 <= delay <= 4.0 for delay in sleeps[2:])
    assert len(set(sleeps)) > 1  # jitter


def test_no_retries_when_max_retries_is_zero(stub: StubX) -> None:
    sleeps: list[float] = []
    client = make_client(stub, sleeps, max_retries=0)
    stub.route("GET", "/2/users/me", lambda seen: Answer(500))
    with pytest.raises(XUnavailable):
        client.me()
    assert stub.count("GET", "/2/users/me") == 1 and sleeps == []


def test_an_unreachable_server_is_unavailable_after_the_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    client = XClient(f"http://127.0.0.1:{port}", **CREDENTIALS, max_retries=2, sleep=sleeps.append)
    with pytest.raises(XUnavailable, match="connection failed"):
        client.me()
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 404])
def test_a_4xx_read_is_rejected_at_once(x: Harness, status: int) -> None:
    x.stub.route("GET", "/2/users/me", lambda seen: Answer(status, {"title": "Invalid Request", "detail": "bad"}))
    with pytest.raises(XRejected) as caught:
        x.client.me()
    assert caught.value.status == status and not isinstance(caught.value, XAuthError)
    assert x.stub.count("GET", "/2/users/me") == 1 and x.sleeps == []


def test_401_is_an_auth_error(x: Harness) -> None:
    x.stub.route("GET", "/2/users/me", lambda seen: Answer(401, {"title": "Unauthorized", "detail": "Unauthorized"}))
    with pytest.raises(XAuthError) as caught:
        x.client.me()
    assert caught.value.status == 401 and x.stub.count("GET", "/2/users/me") == 1


# 429


def test_429_with_a_reset_header_waits_for_the_window(x: Harness) -> None:
    x.stub.route(
        "GET",
        "/2/users/me",
        lambda seen: Answer(
            429,
            {"title": "Too Many Requests"},
            {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(NOW) + 300)},
        ),
    )
    with pytest.raises(XRateLimited) as caught:
        x.client.me()
    assert caught.value.reset_at == NOW + 300 and caught.value.limit == "window"
    assert x.stub.count("GET", "/2/users/me") == 1 and x.sleeps == []


def test_429_without_a_reset_header_waits_the_default(x: Harness) -> None:
    x.stub.route("GET", "/2/users/me", lambda seen: Answer(429, {"title": "Too Many Requests"}))
    with pytest.raises(XRateLimited) as caught:
        x.client.me()
    assert caught.value.reset_at == NOW + 60.0 and caught.value.limit == "unknown"


def test_429_for_the_24_hour_cap_waits_for_the_day(x: Harness) -> None:
    headers = {
        "x-rate-limit-remaining": "37",
        "x-rate-limit-reset": str(int(NOW) + 600),
        "x-user-limit-24hour-limit": "100",
        "x-user-limit-24hour-remaining": "0",
        "x-user-limit-24hour-reset": str(int(NOW) + 50_000),
    }
    x.stub.route("POST", "/2/tweets", lambda seen: Answer(429, {"title": "Too Many Requests"}, headers))
    with pytest.raises(XRateLimited) as caught:
        x.client.create_reply("hello", "5")
    assert caught.value.reset_at == NOW + 50_000 and caught.value.limit == "24h"
    assert x.stub.count("POST", "/2/tweets") == 1


def test_a_reset_time_in_the_past_does_not_make_the_caller_spin(x: Harness) -> None:
    x.stub.route("GET", "/2/users/me", lambda seen: Answer(429, None, {"x-rate-limit-reset": str(int(NOW) - 100)}))
    with pytest.raises(XRateLimited) as caught:
        x.client.me()
    assert caught.value.reset_at > NOW


@pytest.mark.parametrize("reset", [int(NOW) + 10**12, 10**19, 10**20 - 1])
def test_a_reset_time_far_in_the_future_waits_at_most_a_window(x: Harness, reset: int) -> None:
    x.stub.route("GET", "/2/users/me", lambda seen: Answer(429, None, {"x-rate-limit-reset": str(reset)}))
    with pytest.raises(XRateLimited) as caught:
        x.client.me()
    assert caught.value.limit == "window" and NOW + 15 * 60 <= caught.value.reset_at <= NOW + 16 * 60
    assert "wait until 2027-01-15T08:16:00Z" in str(caught.value)


def test_a_24_hour_cap_far_in_the_future_waits_at_most_a_day(x: Harness) -> None:
    headers = {"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": "1e15"}
    x.stub.route("POST", "/2/tweets", lambda seen: Answer(429, None, headers))
    with pytest.raises(XRateLimited) as caught:
        x.client.create_reply("hello", "5")
    assert caught.value.limit == "24h" and NOW + 23 * 3600 < caught.value.reset_at <= NOW + 24 * 3600 + 60


@pytest.mark.parametrize(
    "reset", ["soon", "", "-5", "nan", "NaN", "inf", "-inf", "0", "0x10", "1e400", "12abc", "9" * 800]
)
def test_a_garbage_reset_header_is_no_reset_time(x: Harness, reset: str) -> None:
    headers = {"x-rate-limit-reset": reset, "x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": reset}
    x.stub.route("GET", "/2/users/me", lambda seen: Answer(429, None, headers))
    with pytest.raises(XRateLimited) as caught:
        x.client.me()
    assert caught.value.reset_at == NOW + 60.0 and caught.value.limit == "unknown"


# writes: never retried, classified by whether they may have happened


def test_create_reply_posts_in_the_thread(x: Harness) -> None:
    x.stub.queue("POST", "/2/tweets", Answer(201, {"data": {"id": "777", "text": "Thanks ^AB"}}))
    assert x.client.create_reply("Thanks ^AB", "555") == "777"
    (seen,) = x.stub.requests_to("POST", "/2/tweets")
    assert seen.body == {"text": "Thanks ^AB", "reply": {"in_reply_to_tweet_id": "555"}}
    assert seen.headers["Authorization"].startswith("OAuth ")


def test_send_dm_returns_the_event_id(x: Harness) -> None:
    x.stub.queue(
        "POST",
        "/2/dm_conversations/with/200/messages",
        Answer(201, {"data": {"dm_conversation_id": "100-200", "dm_event_id": "888"}}),
    )
    assert x.client.send_dm("200", "Please send us your account number here") == "888"
    assert x.stub.requests_to("POST", "/2/dm_conversations/with/200/messages")[0].body == {
        "text": "Please send us your account number here"
    }


@pytest.mark.parametrize(
    "failure",
    [
        Answer(500),
        Answer(503),
        Answer(drop=True),
        Answer(201, {"data": {}}),
        Answer(201, {"data": {"id": "9"}}, hang_s=1),
    ],
    ids=["500", "503", "dropped", "no-id", "timeout"],
)
def test_a_write_that_may_have_happened_is_outcome_unknown_and_tried_once(stub: StubX, failure: Answer) -> None:
    sleeps: list[float] = []
    client = make_client(stub, sleeps, timeout_s=0.3)
    stub.route("POST", "/2/tweets", lambda seen: failure)
    with pytest.raises(XOutcomeUnknown) as caught:
        client.create_reply("hello", "5")
    assert caught.value.endpoint == "create_tweet"
    assert stub.count("POST", "/2/tweets") == 1 and sleeps == []


def test_a_dm_dropped_after_sending_is_outcome_unknown(x: Harness) -> None:
    x.stub.route("POST", "/2/dm_conversations/with/200/messages", lambda seen: Answer(drop=True))
    with pytest.raises(XOutcomeUnknown) as caught:
        x.client.send_dm("200", "hi")
    assert caught.value.endpoint == "dm_send"


def test_a_write_that_never_connected_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = XClient(f"http://127.0.0.1:{port}", **CREDENTIALS, sleep=pytest.fail)
    with pytest.raises(XUnavailable, match="not sent"):
        client.create_reply("hello", "5")


def test_duplicate_content_is_rejected_as_a_duplicate(x: Harness) -> None:
    detail = "You are not allowed to create a Tweet with duplicate content."
    x.stub.route(
        "POST",
        "/2/tweets",
        lambda seen: Answer(403, {"title": "Forbidden", "type": "about:blank", "status": 403, "detail": detail}),
    )
    with pytest.raises(XRejected) as caught:
        x.client.create_reply("same again", "5")
    assert caught.value.duplicate and caught.value.status == 403 and caught.value.detail == detail
    assert not isinstance(caught.value, XAuthError)
    assert x.stub.count("POST", "/2/tweets") == 1


def test_a_reply_to_an_unknown_tweet_is_rejected(x: Harness) -> None:
    body = {
        "errors": [
            {
                "parameters": {"reply.in_reply_to_tweet_id": ["1"]},
                "message": "The `reply.in_reply_to_tweet_id` query parameter value [1] does not exist",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    x.stub.route("POST", "/2/tweets", lambda seen: Answer(400, body))
    with pytest.raises(XRejected) as caught:
        x.client.create_reply("hello", "1")
    assert caught.value.status == 400 and not caught.value.duplicate
    assert "does not exist" in caught.value.detail and "\n" not in str(caught.value)


def test_403_for_app_permissions_is_an_auth_error(x: Harness) -> None:
    body = {
        "title": "Forbidden",
        "status": 403,
        "type": "about:blank",
        "detail": "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.",
    }
    x.stub.route("POST", "/2/tweets", lambda seen: Answer(403, body))
    with pytest.raises(XAuthError):
        x.client.create_reply("hello", "5")


def test_403_reply_not_allowed_is_its_own_rejection_not_an_auth_error(x: Harness) -> None:
    body = {
        "title": "Forbidden",
        "status": 403,
        "detail": "Reply to this conversation is not allowed because you "
        "have not been mentioned or otherwise engaged by the author of the post you are replying to.",
    }
    x.stub.route("POST", "/2/tweets", lambda seen: Answer(403, body))
    with pytest.raises(XReplyNotAllowed) as caught:
        x.client.create_reply("hello", "5")
    assert isinstance(caught.value, XRejected) and not isinstance(caught.value, XAuthError)
    assert caught.value.status == 403 and not caught.value.duplicate
    assert caught.value.detail.startswith("Reply to this conversation is not allowed")


def test_a_403_of_another_endpoint_with_the_same_words_is_no_reply_restriction(x: Harness) -> None:
    body = {"title": "Forbidden", "status": 403, "detail": "Reply to this conversation is not allowed"}
    x.stub.route("POST", "/2/dm_conversations/with/7/messages", lambda seen: Answer(403, body))
    with pytest.raises(XRejected) as caught:
        x.client.send_dm("7", "hello")
    assert type(caught.value) is XRejected


# credentials never in error messages or logs


def _failures() -> list[tuple[str, str, Answer]]:
    return [
        ("GET", "/2/users/me", Answer(500)),
        ("GET", "/2/users/me", Answer(drop=True)),
        ("GET", "/2/users/me", Answer(429)),
        ("GET", "/2/users/me", Answer(400, {"detail": "bad"})),
        ("POST", "/2/tweets", Answer(503)),
        ("POST", "/2/tweets", Answer(drop=True)),
        ("POST", "/2/tweets", Answer(403, {"detail": "You are not allowed to create a Tweet with duplicate content."})),
    ]


@pytest.mark.parametrize("mode", ["oauth1", "bearer"])
def test_credentials_are_never_in_error_messages_or_logs(
    stub: StubX, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = CREDENTIALS if mode == "oauth1" else {"bearer_token": BEARER}
    client = XClient(stub.url, **credentials, max_retries=1, sleep=lambda s: None)

    def echo_credentials(seen: Seen) -> Answer:  # a server that repeats what we sent must not make us leak it
        return Answer(401, {"title": "Unauthorized", "detail": f"bad credentials: {seen.headers['Authorization']}"})

    raised: list[XError] = []
    for method, path, failure in [*_failures(), ("GET", "/2/users/me", echo_credentials)]:
        stub.route(method, path, failure if callable(failure) else (lambda seen, f=failure: f))
        with pytest.raises(XError) as caught:
            client.me() if method == "GET" else client.create_reply("hello", "5")
        raised.append(caught.value)
    assert isinstance(raised[-1], XAuthError) and "***" in raised[-1].detail
    texts = "\n".join(messages_of(exc) for exc in raised) + "\n" + caplog.text + repr(client)
    assert caplog.records  # the retries are logged
    for secret in SECRETS:
        assert secret not in texts
    assert all("\n" not in str(exc) for exc in raised)
