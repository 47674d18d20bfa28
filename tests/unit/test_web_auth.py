"""Logging in: argon2id hashes, server-side sessions in HttpOnly SameSite cookies renewed at each log-in and
stored only hashed, expiry, log-out, the log-in rate limit per username and client and per client (more in
test_web_login_limit.py), safe redirects, and the security headers on every answer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from web_support import FAST_HASHER, PASSWORD, WebDesk, log_in, web_desk

from bot.web.access import SESSION_COOKIE
from bot.web.accounts import AccountError, AccountService, LoginRateLimited, LoginRefused, RateLimit
from bot.web.models import accounts, sessions


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    """Each test runs on SQLite and, marked `postgres`, on PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _cookie(response: object) -> str:
    header = response.headers.get("set-cookie", "")  # type: ignore[attr-defined]
    assert header, "no cookie was set"
    return str(header)


def test_passwords_are_stored_as_argon2id_hashes(desk: WebDesk) -> None:
    with desk.engine.connect() as conn:
        stored = conn.execute(select(accounts.c.password_hash).where(accounts.c.username == "ann")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_log_in_sets_an_http_only_same_site_cookie_whose_token_is_stored_hashed(desk: WebDesk) -> None:
    client = desk.client()
    response = log_in(client, "ann")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = _cookie(response)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Secure" not in cookie
    token = client.cookies[SESSION_COOKIE]
    with desk.engine.connect() as conn:
        hashes = conn.execute(select(sessions.c.token_hash)).scalars().all()
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]
    assert client.get("/queue").status_code == 200


def test_the_cookie_is_secure_when_configured(tmp_path: Path) -> None:
    with web_desk(tmp_path) as desk:
        desk.app.state.settings = desk.settings.model_copy(update={"web_secure_cookies": True})
        assert "Secure" in _cookie(log_in(desk.client(), "ann"))


def test_a_new_log_in_renews_the_session_and_ends_the_old_one(desk: WebDesk) -> None:
    client = desk.client()
    log_in(client, "ann")
    first = client.cookies[SESSION_COOKIE]
    log_in(client, "ann")
    second = client.cookies[SESSION_COOKIE]
    assert first != second
    stale = desk.client()
    stale.cookies.set(SESSION_COOKIE, first)
    assert stale.get("/api/me").status_code == 401
    assert client.get("/api/me").json()["username"] == "ann"


def test_wrong_passwords_and_unknown_users_get_the_same_answer(desk: WebDesk) -> None:
    wrong = log_in(desk.client(), "ann", "not the password")
    unknown = log_in(desk.client(), "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password." in wrong.text and "Wrong username or password." in unknown.text
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


def test_the_log_in_form_needs_its_token(desk: WebDesk) -> None:
    client = desk.client()
    client.get("/login")
    response = client.post("/login", data={"username": "ann", "password": PASSWORD, "login_token": "forged"})
    assert response.status_code == 403 and SESSION_COOKIE not in client.cookies


def test_log_out_ends_the_session(desk: WebDesk) -> None:
    client = desk.logged_in("ann")
    token = client.cookies[SESSION_COOKIE]
    csrf = client.get("/api/me").json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": csrf}).headers["location"] == "/login"
    replay = desk.client()
    replay.cookies.set(SESSION_COOKIE, token)
    assert replay.get("/api/me").status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "queue"])
def test_after_log_in_only_paths_on_this_site_are_followed(desk: WebDesk, target: str) -> None:
    client = desk.client()
    page = client.get("/login", params={"next": target})
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/login", data={"username": "ann", "password": PASSWORD, "login_token": token, "next": target}
    )
    assert response.headers["location"] == "/"


def test_a_page_asked_for_before_logging_in_is_opened_after(desk: WebDesk) -> None:
    client = desk.client()
    assert client.get("/queue").headers["location"] == "/login?next=%2Fqueue"
    page = client.get("/login?next=%2Fqueue")
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/login", data={"username": "ann", "password": PASSWORD, "login_token": token, "next": "/queue"}
    )
    assert response.headers["location"] == "/queue"


def test_failed_log_ins_make_that_client_wait_for_that_username_even_with_the_right_password(tmp_path: Path) -> None:
    with web_desk(tmp_path, rate_limit=RateLimit(per_username_and_client=3, per_client=100)) as desk:
        for _ in range(3):
            assert log_in(desk.client(), "ann", "wrong password!").status_code == 401
        blocked = log_in(desk.client(), "ann")
        assert blocked.status_code == 429 and "Too many failed log-ins" in blocked.text
        assert blocked.headers["retry-after"] == "60"
        assert log_in(desk.client(), "bob").status_code == 303  # other users of that client are not slowed down
        assert log_in(desk.client("10.0.0.2"), "ann").status_code == 303  # nor is ann on another client


def test_failed_log_ins_are_limited_per_client_address(tmp_path: Path) -> None:
    with web_desk(tmp_path, rate_limit=RateLimit(per_username_and_client=100, per_client=4)) as desk:
        for name in ("a1", "a2", "a3", "a4"):
            assert log_in(desk.client(), name, "wrong password!").status_code == 401
        assert log_in(desk.client(), "ann").status_code == 429
        assert log_in(desk.client("10.0.0.2"), "ann").status_code == 303


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_sessions_expire_and_the_rate_limit_window_moves_on(desk: WebDesk) -> None:
    clock = Clock()
    service = AccountService(
        desk.engine, session_hours=2, rate_limit=RateLimit(per_username_and_client=2, window=timedelta(minutes=10)),
        hasher=FAST_HASHER, clock=clock,
    )  # fmt: skip
    token, session = service.log_in("ann", PASSWORD, client="10.0.0.1")
    assert session.expires_at == clock.now + timedelta(hours=2)
    assert service.session(token) is not None
    clock.now += timedelta(hours=2, seconds=1)
    assert service.session(token) is None

    for _ in range(2):
        with pytest.raises(LoginRefused):
            service.log_in("bob", "nope nope nope", client="10.0.0.2")
    with pytest.raises(LoginRateLimited) as limited:
        service.log_in("bob", PASSWORD, client="10.0.0.2")
    assert 0 < limited.value.retry_after_s <= 600
    clock.now += timedelta(minutes=10, seconds=1)
    assert service.log_in("bob", PASSWORD, client="10.0.0.2")[1].account.username == "bob"


def test_a_disabled_account_cannot_log_in_and_loses_its_sessions(desk: WebDesk) -> None:
    client = desk.logged_in("bob")
    desk.services.accounts.set_active("bob", False)
    assert client.get("/api/me").status_code == 401
    assert log_in(desk.client(), "bob").status_code == 401


def test_account_rules(desk: WebDesk) -> None:
    service = desk.services.accounts
    with pytest.raises(AccountError, match="taken"):
        service.create("ann", PASSWORD, role="agent", display_name="Another Ann", initials="AN")
    with pytest.raises(AccountError, match="initials"):
        service.create("cat", PASSWORD, role="agent", display_name="Cat")
    with pytest.raises(AccountError, match="belong to another"):
        service.create("cat", PASSWORD, role="agent", display_name="Cat", initials="AB")
    with pytest.raises(AccountError, match="at least"):
        service.create("cat", "short", role="editor", display_name="Cat")
    with pytest.raises(AccountError, match="role"):
        service.create("cat", PASSWORD, role="admin", display_name="Cat")
    with pytest.raises(AccountError, match="username"):
        service.create("<b>", PASSWORD, role="editor", display_name="Cat")


@pytest.mark.parametrize("path", ["/login", "/queue", "/api/me", "/static/app.css", "/no-such-page"])
def test_every_answer_carries_the_security_headers(desk: WebDesk, path: str) -> None:
    response = desk.logged_in("ann").get(path)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
