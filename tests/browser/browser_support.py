"""Helpers of the browser tests: the served app and logging in through the page."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import Page
from unit.web_support import PASSWORD, WebDesk


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
