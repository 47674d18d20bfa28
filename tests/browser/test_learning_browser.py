"""Shadow → automatic → back to shadow in a real browser: the lead's learning view shows an entry's labels, its
measured precision and lower bound; "Switch to automatic" stays disabled until the bound reaches the target, then
one click switches it; after live "didn't help" labels the worker's check puts it back in shadow with an alert on
the shift page; every switch is in the audit log."""

from __future__ import annotations

from browser_support import Served, log_in
from playwright.sync_api import Page, expect
from sqlalchemy import select

from bot.learning import MIN_LIVE_LABELS, label_store, watch
from handoff.labels import LabelledDecision
from handoff.models import audit_events

TARGET = 0.97  # tests/data and training_data policies


def _labels(served: Served, label: str, times: int) -> None:
    labels = label_store(served.desk.engine)
    with served.desk.engine.begin() as conn:
        for n in range(times):
            decision = LabelledDecision(text=f"How do I restart my hub? ({n})", faq_entry_id=1, score=0.8,
                                        kind="product_question")  # fmt: skip
            labels.record(conn, label, decision, actor="ann")


def test_an_entry_goes_from_shadow_to_automatic_on_evidence_and_back_when_its_precision_falls(
    page: Page, served: Served
) -> None:
    labels = label_store(served.desk.engine)
    labels.switch("entry", "1", "shadow", by="lee", reason="new entry")
    _labels(served, "approved", 40)
    log_in(page, served, "lee")
    page.goto(f"{served.url}/lead/learning")
    row = page.locator('#learning-entry tr[data-key="1"]')
    expect(row).to_contain_text("40")
    expect(row.locator(".mode")).to_contain_text("shadow")
    switch = row.get_by_role("button", name="Switch to automatic")
    expect(switch).to_be_disabled()  # 40 of 40 right: the lower bound is below the target

    _labels(served, "approved", 90)
    page.reload()
    expect(row.locator(".bound")).to_have_text("0.977")
    expect(switch).to_be_enabled()
    switch.click()
    expect(page.locator("body")).to_contain_text("is automatic now")
    expect(row.locator(".mode")).to_contain_text("automatic")

    _labels(served, "didnt_help", MIN_LIVE_LABELS)  # live: customers say it did not help
    assert watch(served.desk.engine, labels, TARGET) == [("entry", "1")]
    page.reload()
    expect(row.locator(".mode")).to_contain_text("shadow")
    expect(row.locator(".mode")).to_contain_text("by bot")
    page.goto(f"{served.url}/lead")
    expect(page.locator("body")).to_contain_text("entry 1 is back in shadow")
    with served.desk.engine.connect() as conn:
        switches = conn.execute(
            select(audit_events.c.actor, audit_events.c.details)
            .where(audit_events.c.action == "automation_switched").order_by(audit_events.c.id)
        ).all()  # fmt: skip
    assert [(actor, details["to"]) for actor, details in switches] == [
        ("lee", "shadow"), ("lee", "automatic"), ("bot", "shadow"),
    ]  # fmt: skip
