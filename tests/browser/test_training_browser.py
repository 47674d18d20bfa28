"""Training mode in a real browser, with the real components of a session: a lead on the live desk starts the
outage-storm scenario from /lead/training (the very `carebot training start`, in the background: its own sandbox X,
the real worker with the real Rasa and embedding model, its own web app); two trainees log in to the training desk,
one echoes the customer's phone number in public (refused, and counted) and answers an angry customer, the other
sends the FAQ suggestion that the scenario's reference names; the scorecard shows both; the lead reviews both
replies from the page, and stops the session. Screenshots in /tmp/shots/training-*.png.

That the live database and the live sandbox X stay byte for byte as they were is tests/integration/
test_training_isolation.py; here the live desk is only checked to have no customer traffic of the session."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from browser_support import PageProblems, Served, log_in
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select
from unit.web_support import web_desk

from bot.channel.models import inbound_tweets, outbox
from bot.settings import PROJECT_ROOT
from bot.training import desk as training
from handoff.models import tickets
from knowledge_base.io import read_file

SHOTS = Path("/tmp/shots")
SCENARIO = PROJECT_ROOT / "training_data" / "scenarios" / "outage_storm.jsonl"
PHONE = "07700 900461"  # in priya_leeds's tweet (scenario line o05); the queue's preview shows it redacted
# Tweets of the scenario that open a thread of their own (the queue shows a ticket's latest message, and the
# scorecard checks a ticket against its first tweet's reference) and whose reference names an FAQ entry.
WITH_FAQ = {"outage in roundhay": "service-status-page", "whole street down": "during-an-outage"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, rasa_server: Any, rasa_settings: Any) -> Iterator[Served]:
    """The live desk's web app (lead lee) with the project's FAQ published, its NLU the tests' real Rasa: the
    session started from the page uses that Rasa rather than training one of its own."""
    with web_desk(tmp_path) as desk:
        desk.kb.service.import_entries(read_file(PROJECT_ROOT / "training_data" / "faq.yml"), author="editor",
                                       check_duplicates=False)  # fmt: skip
        desk.settings = desk.services.settings = desk.settings.model_copy(
            update={"nlu_url": rasa_server.url, "nlu_token": rasa_settings.effective_nlu_token}
        )
        port = _free_port()
        config = uvicorn.Config(desk.app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        try:
            yield Served(desk, f"http://127.0.0.1:{port}")
        finally:
            if training.active(desk.settings) is not None:
                training.stop(desk.settings)
            server.should_exit = True
            thread.join(timeout=10)


def _watched(browser: Browser, problems: PageProblems) -> Page:
    """A trainee's own browser: dialogs and script errors fail the test, as on the lead's page."""
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: (problems.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: problems.errors.append(f"page error: {error}"))
    return page


def _answers() -> dict[str, str]:
    faq = yaml.safe_load((PROJECT_ROOT / "training_data" / "faq.yml").read_text("utf-8"))
    return {entry["slug"]: entry["answer"] for entry in faq["entries"]}


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"training-{name}.png"), full_page=True)


def _queue_row(page: Page, desk_url: str, text: str, timeout_s: float = 60) -> Any:
    """The training desk's queue row whose latest message has `text`, once the worker has made the ticket."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.goto(f"{desk_url}/queue")
        row = page.locator("table.queue tbody tr", has_text=text)
        if row.count():
            return row.first
        assert time.monotonic() < deadline, f"no ticket with {text!r} on the training desk's queue"
        time.sleep(1)


def _log_in_to(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_load_state()


def test_a_lead_runs_an_outage_storm_for_two_trainees_and_reviews_their_replies(
    page: Page, served: Served, browser: Browser, problems: PageProblems
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.add_init_script("window.confirm = function () { return true; };")  # the lead confirms the stop
    live = served.desk.settings

    log_in(page, served, "lee")
    page.goto(f"{served.url}/lead/training")
    page.get_by_label("Scenario").select_option("scenarios/outage_storm.jsonl")
    page.get_by_label("Speed").fill("40")
    page.get_by_label("Trainees").fill("tess, theo")
    _shot(page, "start-form")
    page.click("#start-training")
    expect(page.locator(".notice-success")).to_contain_text("is starting")
    expect(page.locator("#current-session")).to_contain_text("Starting")
    _shot(page, "starting")
    accounts = page.locator("#training-accounts")
    expect(accounts).to_be_visible(timeout=180_000)  # the page reloads itself until the session is up
    session_id = page.locator("#current-session h2 a").text_content() or ""
    desk_url = page.locator("#training-desk-url").inner_text().rstrip("/")
    passwords = {name: accounts.locator(f'tr[data-username="{name}"] .password').inner_text()
                 for name in ("tess", "theo", "lead")}  # fmt: skip
    _shot(page, "running")

    tess, theo = _watched(browser, problems), _watched(browser, problems)
    tess.goto(f"{desk_url}/login")
    expect(tess.locator(".site-banner")).to_contain_text("TRAINING")
    _shot(tess, "desk-login")
    _log_in_to(tess, desk_url, "tess", passwords["tess"])
    _log_in_to(theo, desk_url, "theo", passwords["theo"])

    # tess takes Priya's ticket and repeats her phone number in public: the tone check refuses it.
    _queue_row(tess, desk_url, "can someone call me about the outage").locator("a").first.click()
    expect(tess.locator(".site-banner")).to_contain_text("TRAINING")
    tess.click("#claim")
    tess.fill("#reply-body", f"Hi Priya, we'll call you on {PHONE} shortly about the outage.")
    expect(tess.locator("#tone-report")).not_to_contain_text("Tone check passed")
    tess.click("#send-reply")
    expect(tess.locator("#reply-error")).to_contain_text("Not sent: Your reply contains a phone number")
    _shot(tess, "desk-refused")
    # The bot has asked Priya to continue by DM already; tess goes on to the angry customer who wants to cancel.
    _queue_row(tess, desk_url, "@kirkstall_ken").locator("a").first.click()
    tess.click("#claim")
    tess.fill("#reply-body", "Sorry Ken. Three outages in a month isn't good enough. Engineers are on it now.")
    tess.click("#send-reply")
    expect(tess.locator(".notice-success")).to_contain_text("Reply queued")

    # theo takes an outage question the FAQ answers and sends the suggestion the scenario's reference names.
    answers, chosen = _answers(), None
    _queue_row(theo, desk_url, "@")  # the worker has made tickets
    for text, slug in WITH_FAQ.items():
        row = theo.locator("table.queue tbody tr", has_text=text)
        if row.count():
            chosen = text, slug
            row.first.locator("a").first.click()
            break
    assert chosen is not None, "none of the scenario's FAQ questions reached the trainees' queue"
    theo.click("#claim")
    suggestion = theo.locator(".suggestion", has_text=answers[chosen[1]][:60])
    expect(suggestion).to_have_count(1)  # the reference's entry is among the suggestions
    _shot(theo, "desk-suggestions")
    suggestion.locator("a.insert").click()
    expect(theo.locator("#tone-report")).to_contain_text("Tone check passed")
    theo.click("#send-reply")
    expect(theo.locator(".notice-success")).to_contain_text("Reply queued")

    # The lead's scorecard: the refused echo for tess, the right FAQ entry for theo.
    page.goto(f"{served.url}/lead/training/{session_id}")
    expect(page.locator("#session-state")).to_have_text("running")
    row_tess, row_theo = (page.locator(f'#scorecard tr[data-trainee="{n}"]') for n in ("tess", "theo"))
    expect(row_tess.locator(".personal-data")).to_contain_text("0 echoed in public")
    expect(row_tess.locator(".personal-data")).to_contain_text("1 echo refused")
    expect(row_tess.locator(".tone-refusals")).to_contain_text("personal data 1")
    expect(row_theo.locator(".personal-data")).to_contain_text("0 echo")
    expect(row_theo.locator(".right-faq")).to_have_text("1/1 right")
    expect(row_theo.locator("td").nth(1)).to_have_text("1")  # tickets answered first
    expect(row_tess.locator(".right-faq")).to_have_text("no reference names an entry")  # Ken's names none
    refused = page.locator('.training-refused[data-trainee="tess"]')  # Priya's ticket: refused, not answered
    expect(refused.locator(".refused-on-ticket")).to_contain_text("personal data")
    expect(refused.locator(".customer-tweet")).to_contain_text("can someone call me about the outage")
    expect(page.locator('.training-reply[data-trainee="theo"] .refused-on-ticket')).to_have_count(0)
    reply_theo = page.locator('.training-reply[data-trainee="theo"]')
    expect(reply_theo).to_have_count(1)
    expect(reply_theo.locator(".faq-right")).to_be_visible()
    expect(reply_theo.locator(".trainee-reply")).to_contain_text(f"FAQ entry used: {chosen[1]}")
    expect(reply_theo.locator(".customer-tweet")).to_contain_text(chosen[0])
    _shot(page, "scorecard")

    # The lead reviews both replies from the page.
    reply_theo.get_by_label("good").check()
    reply_theo.locator("textarea").fill("Right entry, and quick.")
    reply_theo.get_by_role("button", name="Save review").click()
    expect(page.locator(".notice-success")).to_contain_text("marked good")
    reply_tess = page.locator('.training-reply[data-trainee="tess"]:not(.training-refused)')
    reply_tess.get_by_label("needs work").check()
    reply_tess.locator("textarea").fill("Ask him to DM us so we can look at his line, as the reference does.")
    reply_tess.get_by_role("button", name="Save review").click()
    expect(page.locator(".notice-success")).to_contain_text("marked needs work")
    expect(reply_theo.locator(".review-state")).to_contain_text("good by lee")
    expect(reply_tess.locator(".review-state")).to_contain_text("needs work by lee")
    expect(reply_tess.locator(".review-comment")).to_have_text(
        "Ask him to DM us so we can look at his line, as the reference does."
    )
    expect(row_tess.locator(".reviewed")).to_contain_text("1 flagged as needing work")
    expect(row_theo.locator(".reviewed")).to_contain_text("1/1 reviewed")
    _shot(page, "reviewed")
    page.set_viewport_size({"width": 390, "height": 844})  # a lead on a phone
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the training session's page is {width} px wide at 390 px"
    _shot(page, "reviewed-390")
    page.set_viewport_size({"width": 1440, "height": 900})

    # The lead stops the session: its scorecard and reviews stay.
    page.goto(f"{served.url}/lead/training")
    page.click("#stop-session", timeout=60_000)  # the answer waits until the session's processes have stopped
    expect(page.locator(".notice-success")).to_contain_text("has ended")
    expect(page).to_have_url(re.compile(re.escape(f"/lead/training/{session_id}")))
    expect(page.locator("#session-state")).to_have_text("ended")
    expect(page.locator('.training-reply[data-trainee="tess"] .review-state')).to_contain_text("needs work")
    _shot(page, "ended")
    page.goto(f"{served.url}/lead/training")
    expect(page.locator(f'tr[data-session="{session_id}"] .state')).to_have_text("ended")
    expect(page.locator("#start-session")).to_be_visible()
    _shot(page, "list")
    tess.context.close()
    theo.context.close()

    # The session's customers and replies stayed in the session's own database.
    with served.desk.engine.connect() as conn:
        for table in (inbound_tweets, tickets, outbox):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name
    assert training.scorecard(live, session_id).trainees[0].username == "tess"
