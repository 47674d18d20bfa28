"""The FAQ learns from agents' approved drafts, on SQLite and PostgreSQL: customers' tweets whose draft an agent
approved (unchanged or edited) or whose suggestion was sent are proposed as paraphrases of that entry, without
mentions, links or personal data, without what the entry says already; one click adds a proposal to the entry's
working copy (live only once published) or dismisses it (remembered, audited); editors and leads only, with the
CSRF token, in the pages and the JSON API."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from web_support import WebDesk, csrf_of, web_desk

from bot.learning import label_store
from bot.web.editor import NEAR_DUPLICATE
from bot.web.editor_pages import proposals_of
from bot.web.proposals import ParaphraseProposals, Proposal, candidate_text
from handoff.labels import LabelledDecision
from handoff.models import audit_events

_tweets = itertools.count(1_990_000_000_000_000_000)

STUCK = "@KestrelCare my hub is stuck on a red light all evening, how do I reset it? https://t.co/abc123"
STUCK_TEXT = "my hub is stuck on a red light all evening, how do I reset it?"
BOX = "what is the way to restart the broadband box"
REJECTED = "the box lights are flashing green since the storm"
PHONE = "please ring me on 07700 900123 about the hub reset"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


def _entry_id(desk: WebDesk, slug: str) -> int:
    return int(desk.kb.service.get(slug).id)


def label(desk: WebDesk, kind: str, text: str, slug: str, *, actor: str = "ann") -> None:
    """A label as the console stores it when an agent acts on a draft or suggestion for entry `slug`."""
    decision = LabelledDecision(text=text, tweet_id=str(next(_tweets)), faq_entry_id=_entry_id(desk, slug), score=0.8,
                                kind="product_question")  # fmt: skip
    with desk.engine.begin() as conn:
        label_store(desk.engine).record(
            conn, kind, decision, actor=actor, edit_distance=4 if kind == "edited" else None
        )


def _proposals(desk: WebDesk, slug: str | None = None) -> list[Proposal]:
    return _service(desk).proposals(slug)


def _service(desk: WebDesk) -> ParaphraseProposals:
    return ParaphraseProposals(desk.engine, desk.app.state.editor)


def _audited(desk: WebDesk, action: str) -> list[Any]:
    with desk.engine.connect() as conn:
        return conn.execute(select(audit_events).where(audit_events.c.action == action)).all()


def _labelled_day(desk: WebDesk) -> None:
    label(desk, "approved", STUCK, "reset-hub")
    label(desk, "edited", STUCK.replace("@KestrelCare ", "@kestrel_help "), "reset-hub", actor="bob")
    label(desk, "suggestion_sent", BOX, "reset-hub")
    label(desk, "rejected", REJECTED, "reset-hub")
    label(desk, "own_reply", "my router wont turn on at all since monday", "reset-hub")
    label(desk, "approved", PHONE, "reset-hub")
    label(desk, "approved", "reset pls", "reset-hub")  # too short
    label(desk, "approved", "How do I reset my Hub 4 router??", "reset-hub")  # the entry's own question
    label(desk, "approved", "hub 4 factory reset please", "reset-hub")  # a near-duplicate of a paraphrase


# ---------------------------------------------------------------- gathering


def test_approved_edited_and_sent_tweets_are_proposed_and_the_rest_left_out(desk: WebDesk) -> None:
    _labelled_day(desk)
    found = _proposals(desk)
    assert [p.text for p in found] == [STUCK_TEXT, BOX]
    stuck, box = found
    assert stuck.slug == box.slug == "reset-hub" and stuck.entry_id == _entry_id(desk, "reset-hub")
    assert stuck.approvals == 2 and stuck.by_label == {"approved": 1, "edited": 1}
    assert box.approvals == 1 and box.by_label == {"suggestion_sent": 1}
    assert "@" not in stuck.example and "http" not in stuck.example and "red light" in stuck.example
    assert all("07700" not in p.text and "07700" not in p.example for p in found)
    assert all(p.similarity < NEAR_DUPLICATE for p in found)
    assert _proposals(desk, "pay-bill") == [] and [p.text for p in _proposals(desk, "reset-hub")] == [STUCK_TEXT, BOX]


def test_personal_data_too_short_and_near_duplicates_are_not_paraphrases() -> None:
    assert candidate_text(PHONE) is None
    assert candidate_text("I'm Maya Khan, email maya.khan@example.com how do I reset my hub") is None
    assert candidate_text("reset pls") is None
    assert candidate_text("@KestrelCare  how do I   reset my hub https://t.co/x") == "how do I reset my hub"


def test_a_near_duplicate_of_a_better_supported_proposal_counts_once(desk: WebDesk) -> None:
    for _ in range(2):
        label(desk, "approved", "my hub is stuck on a red light all evening, how do I reset it", "reset-hub")
    label(desk, "approved", "my hub is stuck on a red light all evening how can I reset it", "reset-hub")
    found = _proposals(desk)
    assert len(found) == 1 and found[0].approvals == 2


def test_a_tweet_closer_to_another_entry_is_flagged_with_it(desk: WebDesk) -> None:
    label(desk, "approved", "can I pay my hub bill online", "reset-hub")
    label(desk, "approved", STUCK, "reset-hub")
    found = {p.text: p for p in _proposals(desk)}
    flagged = found["can I pay my hub bill online"]
    assert flagged.closer_to is not None and flagged.closer_to[0] == "pay-bill"
    assert flagged.closer_to[1] > flagged.similarity
    assert found[STUCK_TEXT].closer_to is None


# ---------------------------------------------------------------- one click: add, dismiss


def test_adding_a_proposal_puts_it_in_the_draft_and_only_publishing_makes_it_live(desk: WebDesk) -> None:
    _labelled_day(desk)
    before = desk.kb.service.get("reset-hub")
    client = desk.logged_in("eve")
    csrf = csrf_of(client)
    page = client.get("/faq/proposals")
    assert page.status_code == 200 and STUCK_TEXT in page.text and "Add to draft" in page.text
    assert '<td class="num">2</td>' in page.text and "approved after an edit" in page.text
    assert "Proposed paraphrases (2)" in client.get("/faq/entries/reset-hub").text
    stuck = _proposals(desk)[0]
    added = client.post("/faq/proposals/reset-hub/add", data={"csrf_token": csrf, "key": stuck.key})
    assert added.status_code == 303 and added.headers["location"] == "/faq/entries/reset-hub"
    entry = desk.kb.service.get("reset-hub")
    assert entry.content.paraphrases == (*before.content.paraphrases, STUCK_TEXT)
    assert entry.has_unpublished_changes and entry.published_version == before.published_version
    assert entry.author == "eve"
    live = desk.kb.service.published([entry.id])[entry.id].content
    assert STUCK_TEXT not in live.paraphrases
    assert [p.text for p in _proposals(desk)] == [BOX]  # the working copy says it now
    assert "Proposed paraphrases (1)" in client.get("/faq/entries/reset-hub").text
    assert [row.details["text"] for row in _audited(desk, "paraphrase_added")] == [STUCK_TEXT]
    assert _audited(desk, "paraphrase_added")[0].actor == "eve"
    again = client.post("/faq/proposals/reset-hub/add", data={"csrf_token": csrf, "key": stuck.key})
    assert again.status_code == 303 and "no longer proposed" in client.get(again.headers["location"]).text
    assert desk.kb.service.get("reset-hub").content.paraphrases.count(STUCK_TEXT) == 1
    published = client.post("/faq/entries/reset-hub/publish", data={"csrf_token": csrf})
    assert published.status_code == 303
    after = desk.kb.service.get("reset-hub")
    assert after.published_version == (before.published_version or 0) + 1
    assert STUCK_TEXT in desk.kb.service.published([entry.id])[entry.id].content.paraphrases


def test_a_dismissed_proposal_is_remembered_and_audited(desk: WebDesk) -> None:
    _labelled_day(desk)
    client = desk.logged_in("lee")
    csrf = csrf_of(client)
    box = next(p for p in _proposals(desk) if p.text == BOX)
    done = client.post("/faq/proposals/reset-hub/dismiss", data={"csrf_token": csrf, "key": box.key,
                                                                 "back": "reset-hub"})  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/faq/proposals?entry=reset-hub"
    assert [p.text for p in _proposals(desk)] == [STUCK_TEXT]
    label(desk, "approved", BOX, "reset-hub")  # more evidence later: still dismissed
    assert [p.text for p in _proposals(desk)] == [STUCK_TEXT]
    rows = _audited(desk, "paraphrase_dismissed")
    assert len(rows) == 1 and rows[0].actor == "lee" and rows[0].details["text"] == BOX
    assert BOX not in desk.kb.service.get("reset-hub").content.paraphrases
    page = client.get("/faq/proposals?entry=reset-hub")
    assert page.status_code == 200 and BOX not in page.text and STUCK_TEXT in page.text


def test_only_editors_and_leads_with_the_csrf_token_see_add_or_dismiss_proposals(desk: WebDesk) -> None:
    _labelled_day(desk)
    stuck = _proposals(desk)[0]
    agent = desk.logged_in("ann")
    agent_csrf = csrf_of(agent)
    assert agent.get("/faq/proposals").status_code == 403
    assert agent.get("/api/faq/proposals").status_code == 403
    for action in ("add", "dismiss"):
        path = f"/faq/proposals/reset-hub/{action}"
        assert agent.post(path, data={"csrf_token": agent_csrf, "key": stuck.key}).status_code == 403
        refused = agent.post(f"/api{path}", json={"key": stuck.key}, headers={"X-CSRF-Token": agent_csrf})
        assert refused.status_code == 403 and "role" in refused.json()["error"]["detail"]
        assert desk.client().post(f"/api{path}", json={"key": stuck.key}).status_code == 401
    eve = desk.logged_in("eve")
    for action in ("add", "dismiss"):
        path = f"/faq/proposals/reset-hub/{action}"
        assert eve.post(path, data={"csrf_token": "forged", "key": stuck.key}).status_code == 403
        assert eve.post(path, data={"key": stuck.key}).status_code == 403
        forged = eve.post(f"/api{path}", json={"key": stuck.key}, headers={"X-CSRF-Token": "forged"})
        assert forged.status_code == 403 and forged.json()["error"]["title"] == "Form out of date"
    assert [p.text for p in _proposals(desk)] == [STUCK_TEXT, BOX]
    assert _audited(desk, "paraphrase_dismissed") == [] and _audited(desk, "paraphrase_added") == []
    assert STUCK_TEXT not in desk.kb.service.get("reset-hub").content.paraphrases


def test_the_api_lists_adds_and_dismisses_proposals(desk: WebDesk) -> None:
    _labelled_day(desk)
    client = desk.logged_in("eve")
    headers = {"X-CSRF-Token": csrf_of(client)}
    listed = client.get("/api/faq/proposals")
    assert listed.status_code == 200
    proposals = listed.json()["proposals"]
    assert [p["text"] for p in proposals] == [STUCK_TEXT, BOX]
    assert proposals[0]["approvals"] == 2 and proposals[0]["by_label"] == {"approved": 1, "edited": 1}
    assert client.get("/api/faq/proposals", params={"entry": "pay-bill"}).json() == {"proposals": []}
    assert client.get("/api/faq/proposals", params={"entry": "no-such"}).status_code == 404
    added = client.post("/api/faq/proposals/reset-hub/add", json={"key": proposals[0]["key"]}, headers=headers)
    assert added.status_code == 200, added.text
    assert STUCK_TEXT in added.json()["working_copy"]["paraphrases"] and added.json()["has_unpublished_changes"]
    dismissed = client.post("/api/faq/proposals/reset-hub/dismiss", json={"key": proposals[1]["key"]},
                            headers=headers)  # fmt: skip
    assert dismissed.status_code == 200 and dismissed.json()["dismissed"]["text"] == BOX
    gone = client.post("/api/faq/proposals/reset-hub/dismiss", json={"key": proposals[1]["key"]}, headers=headers)
    assert gone.status_code == 404
    assert client.get("/api/faq/proposals").json() == {"proposals": []}
    paths = client.get("/api/openapi.json").json()["paths"]
    for method, path in (("get", "/api/faq/proposals"), ("post", "/api/faq/proposals/{slug}/add"),
                         ("post", "/api/faq/proposals/{slug}/dismiss")):  # fmt: skip
        operation = paths[path][method]
        assert operation["summary"] and operation["tags"] == ["FAQ editor"], (method, path)


def test_the_app_builds_one_proposals_service_over_its_editor(desk: WebDesk) -> None:
    class Request:
        app = desk.app

    first = proposals_of(Request())  # type: ignore[arg-type]
    assert first is proposals_of(Request()) and first.editor is desk.app.state.editor  # type: ignore[arg-type]


def test_customer_text_on_the_page_is_escaped_and_embeddings_are_kept_between_views(desk: WebDesk) -> None:
    label(desk, "approved", "<script>alert(1)</script> my hub is stuck on a red light, reset it?", "reset-hub")
    client = desk.logged_in("eve")
    page = client.get("/faq/proposals")
    assert page.status_code == 200 and "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    embedder = desk.kb.searcher.embedder
    before = embedder.texts_embedded
    assert client.get("/faq/proposals?entry=reset-hub").status_code == 200
    assert embedder.texts_embedded == before
