"""Test setup shared by every layer: a clean environment, a private data directory per test,
and the session-wide real Rasa server for tests marked `rasa`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings

# A developer's shell must not leak into the tests; CAREBOT_TEST_* variables configure the tests themselves.
for _name in list(os.environ):
    if _name.startswith("CAREBOT_") and not _name.startswith("CAREBOT_TEST_"):
        del os.environ[_name]

# Trained test models are kept here across sessions, named by the content hash of their inputs.
MODEL_CACHE = Path(os.environ.get("CAREBOT_TEST_CACHE", Path.home() / ".cache" / "carebot-tests"))

# Every test's desk and every process a test starts share one cache of the FAQ texts' vectors (keyed by model and
# text), so that each does not embed the default FAQ's paraphrases and the out-of-scope examples again.
EMBEDDING_CACHE = MODEL_CACHE / "embeddings"
os.environ["CAREBOT_KB_EMBEDDING_CACHE_DIR"] = str(EMBEDDING_CACHE)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", nlu_token="test-token")


@pytest.fixture(scope="session")
def rasa_settings() -> Settings:
    """Settings for the session's real Rasa: the project's training data, a model cache outside the clone."""
    from bot.nlu.service import with_private_port

    return with_private_port(Settings(data_dir=MODEL_CACHE, nlu_token="session-test-token"))


@pytest.fixture(scope="session")
def rasa_model(rasa_settings: Settings) -> Path:
    from bot.nlu.training import train

    model, trained = train(rasa_settings)
    print(f"\nNLU model {'trained' if trained else 'reused from cache'}: {model}")
    return model


@pytest.fixture(scope="session")
def rasa_server(rasa_settings: Settings, rasa_model: Path) -> Iterator[object]:
    from bot.nlu.server import NluServer

    with NluServer(rasa_settings, rasa_model, log_file=MODEL_CACHE / "logs" / "rasa-tests.log") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("CAREBOT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL tests need CAREBOT_TEST_POSTGRES_URL (.ci/run sets it)")
    return url
