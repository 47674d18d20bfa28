"""The reports page in Chromium over seeded history (day D, two days ago: tickets answered, resolved, reopened,
drafts, CSAT, an incident) plus a replayed day (labelled conversations through the worker's own TweetProcessor):
every chart is drawn with its legend and table, a CSV download equals the table, an editor sees the FAQ part only,
and the page fits a 390 px phone. Screenshots go to var/screenshots/ to be looked at."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from browser_support import Served, log_in
from playwright.sync_api import Page
from sqlalchemy import func, select
from unit.test_web_reports import TODAY, seed

from bot.channel.models import inbound_tweets
from bot.decision.policy import load_policy
from bot.decision.tone import ToneGuide
from bot.desk import Desk
from bot.nlu.client import NluResult, parse_response
from bot.nlu.testing import canned_parse
from bot.traffic import read_conversations
from bot.traffic_eval import replay_conversations
from bot.web.reports import CHARTS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CONVERSATIONS = ROOT / "training_data" / "conversations" / "dev_conversations.jsonl"
POLICY = ROOT / "tests" / "data" / "policy.yml"


class KeywordNlu:
    """Stands in for Rasa in the replay: the message kind from the first keyword found."""

    RULES = [("how", "product_question"), ("stop", "opt_out"), ("thank", "thanks"), ("hello", "greeting"),
             ("down", "outage_report"), ("bill", "billing_issue")]  # fmt: skip

    def parse(self, text: str) -> NluResult:
        intent = next((name for word, name in self.RULES if word in text.lower()), "complaint")
        return parse_response(canned_parse(text, intent, 0.95), text)


def replay_a_day(served: Served, count: int = 40) -> int:
    """The first `count` labelled conversations replayed through the worker's decision path, today."""
    conversations = read_conversations(CONVERSATIONS)[:count]
    desk = Desk(KeywordNlu(), served.desk.kb, load_policy(POLICY), ToneGuide.load(), parse_threads=1)  # type: ignore[arg-type]
    return len(replay_conversations(conversations, desk, served.desk.engine))


def test_the_reports_page_draws_every_chart_over_history_and_a_replayed_day(served: Served, page: Page) -> None:
    seed(served.desk)
    assert replay_a_day(served) > 40
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, served, "lee")
    page.click("nav.mainnav >> text=Reports")
    page.wait_for_url("**/reports")
    assert page.locator("#report-span").inner_text().endswith("by day")
    for spec in CHARTS:
        section = page.locator(f"section#{spec.name}")
        assert section.locator("h2").text_content() == spec.title
        assert section.locator("svg.chart").count() == 1 and section.locator("svg.chart title").count() >= 1
        assert section.locator("table").count() == 1
        assert section.locator(".legend li").count() >= 1
    volume = page.locator("section#volume")
    assert volume.locator("svg.chart rect").count() >= 2  # bars on the seeded day and on today
    assert volume.locator("table tbody tr").count() == 7
    page.screenshot(path=str(SCREENSHOTS / "reports-lead-7d.png"), full_page=True)

    volume.locator("details summary").click()
    cells = [[c.text_content() for c in row.locator("td").all()] for row in volume.locator("table tbody tr").all()]
    header = [h.text_content() for h in volume.locator("table thead th").all()]
    with page.expect_download() as info:
        volume.locator("a", has_text="Download CSV").click()
    downloaded = list(csv.reader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert downloaded[0] == header
    assert [[cell if cell else "—" for cell in row] for row in downloaded[1:]] == cells
    with served.desk.engine.connect() as conn:
        replayed = conn.execute(select(func.count()).where(inbound_tweets.c.fetched_at >= TODAY)).scalar_one()
    assert int(cells[-1][-1]) == replayed > 40 and int(cells[-3][-1]) == 16  # today, and day D's 16 tweets

    page.select_option("#report-range", "today")
    page.click("#report-show")
    page.wait_for_load_state()
    assert page.locator("#report-span").inner_text().endswith("by hour")
    assert page.locator("section#volume table tbody tr").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "reports-lead-today.png"), full_page=True)


def test_at_390_px_the_charts_fit_and_an_editor_sees_the_faq_part(served: Served, page: Page) -> None:
    seed(served.desk)
    replay_a_day(served, count=20)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, served, "lee")
    page.goto(f"{served.url}/reports?range=7d")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for spec in CHARTS:
        box = page.locator(f"section#{spec.name} svg.chart").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, spec.name
    page.locator("section#first-response details summary").click()
    page.screenshot(path=str(SCREENSHOTS / "reports-lead-390px.png"), full_page=True)
    for name in ("volume", "first-response", "agents"):  # one card at a time, readable at the phone's size
        page.locator(f"section#{name}").screenshot(path=str(SCREENSHOTS / f"reports-390px-{name}.png"))

    page.goto(f"{served.url}/login")
    log_in(page, served, "eve")
    page.goto(f"{served.url}/reports?range=7d")
    shown = [s.get_attribute("id") for s in page.locator("section.report").all()]
    assert shown == ["faq-busiest", "faq-unhelpful"]
    assert "reset-hub" in (page.locator("section#faq-busiest table").text_content() or "")
    page.screenshot(path=str(SCREENSHOTS / "reports-editor-390px.png"), full_page=True)
