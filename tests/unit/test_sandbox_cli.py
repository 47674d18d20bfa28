"""`carebot sandbox`: which server it starts with which options, and user mistakes as one `error:` line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setenv("CAREBOT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setattr("uvicorn.run", lambda served_app, **options: calls.append({"app": served_app, **options}))
    monkeypatch.setattr("bot.sandbox.cli.port_in_use", lambda *args: None)  # whatever runs on 8090 here
    return calls


@pytest.mark.parametrize("command", [["sandbox"], ["sandbox", "serve"]])
def test_serve_with_the_settings_defaults(served: list[dict[str, Any]], tmp_path: Path, command: list[str]) -> None:
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert [(call["host"], call["port"]) for call in served] == [("127.0.0.1", 8090)]
    assert served[0]["app"].state.store.path == tmp_path / "var" / "sandbox-x.db"


def test_bare_sandbox_takes_host_port_and_store(served: list[dict[str, Any]], tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "x.db"
    result = CliRunner().invoke(app, ["sandbox", "--host", "::1", "--port", "9123", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert (served[0]["host"], served[0]["port"]) == ("::1", 9123) and store.is_file()
    assert "http://[::1]:9123" in result.output


def test_the_served_sandbox_answers_configured_hosts_and_the_address_it_listens_on(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAREBOT_SANDBOX_ALLOWED_HOSTS", '["care-training.lan"]')
    result = CliRunner().invoke(app, ["sandbox", "--host", "192.168.1.20"])
    assert result.exit_code == 0, result.output
    allowed = served[0]["app"].allowed_hosts
    assert {"care-training.lan", "192.168.1.20", "127.0.0.1", "localhost", "::1"} <= allowed
    assert not served[0]["app"].host_allowed("evil.example:8090")


def test_replay_of_a_bad_file_is_one_error_line(served: list[dict[str, Any]], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"at": 0, "key": "a", "user": "ann", "text": "hi"}\n{"at": "soon"}\n')
    result = CliRunner().invoke(app, ["sandbox", "replay", str(bad), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "line 2: `at` must be a number" in result.output
    assert served == []  # a subcommand never starts the server
