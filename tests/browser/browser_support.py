"""Helpers of the browser tests: the served app and logging in through the page."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page
from unit.web_support import PASSWORD, WebDesk

from bot.channel.intake import Intake
from bot.channel.processing import TweetProcessor
from bot.channel.sender import Sender
from bot.channel.worker import Worker
from bot.channel.x_client import XClient
from bot.desk import Desk


@dataclass
class Served:
    desk: WebDesk
    url: str


def log_in(page: Page, served: Served, username: str = "ann", password: str = PASSWORD) -> None:
    page.goto(f"{served.url}/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_load_state()


class PageProblems:
    """What a page did that it must not: dialogs, script errors, CSP violations."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def assert_none(self) -> None:
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert self.errors == [], f"script errors or CSP violations: {self.errors}"


@contextmanager
def worker_on_sandbox(served: Served, sandbox_url: str, desk: Desk) -> Iterator[Worker]:
    """The X channel's worker in this process, on the served app's database and the sandbox X (real tweepy over
    HTTP), with `desk` deciding; tests drive it with `step_until`."""
    settings = served.desk.settings.model_copy(update={"x_api_url": sandbox_url})
    client = XClient.from_settings(settings)
    engine, handoff = served.desk.engine, served.desk.handoff
    try:
        yield Worker(
            engine=engine, intake=Intake(engine, client),
            processor=TweetProcessor(engine, desk, handoff, account_id=client.me().id, nlu_wait_s=60),
            sender=Sender(engine, client, handoff, reconcile_after_s=0), search_queries=(), poll_interval_s=0,
        )  # fmt: skip
    finally:
        client.close()


def step_until(condition: Callable[[], Any], worker: Worker, what: str, timeout_s: float = 20) -> Any:
    """Run worker steps until `condition` returns something true, and return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        worker.step()
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
