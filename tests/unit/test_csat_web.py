"""The lead's CSAT settings on /lead and as JSON (/api/lead/csat-settings), over the real app: defaults, changes
stored and audited, the range of the sample rate, roles and CSRF, the OpenAPI description."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from web_support import WebDesk, csrf_of, web_desk

from handoff import csat as store
from handoff.models import audit_events


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _stored(desk: WebDesk) -> store.CsatSettings:
    with desk.engine.connect() as conn:
        return store.read_settings(conn)


def test_the_lead_page_form_switches_surveys_and_sets_the_sample(desk: WebDesk) -> None:
    lead = desk.logged_in("lee")
    page = lead.get("/lead")
    assert page.status_code == 200
    assert 'id="csat"' in page.text and 'name="sample_percent"' in page.text and 'value="100"' in page.text
    assert '<label class="field" for="csat-sample"' in page.text  # every field has its label
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = lead.post("/lead/csat", data={"csrf_token": token, "sample_percent": "30", "public_close": "true"})
    assert response.status_code == 303 and response.headers["location"] == "/lead#csat"
    assert _stored(desk) == store.CsatSettings(enabled=False, sample_percent=30, public_close=True)
    page = lead.get("/lead")
    assert "Satisfaction surveys are off" in page.text
    assert 'id="csat-enabled" checked' not in page.text and 'value="30"' in page.text
    with desk.engine.connect() as conn:
        [event] = conn.execute(select(audit_events).where(audit_events.c.action == "desk_settings")).all()
    assert event.actor == "lee" and event.details["enabled"] == {"from": True, "to": False}
    assert event.details["sample_percent"] == {"from": 100, "to": 30}


def test_the_form_refuses_a_sample_out_of_range_and_other_roles(desk: WebDesk) -> None:
    lead = desk.logged_in("lee")
    token = csrf_of(lead)
    for bad in ("101", "-1", "half"):
        response = lead.post("/lead/csat", data={"csrf_token": token, "sample_percent": bad, "enabled": "true"})
        assert response.status_code in (400, 422), (bad, response.status_code)
    assert _stored(desk) == store.CsatSettings()
    assert lead.post("/lead/csat", data={"sample_percent": "50"}).status_code == 403  # no CSRF token
    agent = desk.logged_in("ann")
    response = agent.post("/lead/csat", data={"csrf_token": csrf_of(agent), "sample_percent": "50"})
    assert response.status_code == 403
    assert _stored(desk) == store.CsatSettings()


def test_the_json_api_reads_and_changes_the_settings(desk: WebDesk) -> None:
    lead = desk.logged_in("lee")
    assert lead.get("/api/lead/csat-settings").json() == {"enabled": True, "sample_percent": 100, "public_close": True}
    headers = {"X-CSRF-Token": csrf_of(lead)}
    response = lead.post("/api/lead/csat-settings", json={"sample_percent": 40}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"enabled": True, "sample_percent": 40, "public_close": True}
    response = lead.post("/api/lead/csat-settings", json={"public_close": False, "enabled": False}, headers=headers)
    assert response.json() == {"enabled": False, "sample_percent": 40, "public_close": False}
    assert _stored(desk) == store.CsatSettings(enabled=False, sample_percent=40, public_close=False)
    bad = lead.post("/api/lead/csat-settings", json={"sample_percent": 101}, headers=headers)
    assert bad.status_code == 422 and "error" in bad.json()
    assert lead.post("/api/lead/csat-settings", json={"enabled": True}).status_code == 403  # no CSRF header
    agent = desk.logged_in("ann")
    assert agent.get("/api/lead/csat-settings").status_code == 403
    editor = desk.logged_in("eve")
    assert editor.post("/api/lead/csat-settings", json={}, headers={"X-CSRF-Token": csrf_of(editor)}).status_code == 403
    assert _stored(desk).sample_percent == 40


def test_the_openapi_lists_the_settings_operations(desk: WebDesk) -> None:
    spec = desk.logged_in("lee").get("/api/openapi.json").json()
    operations = spec["paths"]["/api/lead/csat-settings"]
    assert set(operations) == {"get", "post"}
    assert operations["post"]["tags"] == ["lead"]
