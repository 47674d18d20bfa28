"""A training session beside a live desk: the real worker, sandbox X and web app as child processes, the session's
real Rasa, the live desk's FAQ copied. A scenario runs, two trainees answer through the training desk's HTTP API,
the scorecard shows them; the live sandbox X and the live database are byte for byte as before."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from bot.channel.models import inbound_tweets
from bot.db import make_engine, upgrade
from bot.sandbox.testing import running_sandbox
from bot.settings import Settings
from bot.training.scorecard import build_scorecard
from bot.training.session import POSTED_FILE, REFERENCES_FILE, run_session
from knowledge_base.service import EntryContent, EntryRecord, KnowledgeBaseService
from knowledge_base.testing import FakeEmbedder

LIVE_FAQ = [
    EntryContent("lost-stolen-phone", "How do I report a lost or stolen phone?",
                 "Report it in the Kestrel app under Lost phone: we block the SIM at once and send a free "
                 "replacement.", ("my phone was stolen",), ("mobile",)),
    EntryContent("pay-bill", "How can I pay my bill?", "Pay by card or direct debit in the Kestrel app under Billing.",
                 ("ways to pay my bill",), ("billing",)),
]  # fmt: skip
SCENARIO = [
    {"at": 0, "key": "s1", "user": "jen_w_leeds", "text": "@KestrelCare my phone got nicked, my number is "
     "07700 900123, what do I do?", "reference": {"faq": "lost-stolen-phone"}},
    {"at": 0.5, "key": "s2", "user": "petek84", "text": "@KestrelCare your chat bot hung up on me twice. is anyone "
     "actually working there", "reference": {"reply": "Sorry about that, I'm here now: what do you need?"}},
    # jen again, in her thread: the bot has asked her to move to DM under her first tweet, which takes no second
    # reply of ours (X's reply restriction), so the trainee's answer goes under this one.
    {"at": 1.0, "key": "s3", "user": "jen_w_leeds", "text": "@KestrelCare I'd rather sort it here, how do I block "
     "the SIM?", "reply_to": "s1"},
]  # fmt: skip


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


def _log_in(url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30.0)
    page = client.get("/login")
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    client.post("/login", data={"username": username, "password": password, "login_token": token})
    client.headers["x-csrf-token"] = client.get("/api/me").json()["csrf_token"]
    return client


def _wait(what: str, check: Any, timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_training_session_leaves_the_live_desk_untouched(
    tmp_path: Path, rasa_server: Any, rasa_settings: Settings
) -> None:
    live_store = tmp_path / "live" / "sandbox-x.db"
    live_store.parent.mkdir()
    with running_sandbox(live_store) as live_sandbox:
        live = Settings(data_dir=tmp_path / "live", nlu_token="live-token", sandbox_port=live_sandbox.port)
        upgrade(live.effective_database_url)
        engine = make_engine(live.effective_database_url)
        KnowledgeBaseService(sessionmaker(engine), FakeEmbedder()).import_entries(
            [EntryRecord(content) for content in LIVE_FAQ], author="editor"
        )
        engine.dispose()
        scenario = tmp_path / "phone.jsonl"
        scenario.write_text("".join(json.dumps(line) + "\n" for line in SCENARIO), "utf-8")
        live_db = Path(live.effective_database_url.removeprefix("sqlite:///"))
        before = _dump(live_db), _dump(live_store)

        nlu = (rasa_server.url, rasa_settings.effective_nlu_token)
        with run_session(live, scenario, speed=20.0, trainees=["ann", "raj"], nlu=nlu) as session:
            folder, web = session.directory, session.info.web_url
            assert folder.parent == live.data_dir / "training"
            session_db = make_engine(session.settings.effective_database_url)
            try:
                def triaged() -> bool:
                    with session_db.connect() as conn:
                        done = select(func.count()).where(inbound_tweets.c.state == "done")
                        return conn.execute(done).scalar_one() == len(SCENARIO)

                _wait("the worker to triage the scenario", triaged)
            finally:
                session_db.dispose()
            assert "TRAINING" in httpx.get(f"{web}/login").text
            ann, raj = (_log_in(web, name, session.passwords[name]) for name in ("ann", "raj"))
            taken = {name: _wait(f"a ticket for {name}", lambda c=client: c.post("/api/queue/take-next").json()
                                 ["ticket_id"]) for name, client in (("ann", ann), ("raj", raj))}  # fmt: skip
            tickets = {name: client.get(f"/api/tickets/{taken[name]}").json() for name, client in
                       (("ann", ann), ("raj", raj))}  # fmt: skip
            phone_holder = next(n for n, t in tickets.items() if "07700" in json.dumps(t))
            other = "raj" if phone_holder == "ann" else "ann"
            holder, helper = (ann, raj) if phone_holder == "ann" else (raj, ann)
            refused = holder.post(f"/api/tickets/{taken[phone_holder]}/reply",
                                  json={"text": "Is 07700 900123 your number?", "channel": "public"})  # fmt: skip
            assert refused.status_code >= 400 and "Not sent" in refused.text
            sent = holder.post(f"/api/tickets/{taken[phone_holder]}/reply", json={
                "text": "So sorry. Report it in the Kestrel app under Lost phone: we block the SIM at once and "
                        "send a free replacement.", "channel": "public"})  # fmt: skip
            assert sent.status_code == 200, sent.text
            assert helper.post(f"/api/tickets/{taken[other]}/reply",
                               json={"text": "Sorry about that, I'm here now. What can I do?"}).status_code == 200
            for client in (ann, raj):
                client.close()
            _wait("the worker's sender to post the reply on the training sandbox X", lambda: any(
                "Report it in the Kestrel app" in line for line in _dump(folder / "sandbox-x.db")))  # fmt: skip

        after = _dump(live_db), _dump(live_store)
        assert after == before, "the live database or the live sandbox X changed"

    references = json.loads((folder / REFERENCES_FILE).read_text())
    posted = json.loads((folder / POSTED_FILE).read_text())
    engine = make_engine(f"sqlite:///{folder / 'carebot.db'}")
    try:
        card = build_scorecard(engine, session="t", sla_minutes=60, trainees=["ann", "raj"], references=references,
                               posted=posted)  # fmt: skip
    finally:
        engine.dispose()
    scores = {score.username: score for score in card.trainees}
    assert scores[phone_holder].tone_refusals["personal_data"] == 1
    assert scores[phone_holder].personal_data_attempts == 1 and scores[phone_holder].personal_data_echoed == 0
    assert [(c.used_faq, c.right_faq) for c in scores[phone_holder].checks] == [("lost-stolen-phone", True)]
    assert scores[other].tickets_answered == 1 and scores[other].within_sla == 1
    assert scores[other].checks[0].reference_similarity is not None
    assert not (live.data_dir / "training" / "current").exists()
