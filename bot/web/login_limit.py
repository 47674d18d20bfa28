"""The log-in rate limit: it slows down a client, never an account.

Failed log-ins count per username from one client (since that client's last success for it), and per client
whatever the username, over a sliding window. Past either limit the client waits before its next try, and the wait
doubles with each further failure, up to a cap. The same username from another client is not affected, so nobody
can lock a colleague out by typing wrong passwords for their name.

An attempt is reserved before its password is checked: a row in web_login_attempts whose outcome is still NULL,
written in the transaction that counts the client's earlier attempts. That transaction first writes the client's
row in web_login_clients, which takes SQLite's write lock or PostgreSQL's row lock until it commits, so attempts
that arrive together are counted one after the other, whichever web process serves them, and attempts still being
checked count like failures. A refused attempt (must wait) writes nothing.

Leads see the clients that reached a limit in the last 24 hours (`lockouts()`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.db import as_utc
from bot.web.models import accounts, login_attempts, login_clients

# Leads see the clients that reached a limit within this time.
LOCKOUT_HISTORY = timedelta(hours=24)


@dataclass(frozen=True)
class RateLimit:
    """How many failed log-ins a client may make before it waits, and how long it waits."""

    per_username_and_client: int = 5  # failures for one username from one client (since its last success there)
    per_client: int = 20  # failures from one client, whatever the usernames
    window: timedelta = timedelta(hours=1)  # older failures no longer count
    first_wait: timedelta = timedelta(minutes=1)  # the wait at the limit; it doubles with each further failure
    max_wait: timedelta = timedelta(minutes=15)

    def wait_after(self, failures: int, limit: int) -> timedelta | None:
        """How long a client waits after its latest failure when it has `failures` against `limit`."""
        if failures < limit:
            return None
        doublings = min(failures - limit, 30)
        return min(self.first_wait * 2**doublings, self.max_wait)


class MustWait(Exception):
    """This client has to wait before it may try again."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Lockout:
    """A client that reached a log-in limit: for one username, or (username None) for several."""

    client: str
    username: str | None
    failures: int  # failed log-ins within LOCKOUT_HISTORY
    usernames: int  # how many usernames they were for
    last_failure_at: datetime
    waits_until: datetime | None  # when the client may try again; None: it may try now
    account_exists: bool  # the username is an account's (False for username None)


# An attempt that did not succeed: failed, or reserved and still being checked (or never finished).
_NOT_SUCCEEDED = login_attempts.c.succeeded.is_not(True)


class LoginLimiter:
    def __init__(self, engine: Engine, rate_limit: RateLimit, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.rate_limit = rate_limit
        self.clock = clock

    def reserve(self, username: str, client: str) -> int:
        """Count the client's earlier attempts and reserve this one; returns the attempt's id for `finish`.
        Raises MustWait when the client is past a limit."""
        now = self.clock()
        with self.engine.begin() as conn:
            self._lock_client(conn, client, now)
            retry_after = self._retry_after(conn, username, client, now)
            if retry_after is not None:
                raise MustWait(retry_after)
            attempt_id = conn.execute(
                insert(login_attempts).values(username=username, client=client, at=now, succeeded=None)
            ).inserted_primary_key[0]  # type: ignore[index]
        return int(attempt_id)

    def finish(self, attempt_id: int, succeeded: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(login_attempts).where(login_attempts.c.id == attempt_id).values(succeeded=succeeded))

    def _lock_client(self, conn: Any, client: str, now: datetime) -> None:
        """Write the client's row as the transaction's first statement: on SQLite that takes the database's write
        lock, on PostgreSQL the row's lock, either held until the transaction ends."""
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(login_clients).values(client=client, last_attempt_at=now)
        conn.execute(statement.on_conflict_do_update(index_elements=["client"], set_={"last_attempt_at": now}))

    def _next_try(self, conn: Any, where: Any, limit: int, since: datetime) -> datetime | None:
        """When the client may try again after its attempts matching `where` that did not succeed since `since`;
        None when it is under the limit."""
        count, latest = conn.execute(
            select(func.count(), func.max(login_attempts.c.at)).where(
                where, _NOT_SUCCEEDED, login_attempts.c.at > since
            )
        ).one()
        wait = self.rate_limit.wait_after(int(count), limit)
        return None if wait is None else as_utc(latest) + wait

    def _retry_after(self, conn: Any, username: str, client: str, now: datetime) -> int | None:
        """Seconds until this client may try this username again; None when it may try now."""
        window_start = now - self.rate_limit.window
        pair = (login_attempts.c.username == username) & (login_attempts.c.client == client)
        last_success = conn.execute(
            select(func.max(login_attempts.c.at)).where(pair, login_attempts.c.succeeded.is_(True))
        ).scalar()
        since = max(window_start, as_utc(last_success)) if last_success is not None else window_start
        moments = (
            self._next_try(conn, pair, self.rate_limit.per_username_and_client, since),
            self._next_try(conn, login_attempts.c.client == client, self.rate_limit.per_client, window_start),
        )
        later = [moment for moment in moments if moment is not None and moment > now]
        return max(1, math.ceil((max(later) - now).total_seconds())) if later else None

    def lockouts(self, *, limit: int = 20) -> list[Lockout]:
        """The clients that reached a limit within LOCKOUT_HISTORY, the latest first: for one username
        (per_username_and_client failures) or for any usernames (per_client failures)."""
        now = self.clock()
        failed = _NOT_SUCCEEDED & (login_attempts.c.at > now - LOCKOUT_HISTORY)
        count, latest = func.count(), func.max(login_attempts.c.at)
        client_, username_ = login_attempts.c.client, login_attempts.c.username
        found = []
        with self.engine.connect() as conn:
            known = set(conn.execute(select(accounts.c.username)).scalars())
            pairs = conn.execute(
                select(client_, username_, count, latest)
                .where(failed)
                .group_by(client_, username_)
                .having(count >= self.rate_limit.per_username_and_client)
            ).all()
            for client, username, failures, last in pairs:
                retry_after = self._retry_after(conn, username, client, now)
                found.append(
                    Lockout(
                        client, username, int(failures), 1, as_utc(last),
                        None if retry_after is None else now + timedelta(seconds=retry_after), username in known,
                    )  # fmt: skip
                )
            clients = conn.execute(
                select(client_, count, func.count(username_.distinct()), latest)
                .where(failed)
                .group_by(client_)
                .having(count >= self.rate_limit.per_client)
            ).all()
            for client, failures, usernames, last in clients:
                until = self._next_try(
                    conn, client_ == client, self.rate_limit.per_client, now - self.rate_limit.window
                )
                found.append(
                    Lockout(
                        client, None, int(failures), int(usernames), as_utc(last),
                        until if until is not None and until > now else None, False,
                    )  # fmt: skip
                )
        found.sort(key=lambda lockout: lockout.last_failure_at, reverse=True)
        return found[:limit]

    def forget(self, older_than: timedelta) -> int:
        """Delete attempts older than `older_than`, and the rows of clients not seen since; returns how many
        attempts were deleted."""
        cutoff = self.clock() - older_than
        with self.engine.begin() as conn:
            result = conn.execute(delete(login_attempts).where(login_attempts.c.at < cutoff))
            conn.execute(delete(login_clients).where(login_clients.c.last_attempt_at < cutoff))
            return result.rowcount or 0
