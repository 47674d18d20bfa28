"""carebot's data stays with the user running it: the data directory is 0700, SQLite files 0600, the `carebot`
command creates everything with umask 077, and the NLU token is on no command line and goes only to loopback
over plain HTTP."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bot.db import make_engine
from bot.nlu import rasa_run
from bot.nlu.server import NluServer
from bot.settings import Settings, ensure_private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    database = tmp_path / "new" / "carebot.db"
    make_engine(f"sqlite:///{database}").dispose()
    assert (_mode(database.parent), _mode(database)) == (0o700, 0o600)


def test_an_existing_database_and_data_directory_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "carebot.db"
    database.touch()
    database.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert _mode(database) == 0o600
    assert ensure_private_dir(data) == data and _mode(data) == 0o700


def test_the_command_creates_its_data_directory_and_files_for_its_user_only(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(data)}
    previous = os.umask(0o022)  # what a login shell usually has
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bot", "db", "upgrade"], capture_output=True, text=True, timeout=60,
            env=environment, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    assert _mode(data) == 0o700
    created = [path for path in data.rglob("*")]
    assert created and all(_mode(path) & 0o077 == 0 for path in created), {p.name: oct(_mode(p)) for p in created}


def test_the_nlu_token_is_not_on_rasas_command_line(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", nlu_token="very-secret-token", rasa_venv=tmp_path / "rasa")
    (tmp_path / "rasa" / "bin").mkdir(parents=True)
    (tmp_path / "rasa" / "bin" / "rasa").touch()
    server = NluServer(settings, tmp_path / "model.tar.gz")
    command = server.command()
    assert command[:3] == [str(tmp_path / "rasa" / "bin" / "python"), "-m", "bot.nlu.rasa_run"]
    assert not any("secret" in part for part in command) and "--auth-token" not in command
    environment = server.environment()
    assert environment[rasa_run.TOKEN_VARIABLE] == "very-secret-token"
    assert not any(name.startswith("CAREBOT_") for name in environment if name != rasa_run.TOKEN_VARIABLE)


def test_the_launcher_hands_the_token_to_rasa_inside_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    fake = types.ModuleType("rasa.__main__")
    fake.main = lambda: seen.update(argv=list(sys.argv), env=os.environ.get(rasa_run.TOKEN_VARIABLE))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rasa", types.ModuleType("rasa"))
    monkeypatch.setitem(sys.modules, "rasa.__main__", fake)
    monkeypatch.setenv(rasa_run.TOKEN_VARIABLE, "very-secret-token")
    monkeypatch.setattr(sys, "argv", ["rasa_run.py", "--enable-api", "--port", "5005"])
    rasa_run.main()
    assert seen == {"argv": ["rasa", "run", "--enable-api", "--port", "5005", "--auth-token", "very-secret-token"],
                    "env": None}  # fmt: skip


def test_the_launcher_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rasa_run.TOKEN_VARIABLE, raising=False)
    with pytest.raises(SystemExit, match="CAREBOT_RASA_AUTH_TOKEN is not set"):
        rasa_run.main()


@pytest.mark.parametrize("url", ["http://127.0.0.1:5005", "http://localhost:5005/", "http://[::1]:5005", "https://nlu.example"])
def test_the_nlu_url_keeps_the_token_private(url: str) -> None:
    assert Settings(nlu_url=url).effective_nlu_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.0.0.7:5005", "http://nlu.example", "ftp://127.0.0.1"])
def test_an_nlu_url_that_would_send_the_token_in_the_clear_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="token travels in the URL"):
        Settings(nlu_url=url)
