"""The FAQ editor's JSON API (/api/faq, /api/unanswered) over the real app and HTTP, on SQLite and PostgreSQL:
each operation does what the editor pages do (checked in the knowledge base and through the pages' services),
editors and leads only, CSRF on every POST, revisions against lost updates, and errors as the API's JSON."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from web_support import WebDesk, csrf_of, web_desk

from bot.channel.models import inbound_tweets
from bot.nlu.client import NluResult, parse_response
from bot.nlu.testing import canned_parse
from bot.web.editor import EditorService
from bot.web.unanswered import UnansweredQuestions
from handoff import Escalation, transaction
from knowledge_base.models import entries, entry_versions
from knowledge_base.service import EntryContent

_ids = itertools.count(1_890_000_000_000_000_000)

ESIM = {
    "slug": "esim-setup", "question": "How do I set up an eSIM on my phone?",
    "answer": "Open the Kestrel app, go to SIM and scan the QR code shown there.",
    "paraphrases": ["activate my esim", "esim installation on iphone"], "tags": ["mobile"],
}  # fmt: skip


class ProductQuestions:
    """Stands in for Rasa: every text is a product question, as sure as the NLU gets."""

    def parse(self, text: str) -> NluResult:
        return parse_response(canned_parse(text, "product_question", 0.95), text)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebDesk]:
    """Each test runs on SQLite and, marked `postgres`, on PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with web_desk(tmp_path, postgres_url=url) as desk:
        yield desk


@pytest.fixture
def editor(desk: WebDesk) -> EditorService:
    """The pages' editor service with a stand-in NLU, as the app uses it (the API and the pages share it)."""
    from bot.decision.policy import load_policy
    from bot.decision.tone import ToneGuide
    from bot.desk import LiveAnswerModel

    settings = desk.settings
    answers = LiveAnswerModel(desk.kb.searcher, ["my bill is wrong again", "the engineer never came"])
    service = EditorService(
        lambda: desk.kb, load_policy(settings.training_data_dir / "policy.yml"),
        ToneGuide.load(settings.training_data_dir / "tone.yml"), nlu=ProductQuestions, answers=lambda: answers,
    )  # fmt: skip
    desk.app.state.editor = service
    return service


class Api:
    """A logged-in API client that sends the session's CSRF token with every POST."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = csrf_of(client)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})


@pytest.fixture
def eve(desk: WebDesk, editor: EditorService) -> Api:
    return Api(desk.logged_in("eve"))


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status and error["title"] and error["detail"]
    return error


# ---------------------------------------------------------------- reading


def test_the_list_has_the_pages_filters_and_counts(desk: WebDesk, editor: EditorService, eve: Api) -> None:
    assert eve.post("/api/faq/entries", ESIM).status_code == 201
    revision = eve.get("/api/faq/entries/pay-bill").json()["revision"]
    changed = eve.post("/api/faq/entries/pay-bill", {"revision": revision, "answer": "Pay in the app under Payments."})
    assert changed.status_code == 200
    listed = eve.get("/api/faq/entries").json()
    assert [e["slug"] for e in listed["entries"]] == [e.slug for e in editor.entries()]
    assert listed["total"] == 3 and listed["tags"] == ["billing", "mobile", "router"]
    assert listed["counts"] == {"draft": 1, "published": 2, "archived": 0, "changed": 1}
    for params in ({"q": "QR code"}, {"q": "reset hub"}, {"status": "draft"}, {"status": "published"},
                   {"tag": "billing"}, {"q": "esim", "status": "published"}):  # fmt: skip
        found = [e["slug"] for e in eve.get("/api/faq/entries", **params).json()["entries"]]
        assert found == [e.slug for e in editor.entries(query=params.get("q", ""), status=params.get("status"),
                                                        tag=params.get("tag"))], params  # fmt: skip
    assert [e["slug"] for e in eve.get("/api/faq/entries", q="QR code").json()["entries"]] == ["esim-setup"]
    _error(eve.get("/api/faq/entries", status="lost"), 422)
    _error(eve.get("/api/faq/entries", q="x" * 201), 422)


def test_one_entry_shows_its_working_copy_state_and_revision(desk: WebDesk, eve: Api) -> None:
    entry = eve.get("/api/faq/entries/reset-hub").json()
    live = desk.kb.service.get("reset-hub")
    assert entry["status"] == "published" and entry["live"] and entry["published_version"] == 1
    assert entry["working_copy"]["answer"] == live.content.answer
    assert entry["working_copy"]["paraphrases"] == list(live.content.paraphrases)
    assert len(entry["revision"]) == 20 and entry["updated_at"].endswith("+00:00")
    assert eve.get("/api/faq/entries/reset-hub").json()["revision"] == entry["revision"]  # stable while unchanged
    assert "no-such-entry" in _error(eve.get("/api/faq/entries/no-such-entry"), 404)["detail"]
    _error(eve.get("/api/faq/entries/" + "a" * 101), 422)


# ---------------------------------------------------------------- writing


def _row(desk: WebDesk, slug: str) -> Any:
    with desk.engine.connect() as conn:
        return conn.execute(select(entries).where(entries.c.slug == slug)).one()


def test_create_edit_publish_history_rollback_and_unpublish_as_the_pages_do(
    desk: WebDesk, editor: EditorService, eve: Api
) -> None:  # fmt: skip
    tweet = "@KestrelCare how do I set up an eSIM on my phone?"
    created = eve.post("/api/faq/entries", ESIM)
    assert created.status_code == 201 and created.json()["status"] == "draft"
    row = _row(desk, "esim-setup")
    assert (row.status, row.author, list(row.paraphrases)) == ("draft", "eve", ESIM["paraphrases"])
    assert editor.preview(tweet).faq_slug != "esim-setup"  # a draft is not used by the bot

    edited = eve.post(
        "/api/faq/entries/esim-setup", {"revision": created.json()["revision"], "tags": ["mobile", "esim"]}
    )
    assert edited.status_code == 200 and edited.json()["revision"] != created.json()["revision"]
    assert list(_row(desk, "esim-setup").tags) == ["mobile", "esim"]
    assert _row(desk, "esim-setup").answer == ESIM["answer"]  # fields not sent stay as they were
    nulls = {"revision": edited.json()["revision"], "question": None, "answer": None, "paraphrases": None}
    unchanged = eve.post("/api/faq/entries/esim-setup", nulls)
    assert unchanged.status_code == 200 and unchanged.json()["working_copy"] == edited.json()["working_copy"]
    edited = unchanged

    published = eve.post("/api/faq/entries/esim-setup/publish", {"revision": edited.json()["revision"]})
    assert published.status_code == 200 and published.json()["published_version"] == 1
    assert editor.preview(tweet).faq_slug == "esim-setup"  # the bot answers with it now
    _error(eve.post("/api/faq/entries/esim-setup/publish"), 409)  # nothing new to publish

    revision = published.json()["revision"]
    changed = eve.post("/api/faq/entries/esim-setup", {"revision": revision, "answer": "Scan the QR code in the app."})
    assert changed.json()["has_unpublished_changes"] and changed.json()["published_version"] == 1
    assert desk.kb.service.published([row.id])[row.id].content.answer == ESIM["answer"]  # live until published
    diff = eve.get("/api/faq/entries/esim-setup/diff", old=1).json()["lines"]
    assert any(line["kind"] == "add" and "Scan the QR code in the app." in line["text"] for line in diff)
    assert any(line["kind"] == "remove" and ESIM["answer"] in line["text"] for line in diff)
    eve.post("/api/faq/entries/esim-setup/publish")
    history = eve.get("/api/faq/entries/esim-setup/history").json()["versions"]
    assert [(v["version"], v["note"], v["live"], v["author"]) for v in history] == [
        (1, "published", False, "eve"), (2, "published", True, "eve"),
    ]  # fmt: skip
    assert history[0]["content"]["answer"] == ESIM["answer"]

    rolled = eve.post("/api/faq/entries/esim-setup/rollback", {"version": 1})
    assert rolled.status_code == 200 and rolled.json()["published_version"] == 3
    assert [v.note for v in editor.history("esim-setup")][-1] == "rollback to version 1"
    assert desk.kb.service.published([row.id])[row.id].content.answer == ESIM["answer"]
    assert "no version 9" in _error(eve.post("/api/faq/entries/esim-setup/rollback", {"version": 9}), 404)["detail"]
    assert "live already" in _error(eve.post("/api/faq/entries/esim-setup/rollback", {"version": 3}), 409)["detail"]

    gone = eve.post("/api/faq/entries/esim-setup/unpublish")
    assert gone.status_code == 200 and gone.json()["status"] == _row(desk, "esim-setup").status == "archived"
    assert editor.preview(tweet).faq_slug != "esim-setup"
    assert "not published" in _error(eve.post("/api/faq/entries/esim-setup/unpublish"), 409)["detail"]
    with desk.engine.connect() as conn:
        versions = conn.execute(select(entry_versions.c.version).where(entry_versions.c.entry_id == row.id)).all()
    assert len(versions) == 3  # the history stays


def test_a_stale_revision_is_refused_and_nothing_is_overwritten(desk: WebDesk, eve: Api) -> None:
    read = eve.get("/api/faq/entries/pay-bill").json()["revision"]
    other = Api(desk.logged_in("lee"))  # a lead edits FAQ entries too
    first = other.post("/api/faq/entries/pay-bill", {"revision": read, "answer": "Pay in the app under Payments."})
    assert first.status_code == 200 and first.json()["author"] == "lee"
    stale = eve.post("/api/faq/entries/pay-bill", {"revision": read, "answer": "Pay at the post office."})
    error = _error(stale, 409)
    assert error["revision"] == first.json()["revision"] and "lee" in error["detail"]
    assert error["entry"]["working_copy"]["answer"] == "Pay in the app under Payments."
    assert _row(desk, "pay-bill").answer == "Pay in the app under Payments."
    _error(eve.post("/api/faq/entries/pay-bill/publish", {"revision": read}), 409)
    _error(eve.post("/api/faq/entries/pay-bill/rollback", {"version": 1, "revision": read}), 409)
    assert desk.kb.service.get("pay-bill").published_version == 1  # neither published nor rolled back
    again = eve.post("/api/faq/entries/pay-bill", {"revision": error["revision"], "answer": "Pay at the post office."})
    assert again.status_code == 200 and _row(desk, "pay-bill").answer == "Pay at the post office."


def test_an_entry_that_breaks_the_rules_is_refused_with_every_rule(desk: WebDesk, eve: Api) -> None:
    error = _error(eve.post("/api/faq/entries", {"slug": "Bad Slug", "question": "", "answer": "x"}), 422)
    assert len(error["problems"]) == 2 and "slug" in error["problems"][0]["message"]
    hidden = _error(eve.post("/api/faq/entries", {**ESIM, "question": "How do I pay\u202e my bill?"}), 422)
    assert any("U+202E" in p["message"] for p in hidden["problems"])
    again = _error(eve.post("/api/faq/entries", {**ESIM, "slug": "reset-hub"}), 422)
    assert any("exists already" in p["message"] for p in again["problems"])
    revision = eve.get("/api/faq/entries/reset-hub").json()["revision"]
    long_answer = _error(eve.post("/api/faq/entries/reset-hub", {"revision": revision, "answer": "word " * 60}), 422)
    assert any("280" in p["message"] for p in long_answer["problems"])
    assert _row(desk, "reset-hub").answer.startswith("Hold the reset button")
    with desk.engine.connect() as conn:
        slugs = conn.execute(select(entries.c.slug).order_by(entries.c.slug)).scalars().all()
    assert slugs == ["pay-bill", "reset-hub"]


def test_bad_bodies_are_invalid_input(desk: WebDesk, eve: Api) -> None:
    revision = eve.get("/api/faq/entries/reset-hub").json()["revision"]
    for path, body in (
        ("/api/faq/entries", {"slug": 3}),
        ("/api/faq/entries", {**ESIM, "answer": "x" * 4001}),
        ("/api/faq/entries", {**ESIM, "paraphrases": "one per line"}),
        ("/api/faq/entries", {**ESIM, "tags": ["t"] * 51}),
        ("/api/faq/entries/reset-hub", {"answer": "no revision"}),
        ("/api/faq/entries/reset-hub", {"revision": revision, "question": None, "tags": [1]}),
        ("/api/faq/entries/reset-hub/rollback", {"version": 0}),
        ("/api/faq/entries/reset-hub/rollback", {"version": 2**63}),
        ("/api/faq/preview", {"text": ""}),
        ("/api/faq/preview", {"text": "x" * 2001}),
        ("/api/faq/check", {"question": ["not", "text"]}),
        ("/api/unanswered/12ab/draft", {}),
    ):
        error = _error(eve.post(path, body), 422)
        assert error["problems"], (path, body)
    assert _row(desk, "reset-hub").answer.startswith("Hold the reset button")
    not_json = eve.client.post(
        "/api/faq/entries", content=b"{not json", headers={"X-CSRF-Token": eve.csrf, "content-type": "application/json"}
    )
    _error(not_json, 422)


# ---------------------------------------------------------------- previews and checks


def test_the_preview_says_what_the_bot_would_reply_and_its_tone(desk: WebDesk, editor: EditorService, eve: Api) -> None:
    eve.post("/api/faq/entries", ESIM)
    tweet = "@KestrelCare how do I set up an eSIM on my phone?"
    draft = eve.post("/api/faq/entries/esim-setup/preview", {"text": tweet}).json()
    assert draft["band"] == "auto" and draft["answers_with_draft"] and draft["faq_slug"] == "esim-setup"
    assert ESIM["answer"] in draft["reply"] and draft["reply"].endswith("^bot") and draft["tone"] == []
    assert draft["hits"][0] == {**draft["hits"][0], "slug": "esim-setup", "is_draft": True}
    expected = editor.preview(tweet, draft="esim-setup")
    assert (draft["reply"], draft["reasons"], draft["reply_status"]) == (expected.reply, expected.reasons,
                                                                        expected.reply_status)  # fmt: skip
    live = eve.post("/api/faq/preview", {"text": tweet}).json()
    assert live["faq_slug"] != "esim-setup" and not live["answers_with_draft"]
    assert "Type a tweet" in _error(eve.post("/api/faq/preview", {"text": "   "}), 422)["detail"]
    _error(eve.post("/api/faq/entries/no-such-entry/preview", {"text": tweet}), 404)


def test_the_live_check_is_the_pages(desk: WebDesk, editor: EditorService, eve: Api) -> None:
    body = {"slug": "hub-reset-again", "question": "How do I reset my Hub 4 router?", "answer": "word " * 60}
    found = eve.post("/api/faq/check", body)
    assert found.status_code == 200
    content = EntryContent(slug=body["slug"], question=body["question"], answer=body["answer"])
    assert found.json() == editor.check(content).to_dict()
    assert found.json()["near"][0]["slug"] == "reset-hub" and not found.json()["ok"]
    rude = eve.post("/api/faq/check", {**ESIM, "answer": "WHY WOULD YOU EVEN ASK THAT, IT IS OBVIOUS!!!"}).json()
    assert rude["tone"] and rude["reply"].endswith("^bot")
    good = eve.post("/api/faq/check", ESIM).json()
    assert good["ok"] and good["problems"] == [] and good["tone"] == []


# ---------------------------------------------------------------- unanswered questions


def _stored_tweet(desk: WebDesk, text: str, *, reply: str | None = None) -> str:
    """An escalated tweet no FAQ entry was close to, as the worker stores it, with its ticket (and an agent's reply)."""
    tweet_id = str(next(_ids))
    now = datetime.now(UTC)
    with transaction(desk.engine) as conn:
        ticket_id = desk.handoff.escalate(conn, Escalation(
            conversation_id=tweet_id, tweet_id=tweet_id, customer_id=tweet_id[-6:], customer_handle="cust",
            text=text, created_at=now, source="mention", band="human", reasons=["no FAQ answer is close"],
            priority=3, skill="general", intent="product_question",
        ))  # fmt: skip
        conn.execute(insert(inbound_tweets).values(
            tweet_id=tweet_id, source="mention", author_id=tweet_id[-6:], author_username="cust", text=text,
            conversation_id=tweet_id, created_at=now, fetched_at=now, state="done", attempts=1, band="human",
            decision={"faq_hits": [], "faq_top_score": 0.2, "decision": {"band": "human"}}, ticket_id=ticket_id,
            triaged_at=now,
        ))  # fmt: skip
        if reply:
            desk.handoff.record_outbound(conn, ticket_id, author="AB", text=reply, outbox_id=None, kind="agent_reply")
    return tweet_id


ROAMING = ("@KestrelCare roaming charges in spain per day?", "roaming charges in spain per day please",
           "@KestrelCare what are the roaming charges in spain per day")  # fmt: skip
DEBIT = ("@KestrelCare change direct debit date to the 15th", "can I change my direct debit date to the 15th")


def _finder(desk: WebDesk) -> UnansweredQuestions:
    finder: UnansweredQuestions = desk.app.state.unanswered
    return finder


def test_unanswered_groups_are_the_pages_and_a_group_starts_a_draft(desk: WebDesk, eve: Api) -> None:
    for text in ROAMING:
        _stored_tweet(desk, text)
    _stored_tweet(desk, DEBIT[0], reply="You can move it in the app under Billing > Direct Debit. ^AB")
    _stored_tweet(desk, DEBIT[1] + " my number is 07700 900123")
    listed = eve.get("/api/unanswered").json()
    groups = _finder(desk).groups()
    assert (listed["group_count"], listed["total"]) == (2, 5)
    assert [(g["size"], g["question"], g["paraphrases"], g["answer"], g["draft_link"]) for g in listed["groups"]] == [
        (g.size, g.question, g.paraphrases, g.answer, g.draft_link) for g in groups
    ]
    assert all("07700" not in tweet["text"] for g in listed["groups"] for tweet in g["tweets"])  # redacted
    roaming, debit = listed["groups"]
    assert roaming["key"] == groups[0].tweets[0].tweet_id
    assert [(r["author"], r["text"]) for r in debit["replies"]] == [
        ("AB", "You can move it in the app under Billing > Direct Debit. ^AB")
    ]

    started = eve.post(f"/api/unanswered/{debit['key']}/draft")
    assert started.status_code == 201, started.text
    entry = desk.kb.service.get(started.json()["slug"])
    assert entry.status == "draft" and entry.author == "eve"
    assert entry.content.question == debit["question"] and entry.content.answer == debit["answer"]
    assert list(entry.content.paraphrases) == debit["paraphrases"]

    # Nobody answered the roaming tweets yet: the draft needs an answer, and says so.
    refused = _error(eve.post(f"/api/unanswered/{roaming['key']}/draft"), 422)
    assert any("answer is empty" in p["message"] for p in refused["problems"])
    written = eve.post(
        f"/api/unanswered/{roaming['key']}/draft",
        {"slug": "roaming-spain", "tags": ["roaming"], "answer": "Roaming in Spain costs £2.50 a day."},
    )
    assert written.status_code == 201 and written.json()["working_copy"]["tags"] == ["roaming"]
    assert desk.kb.service.get("roaming-spain").content.question == roaming["question"]
    _error(eve.post("/api/unanswered/1/draft"), 404)


def test_training_examples_as_json_are_the_exports(desk: WebDesk, eve: Api) -> None:
    examples = eve.get("/api/faq/training-examples").json()["examples"]
    assert examples == [e.__dict__ for e in _finder(desk).training_examples()]


# ---------------------------------------------------------------- who may call it


def test_only_editors_and_leads_with_the_csrf_token_may_change_the_faq(desk: WebDesk, eve: Api) -> None:
    revision = eve.get("/api/faq/entries/reset-hub").json()["revision"]
    agent = Api(desk.logged_in("ann"))
    for method, path, body in (("GET", "/api/faq/entries", None), ("GET", "/api/unanswered", None),
                               ("POST", "/api/faq/entries", ESIM),
                               ("POST", "/api/faq/entries/reset-hub", {"revision": revision, "answer": "ok."}),
                               ("POST", "/api/faq/entries/reset-hub/unpublish", None)):  # fmt: skip
        refused = agent.get(path) if method == "GET" else agent.post(path, body)
        assert "role" in _error(refused, 403)["detail"], path
        assert desk.client().request(method, path, json=body).status_code == 401
        if method == "POST":
            for headers in ({}, {"X-CSRF-Token": "forged"}):
                forged = eve.client.post(path, json=body, headers=headers)
                assert _error(forged, 403)["title"] == "Form out of date"
    assert _row(desk, "reset-hub").status == "published" and _row(desk, "reset-hub").author == "editor"
    lead = Api(desk.logged_in("lee"))
    assert lead.post("/api/faq/entries", ESIM).status_code == 201


def test_the_openapi_lists_the_editors_operations_with_summaries(desk: WebDesk, eve: Api) -> None:
    paths = eve.get("/api/openapi.json").json()["paths"]
    wanted = {
        ("get", "/api/faq/entries"), ("post", "/api/faq/entries"), ("get", "/api/faq/entries/{slug}"),
        ("post", "/api/faq/entries/{slug}"), ("post", "/api/faq/entries/{slug}/publish"),
        ("post", "/api/faq/entries/{slug}/unpublish"), ("post", "/api/faq/entries/{slug}/rollback"),
        ("get", "/api/faq/entries/{slug}/history"), ("get", "/api/faq/entries/{slug}/diff"),
        ("post", "/api/faq/entries/{slug}/preview"), ("post", "/api/faq/preview"), ("post", "/api/faq/check"),
        ("get", "/api/unanswered"), ("post", "/api/unanswered/{key}/draft"), ("get", "/api/faq/training-examples"),
    }  # fmt: skip
    for method, path in wanted:
        operation = paths[path][method]
        assert operation["summary"] and operation["tags"] == ["FAQ editor"], (method, path)
        assert {"403", "404", "409", "422"} <= set(operation["responses"]), (method, path)
    assert paths["/api/faq/entries/{slug}"]["post"]["requestBody"]["content"]["application/json"]
    docs = eve.client.get("/api/docs").text
    assert "/api/faq/entries/{slug}/rollback" in docs and "/api/unanswered" in docs
