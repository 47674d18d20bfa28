"""App-only X credentials (a bearer token without the OAuth 1.0a user context) are refused before the worker or
`carebot up` starts: X refuses them for users/me, DMs and posting, so the worker would wait forever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bot.channel.x_client import XClient
from bot.settings import Settings, SettingsError
from bot.up import run_up

USER_CONTEXT = {
    "x_consumer_key": "ck",
    "x_consumer_secret": "cs",
    "x_access_token": "1-at",
    "x_access_token_secret": "ats",
}


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path / "var", nlu_token="test-token", **values)


def test_a_bearer_token_alone_is_refused_naming_every_missing_setting(tmp_path: Path) -> None:
    settings = _settings(tmp_path, x_bearer_token="app-only")
    with pytest.raises(SettingsError) as raised:
        settings.check_x_user_context()
    message = str(raised.value)
    assert "CAREBOT_X_BEARER_TOKEN alone is app-only" in message
    assert message.endswith(
        "CAREBOT_X_CONSUMER_KEY, CAREBOT_X_CONSUMER_SECRET, CAREBOT_X_ACCESS_TOKEN and CAREBOT_X_ACCESS_TOKEN_SECRET"
    )
    assert "\n" not in message
    with pytest.raises(SettingsError, match="app-only"):
        XClient.from_settings(settings)  # what the worker builds first


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (
            {"x_consumer_key": "ck", "x_consumer_secret": "cs"},
            "CAREBOT_X_ACCESS_TOKEN and CAREBOT_X_ACCESS_TOKEN_SECRET",
        ),
        ({**USER_CONTEXT, "x_access_token_secret": " "}, "set CAREBOT_X_ACCESS_TOKEN_SECRET"),
    ],
)
def test_a_bearer_token_with_part_of_the_user_context_names_what_is_missing(
    tmp_path: Path, given: dict[str, str], missing: str
) -> None:
    settings = _settings(tmp_path, x_bearer_token="app-only", **given)
    with pytest.raises(SettingsError) as raised:
        settings.check_x_user_context()
    assert str(raised.value).endswith(missing)
    assert "CAREBOT_X_CONSUMER_KEY" not in str(raised.value)


@pytest.mark.parametrize(
    "values",
    [
        {},  # the sandbox X
        USER_CONTEXT,
        {**USER_CONTEXT, "x_bearer_token": "app-token"},
        {"x_api_url": "http://127.0.0.1:9"},
    ],
)
def test_user_context_or_no_credentials_pass(tmp_path: Path, values: dict[str, str]) -> None:
    settings = _settings(tmp_path, **values)
    settings.check_x_user_context()
    XClient.from_settings(settings).close()


def test_up_refuses_app_only_credentials_before_starting_anything(tmp_path: Path) -> None:
    def ensure_model(_settings: Settings) -> Path:
        raise AssertionError("carebot up started Rasa with app-only X credentials")

    settings = _settings(tmp_path, x_bearer_token="app-only")
    with pytest.raises(SettingsError, match="app-only"):
        run_up(settings, Console(file=None, quiet=True), ensure_model=ensure_model)
    assert not (tmp_path / "var" / "carebot.db").exists()  # not even the database was touched
