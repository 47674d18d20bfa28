"""`python -m bot worker` with only CAREBOT_X_BEARER_TOKEN set exits at start with one `error:` line naming the
missing OAuth 1.0a settings, instead of waiting for the care account forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.settings import PROJECT_ROOT


def test_the_worker_refuses_app_only_credentials_at_start(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CAREBOT_")}
    env.update(
        CAREBOT_DATA_DIR=str(tmp_path / "var"),
        CAREBOT_X_BEARER_TOKEN="AAAA-app-only-token",
        CAREBOT_X_API_URL="http://127.0.0.1:9",  # never X itself, even if the check were gone: nothing listens
        CAREBOT_NLU_TOKEN="test-token",
        NO_COLOR="1",
        COLUMNS="80",  # a narrow terminal must not wrap the error line
    )
    finished = subprocess.run(
        [sys.executable, "-m", "bot", "worker"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert finished.returncode == 1, (finished.stdout, finished.stderr)
    errors = [line for line in finished.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), finished.stderr  # refused before anything ran
    assert "CAREBOT_X_BEARER_TOKEN alone is app-only" in errors[0]
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET"):
        assert f"CAREBOT_X_{name}" in errors[0]
    assert "AAAA-app-only-token" not in finished.stderr + finished.stdout
    assert not (tmp_path / "var" / "carebot.db").exists()
