"""Accounts and the roster: an agent's account and its roster agent are created together or not at all, and a
disabled account's roster agent is off the shift (offline, its tickets back in the queue, given no more work)
until the account is enabled again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result
from web_support import PASSWORD, WebDesk, csrf_of, web_desk

from bot.cli import app
from bot.web.accounts import AccountError


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[WebDesk]:
    with web_desk(tmp_path) as desk:
        yield desk


def test_a_refused_account_leaves_no_roster_agent_behind(desk: WebDesk) -> None:
    accounts = desk.services.accounts
    for username, password, initials in (("cat", "short", "CA"), ("cat", PASSWORD, "BOT"), ("<b>", PASSWORD, "CA")):
        with pytest.raises(AccountError):
            accounts.create(username, password, role="agent", display_name="Cat Jones", initials=initials)
        assert desk.handoff.agent_by_username(username) is None
    for kwargs in ({"kind": "temp"}, {"capacity": -1}, {"display_name": "C" * 101}):
        values = {"role": "agent", "display_name": "Cat Jones", "initials": "CA", **kwargs}
        with pytest.raises(AccountError):
            accounts.create("cat", PASSWORD, **values)  # type: ignore[arg-type]
        assert desk.handoff.agent_by_username("cat") is None
    created = accounts.create("cat", PASSWORD, role="agent", display_name="Cat Jones", initials="CA", capacity=3)
    agent = desk.handoff.agent_by_username("cat")
    assert agent is not None and created.agent_id == agent.id and (agent.initials, agent.capacity) == ("CA", 3)


def test_initials_of_another_roster_agent_are_refused_before_anything_is_written(desk: WebDesk) -> None:
    desk.handoff.add_agent("zoe", "Zoe Zimmer", "ZZ")  # on the roster, with no account
    with pytest.raises(AccountError, match="initials 'ZZ' is already used by Zoe Zimmer"):
        desk.services.accounts.create("abe", PASSWORD, role="lead", display_name="Abe Bell", initials="ZZ")
    assert desk.services.accounts.by_username("abe") is None and desk.handoff.agent_by_username("abe") is None


def test_a_roster_agent_left_without_an_account_is_taken_over_when_its_initials_match(desk: WebDesk) -> None:
    left = desk.handoff.add_agent("dee", "Dee Mensah", "DM")
    with pytest.raises(AccountError, match="use --initials DM"):
        desk.services.accounts.create("dee", PASSWORD, role="agent", display_name="Dee Mensah", initials="DX")
    account = desk.services.accounts.create("dee", PASSWORD, role="agent", display_name="Dee Mensah", initials="DM")
    assert account.agent_id == left.id


def test_disabling_takes_the_agent_off_the_shift_and_enabling_brings_it_back_offline(desk: WebDesk) -> None:
    ann = desk.handoff.agent_by_username("ann")
    assert ann is not None
    desk.handoff.set_status(ann.id, "online", by="lee")
    held = desk.escalate("my router is dead")
    desk.handoff.claim(held, ann.id)
    waiting = desk.escalate("still no signal")

    desk.services.accounts.set_active("ann", False, by="admin")
    after = desk.handoff.agent(ann.id)
    assert (after.active, after.status) == (False, "offline")
    assert desk.handoff.ticket(held).ticket.state == "queued"
    assert [(e.actor, e.action) for e in desk.handoff.audit(ticket_id=held, limit=1)] == [("admin", "requeued")]

    lead = desk.logged_in("lee")
    csrf = csrf_of(lead)
    page = lead.get("/lead").text
    assert 'data-agent="ann"' not in page  # not on the roster, not proposed, not offered for reassigning
    lead.post(f"/lead/agents/{ann.id}/status", data={"csrf_token": csrf, "status": "online"})
    assert "is disabled" in lead.get("/lead").text and desk.handoff.agent(ann.id).status == "offline"
    lead.post(f"/lead/tickets/{waiting}/reassign", data={"csrf_token": csrf, "agent_id": ann.id})
    assert "is disabled" in lead.get("/lead").text and desk.handoff.ticket(waiting).ticket.state == "queued"

    desk.services.accounts.set_active("ann", True)
    assert (desk.handoff.agent(ann.id).active, desk.handoff.agent(ann.id).status) == (True, "offline")
    assert desk.handoff.claim(waiting, ann.id).agent_id == ann.id


def test_disabling_an_editor_touches_no_roster(desk: WebDesk) -> None:
    roster = desk.handoff.roster()
    desk.services.accounts.set_active("eve", False)
    assert desk.handoff.roster() == roster


# ---------------------------------------------------------------- `carebot users add`


def _users(args: list[str], stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["users", *args], input=stdin)


def test_users_add_checks_everything_before_the_password_and_a_failure_blocks_no_initials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREBOT_DATA_DIR", str(tmp_path / "var"))
    # Refused before any password is asked for (there is no input to give one).
    for bad, words in ((["--capacity", "-1"], "capacity"), (["--kind", "temp"], "kind"),
                       (["--initials", "BOT"], "initials"), (["--name", " "], "name")):  # fmt: skip
        result = _users(["add", "cat", "--role", "agent", "--name", "Cat", "--initials", "CA", *bad])
        assert result.exit_code == 1 and result.stderr.startswith("error: ") and words in result.stderr, result
        assert "Password" not in result.output
    weak = _users(["add", "cat", "--role", "agent", "--name", "Cat", "--initials", "CA", "--password-stdin"], "short\n")
    assert weak.exit_code == 1 and "at least" in weak.stderr
    # Nothing was left on the roster: the initials are free for somebody else.
    other = _users(["add", "cy", "--role", "agent", "--name", "Cy Adams", "--initials", "CA", "--password-stdin"],
                   PASSWORD + "\n")  # fmt: skip
    assert other.exit_code == 0, other.output
    disabled = _users(["disable", "cy"])
    assert disabled.exit_code == 0 and "tickets" in disabled.stderr


def test_a_lead_joins_the_roster_without_capacity_unless_they_choose_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.db import make_engine
    from bot.settings import load_settings
    from handoff.service import Handoff

    monkeypatch.setenv("CAREBOT_DATA_DIR", str(tmp_path / "var"))
    for args in (["lee", "--role", "lead", "--name", "Lee Park", "--initials", "LP"],
                 ["ann", "--role", "agent", "--name", "Ann Brown", "--initials", "AB"],
                 ["kim", "--role", "lead", "--name", "Kim Lo", "--initials", "KL", "--capacity", "3"]):  # fmt: skip
        result = _users(["add", *args, "--password-stdin"], PASSWORD + "\n")
        assert result.exit_code == 0, result.output
    engine = make_engine(load_settings().effective_database_url)
    try:
        roster = {row.agent.username: row.agent.capacity for row in Handoff(engine).roster()}
    finally:
        engine.dispose()
    assert roster == {"lee": 0, "ann": 5, "kim": 3}
