"""Log-in accounts, sessions and the log-in rate limit: the web app's own service layer over bot/web/models.py.

Passwords are argon2id hashes (argon2-cffi). An agent's or lead's account and its handoff roster agent are created
together in one transaction, and disabling the account takes the roster agent off the shift (see `set_active`).
A session is a random token in an HttpOnly cookie; only its sha256 is stored, with the session's CSRF token and
expiry. The log-in rate limit (bot/web/login_limit.py) slows down a client that keeps failing, never an account.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.db import as_utc
from bot.web.login_limit import Lockout, LoginLimiter, MustWait, RateLimit
from bot.web.models import ROLES, accounts, sessions
from handoff import AgentNotFound, Handoff, HandoffError

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")
INITIALS = re.compile(r"[A-Z]{2,3}")
MIN_PASSWORD_LENGTH = 10

# Roles that sign public replies and so need initials and a roster agent.
AGENT_ROLES = ("agent", "lead")
AGENT_KINDS = ("core", "on_call")
MAX_CAPACITY = 1000  # open tickets a roster agent may hold at once
MAX_NAME_LENGTH = 100  # the roster's limit


class AccountError(Exception):
    """The account cannot be created or changed as asked."""


class LoginRefused(Exception):
    """Wrong username or password."""


class LoginRateLimited(LoginRefused):
    """Too many failed log-ins from this client (for this username, or for any); try again later."""

    def __init__(self, retry_after_s: int) -> None:
        if retry_after_s < 60:
            wait = f"{retry_after_s} second{'s' if retry_after_s != 1 else ''}"
        else:
            minutes = math.ceil(retry_after_s / 60)
            wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        super().__init__(f"Too many failed log-ins. Try again in {wait}.")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    display_name: str
    role: str
    initials: str | None
    agent_id: int | None
    active: bool
    created_at: datetime

    def has_role(self, *roles: str) -> bool:
        """Whether the account may act in one of `roles`; a lead may also do whatever an agent does."""
        return self.role in roles or (self.role == "lead" and "agent" in roles)


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str
    expires_at: datetime


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _account(row: Any) -> Account:
    return Account(
        id=row.id, username=row.username, display_name=row.display_name, role=row.role, initials=row.initials,
        agent_id=row.agent_id, active=row.active, created_at=row.created_at,
    )  # fmt: skip


class AccountService:
    def __init__(
        self,
        engine: Engine,
        *,
        session_hours: float = 12.0,
        rate_limit: RateLimit | None = None,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.session_lifetime = timedelta(hours=session_hours)
        self.rate_limit = rate_limit or RateLimit()
        self.limiter = LoginLimiter(engine, self.rate_limit, clock)
        self.hasher = hasher or PasswordHasher()  # argon2id with argon2-cffi's recommended parameters
        self.clock = clock
        # Verifying against this when the username is unknown takes as long as a real check.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # ---------------------------------------------------------------- accounts

    def check_new(
        self,
        username: str,
        *,
        role: str,
        display_name: str,
        initials: str | None = None,
        kind: str = "core",
        capacity: int = 5,
    ) -> tuple[str, str]:
        """The username and name as they will be stored, once every rule for a new account holds (AccountError
        otherwise). `carebot users add` checks this before it asks for the password."""
        username = username.strip().lower()
        if not USERNAME.fullmatch(username):
            raise AccountError(
                "a username is 2-64 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter"
            )
        if role not in ROLES:
            raise AccountError(f"the role is one of {', '.join(ROLES)}, not {role!r}")
        display_name = " ".join(display_name.split())
        if not display_name or len(display_name) > MAX_NAME_LENGTH:
            raise AccountError(f"the name is 1-{MAX_NAME_LENGTH} characters")
        if role in AGENT_ROLES and initials is None:
            raise AccountError(f"a {role} signs replies, so the account needs initials (--initials AB)")
        if initials is not None and (not INITIALS.fullmatch(initials) or initials == "BOT"):
            raise AccountError(f"initials are 2 or 3 capital letters A-Z (not BOT), not {initials!r}")
        if role in AGENT_ROLES:
            if kind not in AGENT_KINDS:
                raise AccountError(f"the kind is core or on_call, not {kind!r}")
            if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= MAX_CAPACITY:
                raise AccountError(f"the capacity is a whole number from 0 to {MAX_CAPACITY}, not {capacity!r}")
        if self.by_username(username) is not None:
            raise AccountError(f"the username {username} is taken")
        return username, display_name

    def create(
        self,
        username: str,
        password: str,
        *,
        role: str,
        display_name: str,
        initials: str | None = None,
        agent_id: int | None = None,
        kind: str = "core",
        capacity: int = 5,
    ) -> Account:
        """Create the account. An agent or lead also joins the handoff roster (`kind`, `capacity`) unless
        `agent_id` names its roster agent already. Account and roster agent are written in one transaction:
        whatever is refused leaves neither behind."""
        username, display_name = self.check_new(
            username, role=role, display_name=display_name, initials=initials, kind=kind, capacity=capacity
        )
        self._check_password(password)
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                if initials is not None and conn.scalar(select(accounts.c.id).where(accounts.c.initials == initials)):
                    raise AccountError(f"the initials {initials} belong to another account")
                if role in AGENT_ROLES and agent_id is None:
                    assert initials is not None  # check_new requires them
                    agent_id = self._join_roster(conn, username, display_name, initials, kind, capacity)
                new_id = conn.execute(
                    insert(accounts).values(
                        username=username, display_name=display_name, role=role, initials=initials,
                        agent_id=agent_id, password_hash=self.hasher.hash(password), active=True, created_at=now,
                        password_changed_at=now,
                    )  # fmt: skip
                ).inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError as exc:
            raise AccountError(f"the username {username} is taken") from exc
        return self.get(int(new_id))

    def _handoff(self) -> Handoff:
        return Handoff(self.engine, clock=self.clock)

    def _join_roster(self, conn: Any, username: str, display_name: str, initials: str, kind: str, capacity: int) -> int:
        """The new roster agent's id, added in the account's transaction. A roster agent of this username that no
        account uses (left by an older carebot) is taken over when its initials match."""
        handoff = self._handoff()
        existing = handoff.agent_by_username(username)
        if existing is not None and not conn.scalar(select(accounts.c.id).where(accounts.c.agent_id == existing.id)):
            if existing.initials != initials:
                raise AccountError(
                    f"the roster already has an agent {username} signing ^{existing.initials}: "
                    f"use --initials {existing.initials}"
                )
            return existing.id
        try:
            return handoff.add_agent(username, display_name, initials, kind=kind, capacity=capacity, conn=conn).id
        except HandoffError as exc:
            raise AccountError(str(exc)) from exc

    def _check_password(self, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AccountError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
        if len(password) > 1024:
            raise AccountError("a password has at most 1024 characters")

    def get(self, account_id: int) -> Account:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).one_or_none()
        if row is None:
            raise AccountError(f"there is no account {account_id}")
        return _account(row)

    def by_username(self, username: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.username == username.strip().lower())).one_or_none()
        return _account(row) if row else None

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            return [_account(row) for row in conn.execute(select(accounts).order_by(accounts.c.username))]

    def set_password(self, username: str, password: str) -> None:
        self._check_password(password)
        with self.engine.begin() as conn:
            row = conn.execute(select(accounts.c.id).where(accounts.c.username == username)).one_or_none()
            if row is None:
                raise AccountError(f"there is no account {username}")
            conn.execute(
                update(accounts)
                .where(accounts.c.id == row.id)
                .values(password_hash=self.hasher.hash(password), password_changed_at=self.clock())
            )
            conn.execute(delete(sessions).where(sessions.c.account_id == row.id))

    def set_active(self, username: str, active: bool, *, by: str = "admin") -> None:
        """Enable or disable the account, in one transaction with its roster agent (audited by handoff as `by`).

        Disabling ends the account's sessions; its roster agent goes offline, every ticket it holds goes back to
        the queue, and nobody can give it tickets or bring it online. Enabling makes the roster agent assignable
        again; it stays offline until it is set online."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(accounts.c.id, accounts.c.agent_id).where(accounts.c.username == username)
            ).one_or_none()
            if row is None:
                raise AccountError(f"there is no account {username}")
            conn.execute(update(accounts).where(accounts.c.id == row.id).values(active=active))
            if not active:
                conn.execute(delete(sessions).where(sessions.c.account_id == row.id))
            if row.agent_id is not None:
                try:
                    self._handoff().set_agent_active(conn, row.agent_id, active, by)
                except AgentNotFound:
                    pass  # its roster agent is gone: nothing to take off the shift
                except HandoffError as exc:
                    raise AccountError(str(exc)) from exc

    # ---------------------------------------------------------------- logging in

    def log_in(self, username: str, password: str, *, client: str, replaces: str | None = None) -> tuple[str, Session]:
        """A new session token (for the cookie) and its session; `replaces` (an old token) is ended.

        The attempt is reserved (and counted) before the password is checked. Raises LoginRateLimited when this
        client must wait first, LoginRefused for a wrong username or password (the same message either way).
        """
        username = username.strip().lower()[:64]
        client = client[:64]
        try:
            attempt_id = self.limiter.reserve(username, client)
        except MustWait as exc:
            raise LoginRateLimited(exc.retry_after_s) from None
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.username == username)).one_or_none()
        ok = False
        try:
            ok = self.hasher.verify(row.password_hash if row is not None else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
        ok = ok and row is not None and row.active
        self.limiter.finish(attempt_id, succeeded=ok)
        if not ok or row is None:
            raise LoginRefused("Wrong username or password.")
        now = self.clock()
        with self.engine.begin() as conn:
            if self.hasher.check_needs_rehash(row.password_hash):
                conn.execute(
                    update(accounts).where(accounts.c.id == row.id).values(password_hash=self.hasher.hash(password))
                )
            if replaces:
                conn.execute(delete(sessions).where(sessions.c.token_hash == _hash_token(replaces)))
            conn.execute(delete(sessions).where(sessions.c.expires_at < now))
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(32)
            expires = now + self.session_lifetime
            conn.execute(
                insert(sessions).values(
                    token_hash=_hash_token(token), account_id=row.id, csrf_token=csrf, created_at=now,
                    expires_at=expires, client=client,
                )  # fmt: skip
            )
        return token, Session(_account(row), csrf, expires)

    def lockouts(self) -> list[Lockout]:
        """The clients that reached a log-in limit in the last 24 hours (for the lead view)."""
        return self.limiter.lockouts()

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie's token; None when unknown, expired or the account is disabled."""
        if not token or len(token) > 128:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sessions.c.csrf_token, sessions.c.expires_at, accounts)
                .join(accounts, accounts.c.id == sessions.c.account_id)
                .where(sessions.c.token_hash == _hash_token(token))
            ).one_or_none()
        if row is None or not row.active or as_utc(row.expires_at) <= self.clock():
            return None
        return Session(_account(row), row.csrf_token, as_utc(row.expires_at))

    def log_out(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.token_hash == _hash_token(token)))

    def forget_attempts(self, *, older_than: timedelta = timedelta(days=7)) -> int:
        return self.limiter.forget(older_than)
