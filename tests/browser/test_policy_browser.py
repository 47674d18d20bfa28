"""The lead's policy page in a real browser: the labels' refit with its before/after table, Apply (a new live
version), the diff of two versions, Rollback to the shipped policy."""

from __future__ import annotations

from browser_support import Served, log_in
from playwright.sync_api import Page, expect

from bot.decision.policy import DEFAULT_POLICY_PATH, load_policy
from bot.learning import label_store
from bot.policy_versions import live_policy
from handoff.labels import LabelledDecision


def _labels(served: Served) -> None:
    labels = label_store(served.desk.engine)
    with served.desk.engine.begin() as conn:
        for n in range(40):
            decision = LabelledDecision(text=f"When is my bill due? ({n})", tweet_id=f"p{n}", faq_entry_id=1,
                                        score=round(0.40 + 0.01 * n, 2), kind="billing_issue")  # fmt: skip
            labels.record(conn, "approved", decision, actor="ann")
        for n in range(5):
            decision = LabelledDecision(text=f"My bill is wrong ({n})", tweet_id=f"n{n}", faq_entry_id=1,
                                        score=round(0.10 + 0.01 * n, 2), kind="billing_issue")  # fmt: skip
            labels.record(conn, "rejected", decision, actor="ann")


def _live_bar(served: Served) -> float:
    url = served.desk.settings.effective_database_url
    return live_policy(url, DEFAULT_POLICY_PATH).auto_thresholds("billing_issue").min_score


def test_a_lead_applies_the_refit_diffs_it_and_rolls_back(page: Page, served: Served) -> None:
    shipped = load_policy(DEFAULT_POLICY_PATH).auto_thresholds("billing_issue").min_score
    _labels(served)
    log_in(page, served, "lee")
    page.goto(f"{served.url}/lead/learning")
    page.get_by_role("link", name="Policy versions").click()
    row = page.locator('#policy-refit tr[data-kind="billing_issue"]')
    expect(row).to_contain_text("0.1400")
    expect(row).to_contain_text("0.976")
    page.locator("#policy-apply input[name=reason]").fill("first week of labels")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("body")).to_contain_text("Policy version 2 is live")
    assert _live_bar(served) == 0.14
    expect(page.locator('#policy-versions tr[data-version="2"]')).to_contain_text("first week of labels")

    page.locator("#policy-diff-form").get_by_role("button", name="Diff").click()
    expect(page.locator("#policy-diff")).to_contain_text("kind billing_issue")
    expect(page.locator("#policy-diff")).to_contain_text("score ≥ 0.14")

    page.locator('#policy-versions tr[data-version="1"]').get_by_role("button", name="Roll back to this").click()
    expect(page.locator("body")).to_contain_text("Policy version 3 is live")
    assert _live_bar(served) == shipped
    expect(page.locator('#policy-versions tr[data-version="3"]')).to_contain_text("rollback of version 1")
