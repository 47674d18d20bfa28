"""The log-in rate limit slows down a client, never an account: attempts are reserved before their password is
checked (so simultaneous ones are counted), waits grow with each further failure, another client's right password
always works, the client address comes from X-Forwarded-For only behind a trusted proxy, and leads see the
lock-outs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from web_support import FAST_HASHER, PASSWORD, WebDesk, log_in, web_desk

from bot.settings import Settings
from bot.web.access import forwarded_client
from bot.web.accounts import AccountService, LoginRateLimited, LoginRefused, RateLimit
from bot.web.models import login_attempts, login_clients


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


class CountingHasher:
    """The app's hasher, counting password checks; each check takes a while, as argon2's real cost does."""

    def __init__(self, inner: PasswordHasher, seconds: float = 0.3) -> None:
        self.inner = inner
        self.seconds = seconds
        self.checks = 0
        self._lock = threading.Lock()

    def verify(self, hash: str, password: str) -> bool:
        with self._lock:
            self.checks += 1
        time.sleep(self.seconds)
        return bool(self.inner.verify(hash, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _login_form(desk: WebDesk, address: str) -> tuple[Any, str]:
    client = desk.client(address)
    page = client.get("/login")
    return client, page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]


def test_simultaneous_wrong_passwords_are_counted_before_they_are_checked(
    desk: WebDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = CountingHasher(FAST_HASHER)
    monkeypatch.setattr(desk.services.accounts, "hasher", hasher)
    attacker = "198.51.100.7"
    forms = [_login_form(desk, attacker) for _ in range(30)]
    start = threading.Barrier(len(forms))

    def attempt(form: tuple[Any, str]) -> Any:
        client, token = form
        start.wait()
        return client.post("/login", data={"username": "ann", "password": "not the password", "login_token": token})

    with ThreadPoolExecutor(max_workers=len(forms)) as pool:
        answers = list(pool.map(attempt, forms))
    statuses = sorted(answer.status_code for answer in answers)
    assert hasher.checks <= 5, statuses
    assert statuses.count(401) == hasher.checks and statuses.count(429) == 30 - hasher.checks
    assert all(int(a.headers["retry-after"]) > 0 for a in answers if a.status_code == 429)

    # The attacker's next try, even with the right password, waits; ann on her own computer logs in.
    assert log_in(desk.client(attacker), "ann").status_code == 429
    assert log_in(desk.client("10.0.0.12"), "ann").status_code == 303
    assert hasher.checks <= 6


def test_an_attempt_still_being_checked_counts(desk: WebDesk) -> None:
    limiter = desk.services.accounts.limiter
    for _ in range(5):
        limiter.reserve("bob", "192.0.2.1")  # reserved, never finished (a crash while checking)
    with pytest.raises(LoginRateLimited):
        desk.services.accounts.log_in("bob", PASSWORD, client="192.0.2.1")
    assert desk.services.accounts.log_in("bob", PASSWORD, client="192.0.2.2")[1].account.username == "bob"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_wait_doubles_with_each_further_failure_up_to_its_cap_and_a_success_ends_it(desk: WebDesk) -> None:
    clock = Clock()
    limit = RateLimit(
        per_username_and_client=2, per_client=100, window=timedelta(hours=1), first_wait=timedelta(minutes=1),
        max_wait=timedelta(minutes=4),
    )  # fmt: skip
    service = AccountService(desk.engine, rate_limit=limit, hasher=FAST_HASHER, clock=clock)

    def fail() -> None:
        with pytest.raises(LoginRefused) as refused:
            service.log_in("ann", "not the password", client="10.1.1.1")
        assert type(refused.value) is LoginRefused  # checked and wrong, not refused unchecked

    def waits() -> int:
        with pytest.raises(LoginRateLimited) as limited:
            service.log_in("ann", PASSWORD, client="10.1.1.1")
        return limited.value.retry_after_s

    fail()
    fail()
    waited = []
    for _ in range(4):
        waited.append(waits())
        clock.now += timedelta(seconds=waited[-1])
        fail()
    assert waited == [60, 120, 240, 240]
    assert waits() == 240
    assert "4 minutes" in str(LoginRateLimited(240)) and "30 seconds" in str(LoginRateLimited(30))
    # Meanwhile ann logs in from her own computer, and that does not help the other client.
    assert service.log_in("ann", PASSWORD, client="10.2.2.2")[1].account.username == "ann"
    assert waits() == 240
    # Once the wait is over, the right password works there too, and the count starts again.
    clock.now += timedelta(minutes=4)
    service.log_in("ann", PASSWORD, client="10.1.1.1")
    fail()
    assert service.log_in("ann", PASSWORD, client="10.1.1.1")[1].account.username == "ann"


def test_nobody_can_lock_a_colleague_out_from_many_clients(desk: WebDesk) -> None:
    for n in range(8):
        for _ in range(5):
            assert log_in(desk.client(f"203.0.113.{n}"), "ann", "guessing!!").status_code == 401
        assert log_in(desk.client(f"203.0.113.{n}"), "ann", "guessing!!").status_code == 429
    assert log_in(desk.client("10.0.0.12"), "ann").status_code == 303


def test_one_client_failing_for_many_usernames_waits_for_every_username(tmp_path: Path) -> None:
    with web_desk(tmp_path, rate_limit=RateLimit(per_username_and_client=5, per_client=6)) as desk:
        for name in ("ann", "bob", "eve", "nobody1", "nobody2", "nobody3"):
            assert log_in(desk.client("203.0.113.9"), name, "guessing!!").status_code == 401
        assert log_in(desk.client("203.0.113.9"), "lee").status_code == 429
        assert log_in(desk.client("10.0.0.12"), "lee").status_code == 303


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "client"),
    [
        ("10.0.0.1", ["203.0.113.5"], ("10.0.0.1",), "203.0.113.5"),
        ("10.0.0.1", ["1.1.1.1, 203.0.113.5"], ("10.0.0.1",), "203.0.113.5"),  # 1.1.1.1 is the client's own claim
        ("10.0.0.1", ["203.0.113.5, 10.0.0.2"], ("10.0.0.0/24",), "203.0.113.5"),  # two proxies of ours
        ("10.0.0.1", ["1.1.1.1", "203.0.113.5"], ("10.0.0.1",), "203.0.113.5"),  # two headers read as one list
        ("198.51.100.3", ["203.0.113.5"], ("10.0.0.1",), "198.51.100.3"),  # not from our proxy: not believed
        ("10.0.0.1", [], ("10.0.0.1",), "10.0.0.1"),
        ("10.0.0.1", ["not-an-address"], ("10.0.0.1",), "10.0.0.1"),
        ("10.0.0.1", ["2001:db8::5"], ("10.0.0.1",), "2001:db8::5"),
    ],
)
def test_the_client_is_read_from_x_forwarded_for_only_behind_a_trusted_proxy(
    peer: str, forwarded_for: list[str], trusted: tuple[str, ...], client: str
) -> None:
    assert forwarded_client(peer, forwarded_for, trusted) == client


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(desk: WebDesk) -> None:
    desk.app.state.settings = desk.settings.model_copy(update={"web_trusted_proxies": ["10.0.0.1"]})
    proxy = desk.client("10.0.0.1")
    attacker = {"X-Forwarded-For": "203.0.113.5"}
    for _ in range(5):
        assert _post_login(proxy, "ann", "guessing!!", attacker).status_code == 401
    assert _post_login(proxy, "ann", PASSWORD, attacker).status_code == 429
    # Ann comes through the same proxy from her own address; a forged header in front changes nothing.
    assert _post_login(proxy, "ann", PASSWORD, {"X-Forwarded-For": "203.0.113.5, 198.51.100.20"}).status_code == 303
    assert {lockout.client for lockout in desk.services.accounts.lockouts()} == {"203.0.113.5"}


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(desk: WebDesk) -> None:
    client = desk.client("198.51.100.7")
    for n in range(5):
        assert _post_login(client, "ann", "guessing!!", {"X-Forwarded-For": f"192.0.2.{n}"}).status_code == 401
    assert _post_login(client, "ann", PASSWORD, {"X-Forwarded-For": "192.0.2.99"}).status_code == 429


def _post_login(client: Any, username: str, password: str, headers: dict[str, str]) -> Any:
    page = client.get("/login")
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    data = {"username": username, "password": password, "login_token": token}
    return client.post("/login", data=data, headers=headers)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert Settings(web_trusted_proxies=["10.0.0.1", "10.1.0.0/16", "::1"]).web_trusted_proxies[1] == "10.1.0.0/16"
    with pytest.raises(ValueError, match="no IP address"):
        Settings(web_trusted_proxies=["proxy.example"])


def test_the_lead_view_shows_lock_outs_with_user_client_and_count(desk: WebDesk) -> None:
    for _ in range(6):
        log_in(desk.client("203.0.113.77"), "ann", "guessing!!")
    for _ in range(5):
        log_in(desk.client("203.0.113.78"), "<b>nobody</b>", "guessing!!")
    log_in(desk.client("203.0.113.79"), "bob", "one typo!!")  # one failure is no lock-out

    lockouts = {(lockout.username, lockout.client): lockout for lockout in desk.services.accounts.lockouts()}
    assert set(lockouts) == {("ann", "203.0.113.77"), ("<b>nobody</b>", "203.0.113.78")}
    ann = lockouts[("ann", "203.0.113.77")]
    assert ann.failures == 5 and ann.account_exists and ann.waits_until is not None  # the 6th waited unchecked
    assert not lockouts[("<b>nobody</b>", "203.0.113.78")].account_exists

    page = desk.logged_in("lee").get("/lead")
    assert page.status_code == 200
    section = page.text.split('id="lockouts"', 1)[1].split("</section>", 1)[0]
    assert "203.0.113.77" in section and ">5<" in section and "ann" in section
    assert "&lt;b&gt;nobody&lt;/b&gt;" in section and "no such account" in section
    assert "203.0.113.79" not in section


def test_a_quiet_shift_shows_no_lock_outs(desk: WebDesk) -> None:
    assert 'id="lockouts"' not in desk.logged_in("lee").get("/lead").text


def test_old_attempts_and_clients_are_forgotten(desk: WebDesk) -> None:
    clock = Clock()
    service = AccountService(desk.engine, hasher=FAST_HASHER, clock=clock)
    with pytest.raises(LoginRefused):
        service.log_in("ann", "guessing!!", client="203.0.113.1")
    clock.now += timedelta(days=8)
    assert service.forget_attempts() == 1
    with desk.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(login_attempts)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(login_clients)).scalar_one() == 0
