"""The demo keeps its state across restarts: the same passwords on every start (kept 0600 in the data directory),
and `carebot demo-reset` deletes the demo's data but keeps the NLU models; it refuses a server database."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.db import make_engine, upgrade
from bot.settings import Settings, SettingsError
from bot.up import DEMO_PASSWORDS, DEMO_REPLAYED, ensure_demo_accounts, reset_demo
from bot.web.accounts import AccountService


def _settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "var", nlu_token="test-token")
    settings.prepare_data_dir()
    upgrade(settings.effective_database_url)
    return settings


def test_the_demo_passwords_stay_the_same_across_starts(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = ensure_demo_accounts(settings)
    second = ensure_demo_accounts(settings)
    assert [p[:2] for p in first] == [p[:2] for p in second] and len(first) == 5
    kept = settings.data_dir / DEMO_PASSWORDS
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    engine = make_engine(settings.effective_database_url)
    try:
        accounts = AccountService(engine, session_hours=settings.web_session_hours)
        username, password = second[0][:2]
        assert accounts.log_in(username, password, client="127.0.0.1") is not None
    finally:
        engine.dispose()


def test_demo_reset_removes_the_data_and_keeps_the_models(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    ensure_demo_accounts(settings)
    (settings.data_dir / DEMO_REPLAYED).write_text("kestrel_day.jsonl\n")
    settings.effective_sandbox_store.write_text("")
    (settings.data_dir / "logs").mkdir()
    (settings.data_dir / "logs" / "worker.log").write_text("started\n")
    model = settings.data_dir / "models" / "nlu-abc.tar.gz"
    model.parent.mkdir()
    model.write_text("model")
    removed = {path.name for path in reset_demo(settings)}
    assert {"carebot.db", "sandbox-x.db", DEMO_PASSWORDS, DEMO_REPLAYED, "worker.log"} <= removed
    assert model.is_file() and not (settings.data_dir / "carebot.db").exists()
    assert reset_demo(settings) == []


def test_demo_reset_refuses_a_server_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", nlu_token="t", database_url="postgresql+psycopg://x@localhost/db")
    with pytest.raises(SettingsError, match="server database"):
        reset_demo(settings)
