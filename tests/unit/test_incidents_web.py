"""The incident pages and their JSON API over the real app: agents read, leads change (forms and JSON, CSRF), hostile
titles and tweets are escaped, the OpenAPI lists the operations, and the lead page's surge box starts an incident
with the words the surge's tickets share."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from web_support import WebDesk, csrf_of, web_desk

from bot.channel.models import inbound_tweets, outbox
from handoff import transaction

_ids = itertools.count(1_897_000_000_000_000_000)
UPDATE = "Engineers are fixing a fibre cable near Leeds; we expect service back by 6pm."


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[WebDesk]:
    with web_desk(tmp_path) as scratch:
        yield scratch


def _outage_tickets(desk: WebDesk, count: int) -> list[int]:
    return [
        desk.escalate(f"@KestrelCare no internet in Leeds, fibre down ({n})", customer_handle=f"leeds_{n}",
                      customer_id=str(8000 + n))
        for n in range(count)
    ]  # fmt: skip


def _form(client: Any, path: str, **data: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf_of(client), **data})


def test_a_lead_runs_an_incident_through_the_pages(desk: WebDesk) -> None:
    ids = _outage_tickets(desk, 3)
    unrelated = desk.escalate("@KestrelCare how do I pay my bill")
    lee = desk.logged_in("lee")
    created = _form(lee, "/incidents", title="Fibre outage, Leeds", keywords="leeds, fibre",
                    status_note="Engineers on site.")  # fmt: skip
    assert created.status_code == 303
    page_path = created.headers["location"]
    page = lee.get(page_path)
    assert page.status_code == 200 and "Fibre outage, Leeds" in page.text and "Engineers on site." in page.text
    for ticket_id in ids:
        assert f'data-suggested="{ticket_id}"' in page.text
    assert f'data-suggested="{unrelated}"' not in page.text

    linked = _form(lee, f"{page_path}/link", ticket_id=[str(t) for t in ids])
    assert linked.status_code == 303
    page = lee.get(page_path)
    assert "3 tickets linked." in page.text
    for ticket_id in ids:
        assert f'data-ticket="{ticket_id}"' in page.text and f'data-suggested="{ticket_id}"' not in page.text

    refused = _form(lee, f"{page_path}/update", text="SORRY FOR ANY INCONVENIENCE!!")
    assert refused.status_code == 303
    assert "Not sent" in lee.get(page_path).text
    sent = _form(lee, f"{page_path}/update", text=UPDATE)
    assert sent.status_code == 303
    assert "3 updates queued" in lee.get(page_path).text
    with desk.engine.connect() as conn:
        texts = list(conn.execute(select(outbox.c.text).where(outbox.c.kind == "incident_update")).scalars())
    assert len(set(texts)) == 3 and all(text.endswith(" ^LL") for text in texts)

    edited = _form(lee, f"{page_path}/edit", status_note="Fixed at 17:40.", keywords="leeds")
    assert edited.status_code == 303 and "Fixed at 17:40." in lee.get(page_path).text
    unlinked = _form(lee, f"{page_path}/tickets/{ids[2]}/unlink")
    assert unlinked.status_code == 303 and f"Ticket {ids[2]} is out of this incident" in lee.get(page_path).text


def test_agents_read_incidents_and_only_leads_change_them(desk: WebDesk) -> None:
    ids = _outage_tickets(desk, 1)
    lee = desk.logged_in("lee")
    path = _form(lee, "/incidents", title="Fibre outage, Leeds", keywords="leeds").headers["location"]
    ann = desk.logged_in("ann")
    assert ann.get("/incidents").status_code == 200 and "Fibre outage, Leeds" in ann.get("/incidents").text
    page = ann.get(path)
    assert page.status_code == 200 and 'href="/incidents"' in page.text
    assert "data-suggested" not in page.text and "/link" not in page.text  # nothing an agent cannot do
    assert ann.get("/incidents/new").status_code == 403
    for action, data in (("link", {"ticket_id": str(ids[0])}), ("update", {"text": UPDATE}),
                         ("resolve", {"text": UPDATE}), ("edit", {"status_note": "x"})):  # fmt: skip
        assert _form(ann, f"{path}/{action}", **data).status_code == 403
    assert _form(ann, "/incidents", title="Mine").status_code == 403
    eve = desk.logged_in("eve")
    assert eve.get("/incidents").status_code == 403 and eve.get("/api/incidents").status_code == 403
    assert 'href="/incidents"' not in eve.get("/faq").text
    assert desk.logged_in("lee").get("/incidents/424242").status_code == 404


def test_hostile_titles_notes_and_tweets_are_shown_as_text(desk: WebDesk) -> None:
    ticket = desk.escalate("@KestrelCare <script>alert(1)</script> no internet in Leeds \u202egnirts")
    lee = desk.logged_in("lee")
    bidi = _form(lee, "/incidents", title="Outage \u202eLeeds")
    assert "invisible formatting" in lee.get(bidi.headers["location"]).text
    path = _form(lee, "/incidents", title="<img src=x onerror=alert(1)>", keywords="leeds",
                 status_note="<b>bold</b>").headers["location"]  # fmt: skip
    lee.post(f"{path}/link", data={"csrf_token": csrf_of(lee), "ticket_id": str(ticket)})
    page = lee.get(path).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>bold</b>" not in page and "<script>alert(1)" not in page
    assert "⟦U+202E⟧" in page  # the bidi control in the tweet is shown as a marker
    listing = lee.get("/incidents").text
    assert "<img src=x" not in listing


def test_the_json_api_does_what_the_pages_do_with_the_same_roles(desk: WebDesk) -> None:
    ids = _outage_tickets(desk, 4)
    lee = desk.logged_in("lee")
    headers = {"X-CSRF-Token": csrf_of(lee)}
    assert lee.post("/api/incidents", json={"title": "Outage"}).status_code == 403  # no CSRF token
    made = lee.post("/api/incidents", headers=headers, json={"title": "Fibre outage, Leeds", "keywords": ["leeds"]})
    assert made.status_code == 201, made.text
    incident_id = made.json()["id"]
    suggested = lee.get(f"/api/incidents/{incident_id}/suggestions").json()["suggestions"]
    assert sorted(s["ticket_id"] for s in suggested) == sorted(ids)
    linked = lee.post(f"/api/incidents/{incident_id}/link", headers=headers, json={"ticket_ids": [*ids, 999]})
    assert linked.json()["linked"] == ids and linked.json()["refused"][0]["ticket_id"] == 999
    bad = lee.post(f"/api/incidents/{incident_id}/link", headers=headers, json={"ticket_ids": [0]})
    assert bad.status_code == 422
    check = lee.post(f"/api/incidents/{incident_id}/check", headers=headers,
                     json={"kind": "update", "text": "As per our policy, wait."})  # fmt: skip
    assert check.json()["ok"] is False and {v["code"] for v in check.json()["violations"]} == {"banned_phrase"}
    refused = lee.post(f"/api/incidents/{incident_id}/update", headers=headers, json={"text": "As per usual."})
    assert refused.status_code == 409 and "Avoid the phrase" in refused.json()["error"]["detail"]
    sent = lee.post(f"/api/incidents/{incident_id}/update", headers=headers, json={"text": UPDATE}).json()
    assert len(sent["queued"]) == 4 and len({q["text"] for q in sent["queued"]}) == 4
    edited = lee.post(f"/api/incidents/{incident_id}/edit", headers=headers, json={"status_note": "Fixed."})
    assert edited.json()["status_note"] == "Fixed."
    ann = desk.logged_in("ann")
    shown = ann.get(f"/api/incidents/{incident_id}").json()
    assert [t["id"] for t in shown["tickets"]] == ids and shown["suggestions"] == []
    assert shown["replies"] == {"pending": 4}
    assert ann.get(f"/api/incidents/{incident_id}/suggestions").status_code == 403
    assert ann.post(f"/api/incidents/{incident_id}/resolve", headers={"X-CSRF-Token": csrf_of(ann)},
                    json={"text": UPDATE}).status_code == 403  # fmt: skip
    closing = lee.post(f"/api/incidents/{incident_id}/resolve", headers=headers, json={"text": "All fixed now."})
    assert closing.json()["resolved"] is False  # the updates are not posted yet: the tickets wait
    assert {r["reason"][:40] for r in closing.json()["refused"]} == {"Our last reply in this thread is still b"}
    unlinked = lee.post(f"/api/incidents/{incident_id}/unlink", headers=headers, json={"ticket_ids": [ids[0]]})
    assert unlinked.json() == {"unlinked": [ids[0]]}
    listed = ann.get("/api/incidents").json()["incidents"]
    assert [(i["id"], i["tickets"], i["open_tickets"]) for i in listed] == [(incident_id, 3, 3)]


def test_the_openapi_lists_every_incident_operation_with_a_summary(desk: WebDesk) -> None:
    spec = desk.logged_in("ann").get("/api/openapi.json").json()
    operations = {
        (method.upper(), path): op for path, item in spec["paths"].items() if path.startswith("/api/incidents")
        for method, op in item.items()
    }  # fmt: skip
    assert set(operations) == {
        ("GET", "/api/incidents"), ("POST", "/api/incidents"), ("GET", "/api/incidents/{incident_id}"),
        ("GET", "/api/incidents/{incident_id}/suggestions"), ("POST", "/api/incidents/{incident_id}/edit"),
        ("POST", "/api/incidents/{incident_id}/link"), ("POST", "/api/incidents/{incident_id}/unlink"),
        ("POST", "/api/incidents/{incident_id}/check"), ("POST", "/api/incidents/{incident_id}/update"),
        ("POST", "/api/incidents/{incident_id}/resolve"),
    }  # fmt: skip
    assert all(op.get("summary") and op.get("tags") == ["incidents"] for op in operations.values())
    assert not [path for path in spec["paths"] if path.startswith("/incidents")]  # pages stay out of the API


def test_the_surge_box_starts_an_incident_with_the_words_the_surge_shares(desk: WebDesk) -> None:
    now = datetime.now(UTC)
    for n in range(12):
        desk.escalate(f"@KestrelCare fibre down in LS6 again, no internet ({n})", customer_handle=f"ls6_{n}",
                      customer_id=str(9000 + n))  # fmt: skip
    with transaction(desk.engine) as conn:  # 60 tweets this hour, 5 the hour before: a surge
        for n in range(65):
            at = now - timedelta(minutes=10 if n < 60 else 80)
            tweet_id = str(next(_ids))
            conn.execute(insert(inbound_tweets).values(
                tweet_id=tweet_id, source="mention", author_id=str(100 + n), author_username=f"u{n}",
                text="@KestrelCare fibre down in LS6", conversation_id=tweet_id, created_at=at, fetched_at=at,
                state="done", attempts=1, band="human",
            ))  # fmt: skip
    lee = desk.logged_in("lee")
    lead = lee.get("/lead").text
    assert 'id="surge"' in lead and 'href="/incidents/new?surge=true"' in lead
    form = lee.get("/incidents/new?surge=true").text
    keywords = form.split('name="keywords" id="incident-keywords"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    assert {"fibre", "ls6"} <= set(keywords.split(", ")) and "kestrelcare" not in keywords
    path = _form(lee, "/incidents", title="Fibre outage, LS6", keywords=keywords).headers["location"]
    assert lee.get(path).text.count("data-suggested=") == 12
    assert "Fibre outage, LS6" in lee.get("/lead").text  # the surge box names the open incident


def test_every_control_on_the_incident_pages_has_a_label(desk: WebDesk) -> None:
    ids = _outage_tickets(desk, 2)
    lee = desk.logged_in("lee")
    path = _form(lee, "/incidents", title="Fibre outage, Leeds", keywords="leeds").headers["location"]
    _form(lee, f"{path}/link", ticket_id=[str(ids[0])])  # one linked, one still suggested
    for page_path in ("/incidents", "/incidents/new", path):
        html = lee.get(page_path).text
        assert '<a class="skip-link" href="#main">' in html, page_path
        controls = re.findall(r"<(?:textarea|select|input)\b[^>]*>", html)
        assert controls, page_path
        for match in re.finditer(r"<(?:textarea|select|input)\b[^>]*>", html):
            tag = match.group(0)
            if 'type="hidden"' in tag:
                continue
            before = html[: match.start()]
            inside_label = before.rfind("<label") > before.rfind("</label>")
            control_id = re.search(r'\bid="([^"]+)"', tag)
            labelled = (
                inside_label
                or "aria-label=" in tag
                or (control_id is not None and f'for="{control_id.group(1)}"' in html)
            )
            assert labelled, f"{page_path}: {tag}"
