"""The FAQ learns in a real browser: customers' tweets from drafts agents approved are proposed as paraphrases on
the Proposed paraphrases page; the editor adds one to the entry's draft with one click (the live version unchanged
until publish) and dismisses another."""

from __future__ import annotations

import itertools
from pathlib import Path

from browser_support import Served, log_in
from playwright.sync_api import Page, expect

from bot.learning import label_store
from handoff.labels import LabelledDecision

SHOTS = Path("/tmp/shots")
STUCK = "@KestrelCare my hub is stuck on a red light all evening, how do I reset it? https://t.co/abc123"
STUCK_TEXT = "my hub is stuck on a red light all evening, how do I reset it?"
BOX = "what is the way to restart the broadband box"
_ids = itertools.count(1_992_000_000_000_000_000)


def _label(served: Served, kind: str, text: str, slug: str) -> None:
    engine = served.desk.engine
    decision = LabelledDecision(
        text=text, tweet_id=str(next(_ids)), faq_entry_id=served.desk.kb.service.get(slug).id, score=0.8
    )
    with engine.begin() as conn:
        label_store(engine).record(conn, kind, decision, actor="ann")


def test_an_editor_adds_a_proposed_paraphrase_to_the_draft_and_dismisses_another(served: Served, page: Page) -> None:
    _label(served, "approved", STUCK, "reset-hub")
    _label(served, "edited", STUCK, "reset-hub")
    _label(served, "suggestion_sent", BOX, "reset-hub")
    _label(served, "rejected", "the box lights are flashing green since the storm", "reset-hub")
    log_in(page, served, "eve")
    page.goto(f"{served.url}/faq")
    page.click("#proposals-link")
    rows = page.locator("tr.proposal")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(STUCK_TEXT)
    expect(rows.first).to_contain_text("1 approved unchanged, 1 approved after an edit")
    expect(page.locator("body")).not_to_contain_text("flashing green")
    expect(page.locator("body")).not_to_contain_text("https://t.co")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "faq-proposals.png"), full_page=True)

    rows.first.locator("button.add-proposal").click()
    page.wait_for_url(f"{served.url}/faq/entries/reset-hub")
    expect(page.locator("body")).to_contain_text("Paraphrase added to the draft")
    expect(page.locator("textarea[name=paraphrases]")).to_have_value(
        "hub 4 factory reset\nrouter reset to factory settings\n" + STUCK_TEXT
    )
    entry = served.desk.kb.service.get("reset-hub")
    assert entry.has_unpublished_changes and STUCK_TEXT in entry.content.paraphrases

    page.click("#entry-proposals")
    rows = page.locator("tr.proposal")
    expect(rows).to_have_count(1)
    rows.first.locator("button.dismiss-proposal").click()
    expect(page.locator("body")).to_contain_text("Dismissed. It will not be proposed again.")
    expect(page.locator("tr.proposal")).to_have_count(0)
    assert BOX not in served.desk.kb.service.get("reset-hub").content.paraphrases
