"""`carebot worker`: the loop that reads X, triages, and posts, restartable at any point.

One step: read mentions (and, less often, keyword searches and DMs) when their poll is due; triage the stored
tweets that are due; settle replies in doubt; post the pending replies. Polls are paced by X's read limits for the
account's tier (bot.channel.x_limits): each endpoint's regular polls use a share of its window, and every request
the reads make (pages, retries, gap backfills) is counted in a sliding window, so a read waits rather than meet
X's 429. Rate limits and outages of X pause only
the endpoint concerned; a dead NLU makes tweets wait (see processing.py). On start the sender first settles rows
that a previous run left in flight (sender.py).

Any other error (a bug, an answer nobody foresaw, a database that went away) is logged with its traceback and
the loop goes on after a backoff: a read that failed is read again later, a tweet whose triage failed is still
`new` or `waiting` (its transaction rolled back), and a reply whose post failed is in doubt, looked for on X
before any re-send. Only KeyboardInterrupt, SystemExit and the like stop the loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeGuard

from sqlalchemy import Engine, insert, select, update

from bot.channel.errors import XCreditsDepleted, XError, XOutsideSearchWindow, XRateLimited, XRejected
from bot.channel.intake import Intake
from bot.channel.models import worker_heartbeats
from bot.channel.processing import TweetProcessor
from bot.channel.sender import Sender
from bot.channel.store import add_alert, utcnow
from bot.channel.x_limits import (
    DM_POLL_SHARE,
    READ_ENDPOINTS,
    READ_POLL_SHARE,
    Window,
    limits_for,
    poll_spacing_s,
    read_limits_for,
)
from bot.csat import ResolutionFollowUp
from bot.db import as_utc, make_engine, upgrade
from bot.desk import Desk, open_desk
from bot.policy_versions import PolicyVersions
from bot.settings import Settings
from handoff.service import Handoff

log = logging.getLogger(__name__)

SEARCH_EVERY = 5  # keyword searches and DMs are read every N-th mentions poll (their rate limits are lower)
START_BACKOFF_S = 1.0
CREDITS_RECHECK_S = 600.0  # with the credits spent (402), a read is tried again this often
# A keyword search X refuses as malformed (400) is asked again this often, not at the backoff of a failure: the
# same query gets the same 400, and every refusal spends a request of the search window the other keywords share.
REFUSED_QUERY_RECHECK_S = 3600.0
_X_INVALID_REQUEST = "One or more parameters to your request was invalid."  # the detail of X's every 400
REFUSED_QUERY_ALERT_EVERY_S = 86400.0  # the lead page shows a day of alerts: one alert a day per refused query


@dataclass
class _Poll:
    """When an endpoint may be read next, with backoff after failures."""

    interval_s: float
    next_at: float = 0.0
    failures: int = 0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def done(self, now: float) -> None:
        self.failures = 0
        self.next_at = now + self.interval_s

    def rate_limited(self, reset_at: float, now: float) -> None:
        self.next_at = max(reset_at, now + self.interval_s)

    def failed(self, now: float, cap_s: float) -> None:
        self.failures += 1
        self.next_at = now + min(cap_s, self.interval_s * 2**self.failures)


@dataclass
class _ReadBudget:
    """The requests made to one read endpoint within X's sliding window, against its limit."""

    window: Window
    spent: deque[tuple[float, int]] = field(default_factory=deque)

    def used(self, now: float) -> int:
        start = now - self.window.length.total_seconds()
        while self.spent and self.spent[0][0] <= start:
            self.spent.popleft()
        return sum(count for _, count in self.spent)

    def has_room(self, now: float) -> bool:
        return self.used(now) < self.window.limit

    def record(self, now: float, requests: int) -> None:
        if requests > 0:
            self.spent.append((now, requests))


def _refused_query(exc: XError, poll_key: str) -> TypeGuard[XRejected]:
    """X answered a keyword search's poll with a 400 about the query itself (a 400 about the 7 days' window is
    intake's to handle, and is no fault of the query)."""
    return (
        poll_key.startswith("search:")
        and isinstance(exc, XRejected)
        and not isinstance(exc, XOutsideSearchWindow)
        and exc.status == 400
    )


def _endpoint_of(poll_key: str) -> str:
    return "search" if poll_key.startswith("search:") else "dm_events" if poll_key == "dms" else poll_key


@dataclass
class Worker:
    engine: Engine
    intake: Intake
    processor: TweetProcessor
    sender: Sender
    search_queries: tuple[str, ...] = ()
    poll_interval_s: float = 2.0
    backoff_max_s: float = 60.0
    name: str = "worker"
    monotonic: Callable[[], float] = time.monotonic
    polls: dict[str, _Poll] = field(default_factory=dict)
    follow_up: Callable[[], object] | None = None  # after triage: CSAT questions and public closes (bot/csat.py)
    # X's read limits by endpoint (x_limits.read_limits_for); empty: polls are not paced (the sandbox unmetered)
    read_limits: dict[str, Window] = field(default_factory=dict)
    budgets: dict[str, _ReadBudget] = field(default_factory=dict)
    refused_queries: dict[str, float] = field(default_factory=dict)  # poll key: when its refusal was last alerted

    def __post_init__(self) -> None:
        def spacing(endpoint: str, share: float, readers: int = 1) -> float:
            window = self.read_limits.get(endpoint)
            return 0.0 if window is None else poll_spacing_s(window, share, readers)

        readers = max(1, len(self.search_queries))
        self.polls["mentions"] = _Poll(max(self.poll_interval_s, spacing("mentions", READ_POLL_SHARE)))
        self.polls["dms"] = _Poll(max(self.poll_interval_s * SEARCH_EVERY, spacing("dm_events", DM_POLL_SHARE)))
        for query in self.search_queries:
            self.polls[f"search:{query}"] = _Poll(
                max(self.poll_interval_s * SEARCH_EVERY, spacing("search", READ_POLL_SHARE, readers))
            )
        self.budgets = {endpoint: _ReadBudget(window) for endpoint, window in self.read_limits.items()}

    def _requests_made(self) -> dict[str, int]:
        if not self.budgets:
            return {}
        client = self.intake.client
        return {endpoint: client.requests_made(endpoint) for endpoint in READ_ENDPOINTS}  # type: ignore[attr-defined]

    def _read(self, key: str, read: Callable[[], object]) -> None:
        poll = self.polls[key]
        now = self.monotonic()
        if not poll.due(now):
            return
        budget = self.budgets.get(_endpoint_of(key))
        if budget is not None and not budget.has_room(now):
            return  # X's window for this endpoint is spent: read once it frees a request
        before = self._requests_made()
        try:
            self._budgeted(key, read, before)
        except XRateLimited as exc:
            wait = max(0.0, exc.reset_at - time.time())
            poll.rate_limited(now + wait, now)
            log.warning("%s: rate limited by X for %.0f s", key, wait)
            with self.engine.begin() as conn:
                if exc.limit == "usage_cap":
                    add_alert(conn, "usage_capped", f"X's usage cap is reached: {key} is not read; next try in "
                              f"{wait:.0f} s.")  # fmt: skip
                else:
                    add_alert(conn, "rate_limited", f"X rate-limited {key}; next read in {wait:.0f} s.")
        except XCreditsDepleted as exc:
            poll.rate_limited(now + CREDITS_RECHECK_S, now)
            log.warning("%s: %s (next read in %.0f s)", key, exc, CREDITS_RECHECK_S)
            with self.engine.begin() as conn:
                add_alert(conn, "credits_depleted", f"X refuses to read {key}: the account's credits are spent "
                          f"(HTTP 402); top up the credits. Next read in {CREDITS_RECHECK_S:.0f} s.")  # fmt: skip
        except XError as exc:
            if _refused_query(exc, key):
                self._query_refused(key, exc, now)
                return
            poll.failed(now, self.backoff_max_s)
            log.warning("%s: %s (retry in %.1f s)", key, exc, poll.next_at - now)
        except Exception:
            poll.failed(now, self.backoff_max_s)
            log.exception("%s: unexpected error (retry in %.1f s)", key, poll.next_at - now)
        else:
            poll.done(now)
            self.refused_queries.pop(key, None)

    def _query_refused(self, key: str, exc: XRejected, now: float) -> None:
        """X refused a configured keyword search as malformed: say so in the log and, once a day, as an alert on
        the lead page, and ask again only after REFUSED_QUERY_RECHECK_S. Mentions and the other searches go on."""
        query = key.removeprefix("search:")
        reason = exc.detail.removeprefix(_X_INVALID_REQUEST).removeprefix("; ").rstrip(".") or str(exc)
        self.polls[key].rate_limited(now + REFUSED_QUERY_RECHECK_S, now)
        log.error(
            "search %r: X refuses the query (HTTP 400): %s; fix it in CAREBOT_X_SEARCH_QUERIES (asked again in %.0f "
            "min; mentions and the other searches go on)", query, reason, REFUSED_QUERY_RECHECK_S / 60,
        )  # fmt: skip
        alerted = self.refused_queries.get(key)
        if alerted is not None and now - alerted < REFUSED_QUERY_ALERT_EVERY_S:
            return
        self.refused_queries[key] = now
        with self.engine.begin() as conn:
            add_alert(
                conn, "search_query_refused",
                f"X refuses the keyword search {query!r}: {reason}. Fix the query in CAREBOT_X_SEARCH_QUERIES; "
                f"mentions and the other searches are read as usual, this one is asked again every "
                f"{REFUSED_QUERY_RECHECK_S / 60:.0f} minutes.",
                {"query": query, "detail": exc.detail},
            )  # fmt: skip

    def _budgeted(self, key: str, read: Callable[[], object], before: dict[str, int]) -> None:
        """`read()`, with the requests it made (whatever its outcome) recorded in the endpoints' budgets."""
        try:
            read()
        finally:
            now = self.monotonic()
            for endpoint, count in self._requests_made().items():
                if endpoint in self.budgets:
                    self.budgets[endpoint].record(now, count - before.get(endpoint, 0))

    def budget_used(self) -> dict[str, tuple[int, Window]]:
        """Requests used now in each paced read endpoint's window, with the window."""
        now = self.monotonic()
        return {endpoint: (budget.used(now), budget.window) for endpoint, budget in self.budgets.items()}

    def step(self) -> bool:
        """One pass over everything that is due. Returns True when there may be more work right away."""
        more = self.intake_and_triage_step()
        return self.send_step() or more

    def intake_and_triage_step(self) -> bool:
        started = self.monotonic()
        self._read("mentions", self.intake.read_mentions)
        for query in self.search_queries:
            self._read(f"search:{query}", lambda q=query: self.intake.read_search(q))  # type: ignore[misc]
        self._read("dms", self.intake.read_dms)
        triaged = self.processor.step()
        if self.follow_up is not None:
            self.follow_up()
        self.heartbeat(self.monotonic() - started)
        return triaged.triaged + triaged.waiting >= self.processor.batch_size

    def send_step(self) -> bool:
        self.sender.settle_interrupted()
        self.sender.reconcile()
        sent = self.sender.send_due()
        return (sent.sent + sent.failed + sent.unknown) >= self.sender.batch_size

    def heartbeat(self, step_seconds: float) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(worker_heartbeats)
                .where(worker_heartbeats.c.name == self.name)
                .values(pid=os.getpid(), seen_at=now, step_seconds=step_seconds)
            ).rowcount
            if not updated:
                conn.execute(
                    insert(worker_heartbeats).values(
                        name=self.name, pid=os.getpid(), seen_at=now, step_seconds=step_seconds
                    )
                )

    def run(self, stop: threading.Event, *, idle_sleep_s: float = 0.1) -> None:
        """Until `stop`: intake and triage in this thread, posting in a second one, so replies go out while the
        next batch is triaged. An error in a step is logged and the step tried again after a backoff; only a
        BaseException that is no Exception (KeyboardInterrupt, SystemExit) stops both threads (and the process)."""
        self.sender.recover()
        failed: list[BaseException] = []

        def loop(step: Callable[[], bool]) -> None:
            failures = 0
            try:
                while not stop.is_set():
                    try:
                        more = step()
                    except Exception:
                        failures += 1
                        delay = min(self.backoff_max_s, START_BACKOFF_S * 2 ** min(failures - 1, 16))
                        log.exception("worker %s: unexpected error; trying again in %.1f s", step.__name__, delay)
                        stop.wait(delay)
                        continue
                    failures = 0
                    if not more:
                        stop.wait(idle_sleep_s)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                failed.append(exc)
                stop.set()

        sender = threading.Thread(target=loop, args=(self.send_step,), name="sender", daemon=True)
        sender.start()
        loop(self.intake_and_triage_step)
        sender.join()
        if failed:
            raise failed[0]


def last_heartbeat(engine: Engine, name: str = "worker") -> datetime | None:
    with engine.connect() as conn:
        seen = conn.execute(select(worker_heartbeats.c.seen_at).where(worker_heartbeats.c.name == name)).scalar()
    return as_utc(seen)


def _wait_for_account(client: object, stop: threading.Event, backoff_max_s: float) -> object | None:
    """Our account on X; retried with backoff while X (or the sandbox) is not reachable yet."""
    delay = START_BACKOFF_S
    while not stop.is_set():
        try:
            return client.me()  # type: ignore[attr-defined]
        except XRateLimited as exc:
            wait = max(1.0, exc.reset_at - time.time())
            log.warning("X rate-limited users/me; retrying in %.0f s", wait)
            stop.wait(wait)
        except XError as exc:
            log.warning("X is not reachable yet (%s); retrying in %.1f s", exc, delay)
            stop.wait(delay)
            delay = min(backoff_max_s, delay * 2)
    return None


@contextmanager
def build_worker(settings: Settings, desk: Desk | None = None) -> Iterator[Worker | None]:
    """The worker on carebot's database and X (or the sandbox X). Yields None if stopped before X answered."""
    from bot.channel.x_client import XClient

    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    client = XClient.from_settings(settings)
    stop = threading.Event()
    try:
        with open_desk(settings) if desk is None else _given(desk) as opened:
            me = _wait_for_account(client, stop, settings.x_backoff_max_s)
            handoff = Handoff(engine, sla_minutes=settings.sla_first_response_minutes)
            yield Worker(
                engine=engine,
                intake=Intake(engine, client),
                processor=TweetProcessor(
                    engine, opened, handoff, account_id=me.id,  # type: ignore[attr-defined]
                    batch_size=settings.worker_batch_size, nlu_wait_s=settings.worker_nlu_wait_s,
                    policy_versions=None if desk is not None else PolicyVersions(
                        engine, settings.training_data_dir / "policy.yml"
                    ),
                ),  # fmt: skip
                sender=Sender(
                    engine, client, handoff, reconcile_after_s=settings.x_reconcile_after_s,
                    backoff_max_s=settings.x_backoff_max_s, limits=limits_for(settings.x_tier),
                ),  # fmt: skip
                search_queries=tuple(settings.x_search_queries),
                poll_interval_s=settings.x_poll_interval_s,
                read_limits=read_limits_for(settings.x_tier),
                backoff_max_s=settings.x_backoff_max_s,
                follow_up=ResolutionFollowUp(engine, handoff, guide=opened.guide).step,
            )
    finally:
        client.close()
        engine.dispose()


@contextmanager
def _given(desk: Desk) -> Iterator[Desk]:
    yield desk
