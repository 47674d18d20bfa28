"""Settings from the environment and from a settings file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import (
    PROJECT_ROOT,
    Settings,
    SettingsError,
    _json_shape,
    known_variables,
    load_settings,
    unknown_variables,
)


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


JSON_SETTINGS = [name for name in Settings.model_fields if _json_shape(name)]


def test_the_list_settings_are_known() -> None:
    assert {"x_search_queries", "sandbox_allowed_hosts"} <= set(JSON_SETTINGS)


@pytest.mark.parametrize("field", JSON_SETTINGS)
def test_a_json_setting_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    monkeypatch.setenv(f"CAREBOT_{field.upper()}", "[bad")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"invalid settings: CAREBOT_{field.upper()}: not valid JSON")
    assert "it must be a JSON list, e.g. [" in str(raised.value)


def test_the_search_queries_error_shows_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREBOT_X_SEARCH_QUERIES", "#kestreldown")  # JSON of no kind
    with pytest.raises(SettingsError, match=r'must be a JSON list, e\.g\. \["#kestreldown","kestrel broadband"\]$'):
        load_settings()
    monkeypatch.setenv("CAREBOT_X_SEARCH_QUERIES", '"#kestreldown"')  # JSON, but a string
    with pytest.raises(SettingsError, match="CAREBOT_X_SEARCH_QUERIES: Input should be a valid list; it must be a"):
        load_settings()


def test_a_bad_list_in_the_settings_file_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "carebot.env"
    file.write_text("CAREBOT_SANDBOX_ALLOWED_HOSTS=[care-training.lan]\n")
    with pytest.raises(SettingsError, match=rf"CAREBOT_SANDBOX_ALLOWED_HOSTS \(in {file}\): not valid JSON"):
        load_settings(file)


def test_a_misspelled_name_in_the_settings_file_is_refused_with_the_closest(tmp_path: Path) -> None:
    file = tmp_path / "carebot.env"
    file.write_text("CAREBOT_NLU_PROT=5006\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(file)
    assert str(raised.value) == (
        f"invalid settings: CAREBOT_NLU_PROT (in {file}) is not a carebot setting; did you mean CAREBOT_NLU_PORT?"
    )


def test_misspelled_variables_are_named_with_the_closest_known_one() -> None:
    environ = {"CAREBOT_NLU_PROT": "5", "carebot_webport": "1", "CAREBOT_ZZZ": "1", "CAREBOT_NLU_PORT": "5", "PATH": ""}
    assert unknown_variables(environ) == [
        "CAREBOT_NLU_PROT is not a carebot setting; did you mean CAREBOT_NLU_PORT?",
        "CAREBOT_ZZZ is not a carebot setting",
        "carebot_webport is not a carebot setting; did you mean CAREBOT_WEB_PORT?",
    ]


MISSPELT_ON_PURPOSE = {"CAREBOT_NLU_PROT", "CAREBOT_ZZZ", "CAREBOT_WEBPORT"}


def test_every_carebot_variable_in_the_code_is_known() -> None:
    """The variables read (or set for carebot) anywhere in the code: none of them is taken for a misspelling."""
    roots = ["bot", "bench", "handoff", "knowledge_base", "tests", "scripts", ".ci", "Makefile"]
    files = [path for root in roots for path in ([PROJECT_ROOT / root] if (PROJECT_ROOT / root).is_file() else
             (PROJECT_ROOT / root).rglob("*")) if path.is_file() and path.suffix not in (".pyc", ".db")]  # fmt: skip
    seen = {
        name for path in files for name in re.findall(r"\bCAREBOT_[A-Z0-9_]+", path.read_text("utf-8", "replace"))
        if not name.endswith("_")  # a prefix: CAREBOT_, CAREBOT_KB_*
    }  # fmt: skip
    assert "CAREBOT_FAILPOINT" in seen
    assert sorted(seen - set(known_variables()) - MISSPELT_ON_PURPOSE) == []
