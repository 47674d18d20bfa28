"""The lead's policy page and its JSON API (SQLite and PostgreSQL): the labels' refit with its before/after table,
Apply, the versions, the diff of two versions, Rollback; leads only, with the CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from web_support import WebDesk, csrf_of, web_desk

from bot.decision.policy import DEFAULT_POLICY_PATH, load_policy
from bot.learning import label_store
from bot.policy_versions import live_policy
from handoff.labels import LabelledDecision
from handoff.models import audit_events

SHIPPED = load_policy(DEFAULT_POLICY_PATH)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _labels(desk: WebDesk) -> None:
    """billing_issue: 40 approved drafts at scores 0.40 … 0.79 and 5 rejected at 0.10 … 0.14 (refit bar 0.14,
    40 of 41 right); tech_support: 3 labels, too few."""
    labels = label_store(desk.engine)
    with desk.engine.begin() as conn:
        for number in range(40):
            decision = LabelledDecision(f"when is my bill due {number}", tweet_id=f"p{number}", faq_entry_id=1,
                                        score=round(0.40 + 0.01 * number, 2), kind="billing_issue")  # fmt: skip
            labels.record(conn, "approved", decision, actor="ann")
        for number in range(5):
            decision = LabelledDecision(f"my bill is wrong {number}", tweet_id=f"n{number}", faq_entry_id=1,
                                        score=round(0.10 + 0.01 * number, 2), kind="billing_issue")  # fmt: skip
            labels.record(conn, "rejected", decision, actor="ann")
        for number in range(3):
            decision = LabelledDecision(f"hub lights {number}", tweet_id=f"t{number}", faq_entry_id=2, score=0.9,
                                        kind="tech_support")  # fmt: skip
            labels.record(conn, "approved", decision, actor="ann")


def _live(desk: WebDesk) -> float:
    return (
        live_policy(desk.settings.effective_database_url, DEFAULT_POLICY_PATH)
        .auto_thresholds("billing_issue")
        .min_score
    )


def _row(html: str, marker: str) -> str:
    start = html.index(marker)
    return html[start : html.index("</tr>", start)]


def test_a_lead_applies_the_refit_diffs_the_versions_and_rolls_back(desk: WebDesk) -> None:
    _labels(desk)
    lead = desk.logged_in("lee")
    csrf = csrf_of(lead)
    page = lead.get("/lead/policy")
    assert page.status_code == 200
    billing = _row(page.text, 'data-kind="billing_issue"')
    # now: the pooled bar 0.5974 answers the 20 approved at 0.60 … 0.79; refitted: 0.14 answers 41, 40 right
    assert (
        "<td>45</td><td>40</td>" in billing and "<td>0.5974</td><td>0.444</td><td>1.000</td><td>0.861</td>" in billing
    )
    assert "<td>0.1400</td><td>0.911</td><td>0.976</td>" in billing
    assert "kept: too few labels: 3" in _row(page.text, 'data-kind="tech_support"')
    assert "No versions yet" in page.text and 'id="policy-apply"' in page.text

    applied = lead.post("/lead/policy/apply", data={"csrf_token": csrf, "reason": "first week"})
    assert applied.status_code == 303
    assert "Policy version 2 is live" in lead.get("/lead/policy").text
    assert _live(desk) == 0.14
    page = lead.get("/lead/policy").text
    assert "2 (live)" in _row(page, 'data-version="2"') and "first week" in _row(page, 'data-version="2"')
    assert "shipped" in _row(page, 'data-version="1"') and "No bar would change." in page

    shown = lead.get("/lead/policy", params={"old": 1, "new": 2}).text
    diff = shown[shown.index('id="policy-diff"') :]
    assert (
        "<td>kind billing_issue</td><td>score ≥ 0.60, margin ≥ 0.00 (pooled)</td><td>score ≥ 0.14, margin ≥ 0.00</td>"
        in diff
    )
    assert "tech_support" not in diff

    back = lead.post("/lead/policy/rollback/1", data={"csrf_token": csrf, "reason": "too eager"})
    assert back.status_code == 303 and _live(desk) == SHIPPED.auto.min_score
    assert "rollback of version 1" in _row(lead.get("/lead/policy").text, 'data-version="3"')
    with desk.engine.connect() as conn:
        audited = conn.execute(
            select(audit_events.c.actor, audit_events.c.action).where(audit_events.c.action.like("policy_%"))
            .order_by(audit_events.c.id)
        ).all()  # fmt: skip
    assert [tuple(row) for row in audited] == [("lee", "policy_applied"), ("lee", "policy_rolled_back")]


def test_agents_and_forms_without_the_token_are_refused(desk: WebDesk) -> None:
    _labels(desk)
    agent = desk.logged_in("ann")
    csrf = csrf_of(agent)
    assert agent.get("/lead/policy").status_code == 403
    assert agent.post("/lead/policy/apply", data={"csrf_token": csrf}).status_code == 403
    assert agent.post("/api/lead/policy/apply", json={}, headers={"X-CSRF-Token": csrf}).status_code == 403
    assert agent.get("/api/lead/policy/versions").status_code == 403
    lead = desk.logged_in("lee")
    assert lead.post("/lead/policy/apply", data={"reason": "no token"}).status_code == 403
    assert lead.post("/lead/policy/apply", data={"csrf_token": "forged"}).status_code == 403
    assert lead.post("/api/lead/policy/apply", json={}).status_code == 403
    assert lead.get("/api/lead/policy/versions").json() == {"live": None, "versions": []}
    assert _live(desk) == SHIPPED.auto.min_score
    assert desk.client().get("/api/lead/policy/refit").status_code == 401


def test_the_api_refits_applies_lists_diffs_and_rolls_back(desk: WebDesk) -> None:
    _labels(desk)
    lead = desk.logged_in("lee")
    headers = {"X-CSRF-Token": csrf_of(lead)}
    refit = lead.get("/api/lead/policy/refit").json()
    assert refit["labelled"] == 48 and refit["changes"] is True
    billing = next(k for k in refit["kinds"] if k["kind"] == "billing_issue")
    assert (billing["labelled"], billing["right"], billing["kept"]) == (45, 40, None)
    assert billing["before"]["bar"] == SHIPPED.auto.min_score and billing["before"]["answered"] == 20
    assert billing["after"] == {"bar": 0.14, "answered": 41, "right": 40, "coverage": 0.9111, "precision": 0.9756,
                                "lower_bound": billing["after"]["lower_bound"]}  # fmt: skip
    assert 0.88 < billing["after"]["lower_bound"] < 0.9756
    tech = next(k for k in refit["kinds"] if k["kind"] == "tech_support")
    assert "too few labels" in tech["kept"] and tech["after"] == tech["before"]

    applied = lead.post("/api/lead/policy/apply", json={"reason": "api"}, headers=headers)
    assert applied.status_code == 200 and applied.json()["number"] == 2 and applied.json()["live"] is True
    again = lead.post("/api/lead/policy/apply", json={}, headers=headers)
    assert again.status_code == 409 and "no change" in again.json()["error"]["detail"]
    listed = lead.get("/api/lead/policy/versions").json()
    assert listed["live"] == 2 and [v["action"] for v in listed["versions"]] == ["apply", "shipped"]
    changes = lead.get("/api/lead/policy/diff", params={"old": 1, "new": 2}).json()["changes"]
    assert changes == [{"what": "kind billing_issue", "old": "score ≥ 0.60, margin ≥ 0.00 (pooled)",
                        "new": "score ≥ 0.14, margin ≥ 0.00"}]  # fmt: skip
    assert lead.get("/api/lead/policy/diff", params={"old": 1, "new": 5}).status_code == 404
    back = lead.post("/api/lead/policy/rollback/1", json={}, headers=headers)
    assert back.status_code == 200 and back.json()["based_on"] == 1 and _live(desk) == SHIPPED.auto.min_score
    assert lead.post("/api/lead/policy/rollback/9", json={}, headers=headers).status_code == 404

    spec = lead.get("/api/openapi.json").json()
    for path, method in (("/refit", "get"), ("/apply", "post"), ("/versions", "get"), ("/diff", "get"),
                         ("/rollback/{number}", "post")):  # fmt: skip
        operation = spec["paths"][f"/api/lead/policy{path}"][method]
        assert operation["summary"] and operation["tags"] == ["team lead"]
