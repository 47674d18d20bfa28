"""The command line's error handling: one clear line, exit code 1, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.db import head_revision

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
