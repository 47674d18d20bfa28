"""Which NLU model is live, and switching the running Rasa servers to another one.

The live model is recorded in the models folder (live.json: its file name, the content hash of the shipped
training inputs it was built on, when it was accepted and its gate figures). `carebot nlu serve` and `carebot up`
start with it, so a restart keeps the accepted model; once the shipped training data changes (a new release),
the record no longer matches it and the model of the current training data is served instead.

A switch tells each running server (CAREBOT_NLU_URLS, or the default one) to load the new model with Rasa's
`PUT /model` (bot/nlu/client.py), one server at a time: while one loads, the others answer; a single server
holds its requests until the load is done and then answers them from the new model, and a tweet whose parse
still failed waits in the worker and is tried again. Nothing is escalated and nothing is lost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.nlu.client import NluClient, NluError, NluUnavailable
from bot.nlu.training import TrainingInputs, model_path_for
from bot.settings import Settings

LIVE_FILE = "live.json"


def live_record_path(settings: Settings) -> Path:
    return settings.models_dir / LIVE_FILE


def read_live(settings: Settings) -> dict[str, Any] | None:
    path = live_record_path(settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("model"), str) else None


def record_live(settings: Settings, model: Path, base: TrainingInputs, figures: dict[str, Any] | None = None) -> None:
    record = {
        "model": model.name, "base_hash": base.content_hash(), "accepted_at": datetime.now(UTC).isoformat(),
        "figures": figures or {},
    }  # fmt: skip
    path = live_record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def live_model(settings: Settings, base: TrainingInputs) -> Path | None:
    """The recorded live model, when its file is there and it was built on the current shipped training data."""
    record = read_live(settings)
    if record is None or record.get("base_hash") != base.content_hash():
        return None
    path = settings.models_dir / Path(record["model"]).name
    return path if path.is_file() else None


def serving_model(settings: Settings, base: TrainingInputs) -> Path:
    """The model `carebot nlu serve` and `carebot up` start with: the live one, else the shipped data's."""
    return live_model(settings, base) or model_path_for(settings, base)


def current_model(settings: Settings, base: TrainingInputs) -> Path:
    """The model in use now: the one the running servers report (when it is in the models folder), else the one
    a start would serve."""
    with client_for(settings, timeout_s=2) as client:
        for name in client.model_files().values():
            if name and (settings.models_dir / Path(name).name).is_file():
                return settings.models_dir / Path(name).name
    return serving_model(settings, base)


def client_for(settings: Settings, *, timeout_s: float | None = None) -> NluClient:
    return NluClient(
        settings.effective_nlu_urls, settings.effective_nlu_token, timeout_s=timeout_s or settings.nlu_timeout_s,
        retries=0, max_chars=settings.nlu_max_chars,
    )  # fmt: skip


@dataclass(frozen=True)
class Switched:
    url: str
    outcome: str  # "switched", "already" (it served the model), "not running"


def switch_servers(
    settings: Settings, model: Path, *, on_stage: Callable[[str], None] = lambda stage: None
) -> list[Switched]:
    """Make every configured Rasa server that answers load `model`, one after the other. A server that does not
    answer is left out (it starts with the live model); one that refuses the model raises NluModelRefused and
    keeps its model, and the servers after it are not asked."""
    done = []
    with client_for(settings, timeout_s=5) as client:
        for url, loaded in client.model_files().items():
            if loaded is None:
                done.append(Switched(url, "not running"))
                continue
            if loaded == model.name:
                done.append(Switched(url, "already"))
                continue
            on_stage(f"{url}: loading {model.name} (it served {loaded})")
            client.replace_model(url, str(model.resolve()), timeout_s=settings.nlu_start_timeout_s)
            now = client.model_files().get(url)
            if now != model.name:
                raise NluUnavailable(f"Rasa at {url} reports the model {now} after loading {model.name}")
            done.append(Switched(url, "switched"))
    return done


def switch(settings: Settings, model: Path, base: TrainingInputs, figures: dict[str, Any] | None = None,
           *, on_stage: Callable[[str], None] = lambda stage: None) -> list[Switched]:  # fmt: skip
    """Switch the running servers to `model`, then record it as live (also when no server runs)."""
    if not model.is_file():
        raise NluError(f"model not found: {model}")
    done = switch_servers(settings, model, on_stage=on_stage)
    record_live(settings, model, base, figures)
    return done
