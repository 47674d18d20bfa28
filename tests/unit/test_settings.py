"""Settings from the environment and from a settings file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAREBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAREBOT_NLU_PORT", "5999")
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert settings.effective_nlu_url == "http://127.0.0.1:5999"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'carebot.db'}"


def test_settings_file_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file = tmp_path / "carebot.env"
    file.write_text("CAREBOT_NLU_PORT=6001\nCAREBOT_NLU_TIMEOUT_S=1.5\n")
    monkeypatch.setenv("CAREBOT_NLU_PORT", "6002")
    settings = load_settings(file)
    assert settings.nlu_port == 6002
    assert settings.nlu_timeout_s == 1.5


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREBOT_NLU_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="CAREBOT_NLU_PORT"):
        load_settings()


def test_rasa_binds_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREBOT_NLU_HOST", "0.0.0.0")
    with pytest.raises(SettingsError, match="loopback"):
        load_settings()


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.env")


def test_generated_token_is_private_and_stable(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).effective_nlu_token
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path).effective_nlu_token == first
    assert (tmp_path / "nlu-token").stat().st_mode & 0o077 == 0
