"""Health checks of carebot's long-running processes, for `carebot health` and a process manager's probes.

Each check asks the running process the way its clients do: the NLU servers' /status (a model loaded), the
worker's heartbeat in the database, the web app's /healthz and the sandbox X's /sandbox/stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from bot.settings import Settings

PROCESSES = ("nlu", "worker", "web", "sandbox")
WORKER_STALE_S = 60.0  # a worker whose last heartbeat is older is not healthy (the lead view's bar too)


@dataclass(frozen=True)
class Health:
    process: str  # one of PROCESSES
    target: str  # where it was asked: a URL without its token, or "database"
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"process": self.process, "target": self.target, "ok": self.ok, "detail": self.detail}


def check_nlu(settings: Settings) -> list[Health]:
    from bot.nlu.client import NluClient

    results = []
    for url in settings.effective_nlu_urls:
        with NluClient(url, settings.effective_nlu_token, timeout_s=2, retries=0) as probe:
            model = probe.model_file()
        results.append(Health("nlu", url, model is not None, f"model {model}" if model else "no answer"))
    return results


def check_worker(settings: Settings, now: datetime | None = None) -> Health:
    from bot.channel.worker import last_heartbeat
    from bot.db import DatabaseError, make_engine

    try:
        engine = make_engine(settings.effective_database_url)
    except DatabaseError as exc:
        return Health("worker", "database", False, str(exc))
    try:
        seen = last_heartbeat(engine)
    except Exception as exc:  # noqa: BLE001 - an unreachable or unmigrated database is an unhealthy worker
        return Health("worker", "database", False, f"cannot read the heartbeat ({type(exc).__name__})")
    finally:
        engine.dispose()
    if seen is None:
        return Health("worker", "database", False, "no heartbeat yet")
    age = ((now or datetime.now(UTC)) - seen).total_seconds()
    return Health("worker", "database", age <= WORKER_STALE_S, f"last heartbeat {age:.0f} s ago")


def _http(process: str, url: str) -> Health:
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return Health(process, url, False, f"no answer ({type(exc).__name__})")
    return Health(process, url, response.status_code == 200, f"HTTP {response.status_code}")


def check_web(settings: Settings) -> Health:
    host = f"[{settings.web_host}]" if ":" in settings.web_host else settings.web_host
    return _http("web", f"http://{host}:{settings.web_port}/healthz")


def check_sandbox(settings: Settings) -> Health:
    return _http("sandbox", f"{settings.effective_sandbox_url}/sandbox/stats")


def check(settings: Settings, processes: tuple[str, ...] = ()) -> list[Health]:
    """The health of the named processes; without names, of all of them, the sandbox X only when it is in use
    (no X credentials or X API URL set)."""
    if not processes:
        in_use = not (settings.x_credentials_set or settings.x_api_url)
        processes = tuple(p for p in PROCESSES if p != "sandbox" or in_use)
    results: list[Health] = []
    for process in processes:
        if process == "nlu":
            results.extend(check_nlu(settings))
        elif process == "worker":
            results.append(check_worker(settings))
        elif process == "web":
            results.append(check_web(settings))
        elif process == "sandbox":
            results.append(check_sandbox(settings))
        else:
            raise ValueError(f"no such process: {process} (one of {', '.join(PROCESSES)})")
    return results
