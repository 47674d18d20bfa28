"""The queue, ticket and shift pages on a phone (390 px) and a desktop (1440 px): nothing wider than the screen.
Screenshots go to /tmp/carebot-<page>-<width>.png to look at."""

from __future__ import annotations

import pytest
from browser_support import Served, log_in
from playwright.sync_api import Page

WIDTHS = (390, 1440)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_overflow(page: Page, served: Served, width: int) -> None:
    desk = served.desk
    desk.escalate("my broadband keeps dropping every evening and nobody has fixed it in three weeks of asking!!",
                  priority=2, customer_handle="a_rather_long_customer_handle", reasons=["an angry complaint"])
    ticket_id = desk.escalate("how do I reset my hub?", priority=4, customer_handle="li_wei")
    page.set_viewport_size({"width": width, "height": 900})
    pages = {"queue": "/queue", "ticket": f"/tickets/{ticket_id}", "shift": "/lead"}
    for username, names in (("ann", ("queue", "ticket")), ("lee", ("shift",))):
        page.context.clear_cookies()
        log_in(page, served, username)
        for name in names:
            page.goto(served.url + pages[name])
            page.screenshot(path=f"/tmp/carebot-{name}-{width}.png", full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {width} px is {overflow} px wider than the screen"
