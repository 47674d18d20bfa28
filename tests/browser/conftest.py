"""Browser tests: Playwright's sync API driving the system Chromium (headless, no browser download) against the
web app served by uvicorn on a free port, over a scratch database with the real handoff queue and outbox.

Every page fails the test on a JavaScript dialog (alert, confirm, prompt that the test did not expect), an
uncaught script error, or a Content-Security-Policy violation."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

pytest.importorskip("playwright")
from browser_support import PageProblems, Served, worker_on_sandbox  # noqa: E402
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright  # noqa: E402
from unit.web_support import web_desk  # noqa: E402

from bot.channel.worker import Worker  # noqa: E402
from bot.decision.policy import load_policy  # noqa: E402
from bot.decision.tone import ToneGuide  # noqa: E402
from bot.desk import Desk  # noqa: E402
from bot.sandbox.testing import running_sandbox  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
TEST_POLICY = Path(__file__).resolve().parent.parent / "data" / "policy.yml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


# One Chromium per test module, not per session: Playwright's sync API keeps an asyncio loop running in this
# thread while it is open, and tests outside tests/browser that call asyncio.run must not find one.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("the browser tests need the system Chromium at /usr/bin/chromium (Debian package chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The web app on 127.0.0.1 in a thread, with accounts ann (agent, ^AB), bob, eve (editor) and lee (lead)."""
    with web_desk(tmp_path) as desk:
        port = _free_port()
        config = uvicorn.Config(desk.app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)  # (an open event stream would otherwise hold the shutdown for minutes)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        try:
            yield Served(desk, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Browser, problems: PageProblems, request: pytest.FixtureRequest) -> Iterator[Page]:
    if "served" in request.fixturenames:
        request.getfixturevalue("served")  # set up first, so the page closes before the server stops
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)

    def on_dialog(dialog: object) -> None:
        problems.dialogs.append(f"{dialog.type}: {dialog.message}")  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: problems.errors.append(f"page error: {error}"))
    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # A refused form answers with its status (401, 409, …) and the browser logs the page itself as failed to
        # load: that is the page under test, not a failed sub-resource.
        url = message.location.get("url", "")
        if message.text.startswith("Failed to load resource") and (url == page.url or url.endswith("/favicon.ico")):
            return  # (the browser asks every site for /favicon.ico by itself; the sandbox X has none)
        problems.errors.append(f"console error: {message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    try:
        yield page
    finally:
        context.close()
    problems.assert_none()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    """A sandbox X of the test's own, by its URL (a module may define its own `sandbox`)."""
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running.url


@pytest.fixture
def worker(served: Served, sandbox: str, rasa_server: Any) -> Iterator[Worker]:
    """The real worker on `sandbox` with the real Rasa and the served desk's knowledge base, stepped by the test."""
    with rasa_server.client() as nlu:
        desk = Desk(nlu, served.desk.kb, load_policy(TEST_POLICY), ToneGuide.load(), parse_threads=1)
        with worker_on_sandbox(served, sandbox, desk) as running:
            yield running
