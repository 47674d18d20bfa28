"""Shadow mode and the lead's view of the labels, on SQLite and PostgreSQL: the measured precision per kind and
per FAQ entry with its one-sided 95% lower bound, "switch to automatic" refused until the bound reaches the
target, an automatic entry whose live precision falls going back to shadow with an alert, every switch audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from web_support import WebDesk, csrf_of, web_desk

from bot.channel.models import alerts
from bot.learning import (
    MIN_LIVE_LABELS,
    SwitchRefused,
    evidence,
    label_store,
    precision_lower_bound,
    switch_to_automatic,
    watch,
)
from handoff.errors import InvalidInput
from handoff.labels import LabelledDecision, Labels, edit_distance
from handoff.models import audit_events

TARGET = 0.97


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _label(desk: WebDesk, labels: Labels, label: str, times: int, *, entry: int = 7, kind: str = "how_to") -> None:
    with desk.engine.begin() as conn:
        for n in range(times):
            decision = LabelledDecision(text=f"@KestrelCare question {n}", faq_entry_id=entry, score=0.8, kind=kind)
            labels.record(conn, label, decision, actor="ann")


def _switches(desk: WebDesk) -> list[tuple[str, str, str]]:
    with desk.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events).where(audit_events.c.action == "automation_switched").order_by(audit_events.c.id)
        ).all()
    return [(row.actor, row.details["key"], row.details["to"]) for row in rows]


def test_edit_distance_and_the_lower_bound() -> None:
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("same", "same") == 0
    assert edit_distance("", "abc") == 3
    assert precision_lower_bound(0, 0) == 0.0
    assert precision_lower_bound(50, 50) < TARGET <= precision_lower_bound(120, 120)
    assert precision_lower_bound(118, 120) < precision_lower_bound(120, 120)


def test_switch_to_automatic_needs_the_bound_and_a_falling_entry_goes_back_to_shadow(desk: WebDesk) -> None:
    labels = label_store(desk.engine)
    for scope, key, mode in (("team", "7", "shadow"), ("entry", "7", "sometimes"), ("entry", "", "shadow")):
        with pytest.raises(InvalidInput):
            labels.switch(scope, key, mode, by="lee", reason="")
    with desk.engine.begin() as conn, pytest.raises(InvalidInput):
        labels.record(conn, "liked", LabelledDecision(text="hi"), actor="ann")
    _label(desk, labels, "approved", 50)
    with pytest.raises(SwitchRefused, match="below the target"):
        switch_to_automatic(labels, "entry", "7", target=TARGET, by="lee")
    _label(desk, labels, "suggestion_sent", 70)
    [kind, entry] = evidence(labels, TARGET)
    assert (entry.tally.scope, entry.tally.count, entry.tally.correct, entry.mode) == ("entry", 120, 120, "policy")
    assert entry.can_switch_to_automatic and entry.lower_bound >= TARGET
    switch_to_automatic(labels, "entry", "7", target=TARGET, by="lee")
    assert labels.modes()["entry", "7"].mode == "automatic"

    assert watch(desk.engine, labels, TARGET) == []  # no live labels yet
    _label(desk, labels, "thanks", MIN_LIVE_LABELS - 6)
    _label(desk, labels, "didnt_help", 6)
    assert watch(desk.engine, labels, TARGET) == [("entry", "7")]
    assert labels.modes()["entry", "7"].mode == "shadow"
    with desk.engine.connect() as conn:
        [alert] = conn.execute(select(alerts).where(alerts.c.kind == "precision_fell")).all()
    assert "entry 7 is back in shadow" in alert.message and "6 didn't help" in alert.message
    assert _switches(desk) == [("lee", "7", "automatic"), ("bot", "7", "shadow")]
    with desk.engine.connect() as conn:
        assert labels.in_shadow(conn, kind="how_to", entry_id=7)
        assert not labels.in_shadow(conn, kind="how_to", entry_id=8)


def test_the_lead_view_shows_the_evidence_and_switches_only_on_it(desk: WebDesk) -> None:
    labels = label_store(desk.engine)
    _label(desk, labels, "approved", 120, kind="how_to")
    _label(desk, labels, "rejected", 3, entry=9, kind="billing")
    desk.add_user("lia", "lead", "Lia Grey", "LG")
    client = desk.logged_in("lia")
    csrf = csrf_of(client)
    page = client.get("/lead/learning")
    assert page.status_code == 200
    assert "how_to" in page.text and "billing" in page.text and "0.975" in page.text
    assert "@KestrelCare" not in page.text  # the stored texts have no mentions
    refused = client.post("/lead/learning/kind/billing/automatic", data={"csrf_token": csrf})
    assert refused.status_code == 303 and "below the target" in client.get("/lead/learning").text
    done = client.post("/lead/learning/kind/how_to/automatic", data={"csrf_token": csrf})
    assert done.status_code == 303 and labels.modes()["kind", "how_to"].mode == "automatic"
    client.post("/lead/learning/kind/billing/shadow", data={"csrf_token": csrf})
    assert _switches(desk) == [("lia", "how_to", "automatic"), ("lia", "billing", "shadow")]
    assert client.post("/lead/learning/kind/bad%20key/shadow", data={"csrf_token": csrf}).status_code in (404, 422)
    assert desk.client().get("/lead/learning").status_code in (303, 401, 403)  # leads only
