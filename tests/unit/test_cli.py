"""The command line's error handling: one clear line, exit code 1, no traceback."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.db import head_revision
from bot.nlu.server import NluServer, NluServerError
from bot.ports import port_in_use
from bot.settings import Settings

CAREBOT = [sys.executable, "-m", "bot"]


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var")}
    return subprocess.run(
        CAREBOT + args, capture_output=True, text=True, timeout=60, env=environment | env, stdin=subprocess.DEVNULL
    )


def test_invalid_setting(tmp_path: Path) -> None:
    result = run(["db", "current"], tmp_path, CAREBOT_NLU_PORT="seventy")
    assert result.returncode == 1
    assert "CAREBOT_NLU_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_current(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(["db", "current"], tmp_path)
    assert result.stdout.strip() == head_revision()


def test_serve_without_rasa_installed(tmp_path: Path) -> None:
    result = run(["nlu", "train", "--force"], tmp_path, CAREBOT_RASA_VENV=str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "Rasa is not installed" in result.stderr


def test_a_list_setting_that_is_not_json_is_one_error_line(tmp_path: Path) -> None:
    result = run(["users", "list"], tmp_path, CAREBOT_X_SEARCH_QUERIES="[bad")
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid settings: CAREBOT_X_SEARCH_QUERIES: not valid JSON")
    assert result.stderr.rstrip("\n").endswith('it must be a JSON list, e.g. ["#kestreldown","kestrel broadband"]')
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_misspelled_variable_is_named_once_with_the_closest_setting(tmp_path: Path) -> None:
    result = run(["db", "current"], tmp_path, CAREBOT_NLU_PROT="5")
    assert result.returncode == 0
    assert result.stderr == "warning: CAREBOT_NLU_PROT is not a carebot setting; did you mean CAREBOT_NLU_PORT?\n"


def test_variables_read_outside_the_settings_are_no_misspellings(tmp_path: Path) -> None:
    others = {
        "CAREBOT_TEST_POSTGRES_URL": "postgresql://nowhere/x",
        "CAREBOT_BENCH_POSTGRES_URL": "postgresql://x/y",
        "CAREBOT_TEST_CACHE": str(tmp_path),
        "CAREBOT_SETTINGS_FILE": "",
        "CAREBOT_RASA_VENV": str(tmp_path),
    }
    result = run(["db", "current"], tmp_path, **others)
    assert result.returncode == 0 and result.stderr == ""


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on (it accepts and drops connections, like a stranger's server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def drop() -> None:
            with contextlib.suppress(OSError):
                while True:
                    listener.accept()[0].close()

        threading.Thread(target=drop, daemon=True).start()
        yield listener.getsockname()[1]


def test_web_on_a_busy_port_is_one_error_line(tmp_path: Path, busy_port: int) -> None:
    result = run(["web"], tmp_path, CAREBOT_WEB_PORT=str(busy_port))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {busy_port} on 127.0.0.1 is in use: stop what runs there or set CAREBOT_WEB_PORT\n"
    )


def test_sandbox_serve_on_a_busy_port_is_one_error_line(tmp_path: Path, busy_port: int) -> None:
    result = run(["sandbox", "serve", "--port", str(busy_port)], tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {busy_port} on 127.0.0.1 is in use: stop what runs there or set CAREBOT_SANDBOX_PORT\n"
    )
    assert not (tmp_path / "var" / "sandbox-x.db").exists()  # refused before anything was created


def test_the_nlu_server_refuses_a_busy_port_before_starting_rasa(tmp_path: Path, busy_port: int) -> None:
    model = tmp_path / "model.tar.gz"
    model.touch()
    settings = Settings(data_dir=tmp_path / "var", nlu_port=busy_port, nlu_token="t", rasa_venv=tmp_path / "none")
    server = NluServer(settings, model)
    with pytest.raises(NluServerError, match=f"^port {busy_port} on 127.0.0.1 is in use: .* set CAREBOT_NLU_PORT$"):
        server.start()
    assert server.process is None


def test_a_port_whose_server_just_stopped_is_free() -> None:
    """Connections left in TIME_WAIT do not make a port busy: the servers (SO_REUSEADDR) can listen there."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        server.accept()[0].close()  # the server's side closes first: it is the one left in TIME_WAIT
        client.close()
    assert port_in_use("127.0.0.1", port, "CAREBOT_WEB_PORT") is None
