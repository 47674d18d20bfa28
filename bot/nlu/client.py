"""The one module that talks to the Rasa NLU servers: `POST /model/parse`, with timeouts and bounded retries,
spread over one or more servers (CAREBOT_NLU_URLS) with failover; `GET /status` (the model loaded) and
`PUT /model` (load another model in a running server).

While Rasa 3.6 loads a model on `PUT /model` its event loop is busy: every request to it (parses, status) waits
unanswered until the load is done (about 4 s for carebot's model on 2 cores), then gets its answer from the new
model; the old model answers until then, and a load that fails (HTTP 400) leaves it in place. A server without a
model (after `DELETE /model`, or started with none it could load) answers HTTP 409 ("No agent loaded"); one that
is starting accepts no connection until its model is loaded. All of these count as the server being unavailable
for a moment, not as a bad answer: a parse waits (its read timeout), is retried or goes to another server, and
the worker keeps a tweet that still finds no NLU waiting (state "waiting") and tries it again.

Errors (all `NluError`, so callers catch one thing):

    NluError
     ├── NluInputError        the text cannot be classified (empty once cleaned); not retried
     ├── NluUnavailable       Rasa is down, too slow, loading (409), or answers 5xx after the retries
     ├── NluBadResponse       Rasa answered, but not with a parse result (garbage, 4xx, wrong token)
     └── NluModelRefused      a server would not load the model it was asked to (PUT /model)

Nothing is auto-answered without a parse: callers treat any NluError as "no NLU".
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.nlu.text import InvalidText, clean_for_nlu

FALLBACK_INTENT = "nlu_fallback"


class NluError(Exception):
    """The NLU server gave no usable parse."""


class NluInputError(NluError):
    """The text cannot be classified."""


class NluUnavailable(NluError):
    """The NLU server is down or too slow."""


class NluBadResponse(NluError):
    """The NLU server answered with something that is not a parse result."""


class NluModelRefused(NluError):
    """A Rasa server would not load the model it was asked to (`PUT /model`); it keeps the model it had."""


LOADING_STATUS = 409  # Rasa's answer while no model is loaded yet ("No agent loaded")


@dataclass(frozen=True)
class IntentScore:
    name: str
    confidence: float


@dataclass(frozen=True)
class Entity:
    entity: str
    value: str
    start: int
    end: int
    extractor: str
    text: str  # the characters of the parsed text the entity was found in (may differ from value: synonyms)


@dataclass(frozen=True)
class NluResult:
    """What Rasa says of one text. `intent` is `nlu_fallback` when the FallbackClassifier fired;
    `top_intent` is then the classifier's own best guess."""

    text: str
    intent: str
    confidence: float
    ranking: tuple[IntentScore, ...]
    entities: tuple[Entity, ...]
    truncated: bool = False
    model: str | None = field(default=None, compare=False)

    @property
    def is_fallback(self) -> bool:
        return self.intent == FALLBACK_INTENT

    @property
    def top_intent(self) -> IntentScore:
        for score in self.ranking:
            if score.name != FALLBACK_INTENT:
                return score
        return IntentScore(self.intent, self.confidence)

    def entity_values(self, name: str) -> list[str]:
        return [e.value for e in self.entities if e.entity == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": self.confidence,
            "is_fallback": self.is_fallback,
            "top_intent": {"name": self.top_intent.name, "confidence": self.top_intent.confidence},
            "ranking": [{"name": s.name, "confidence": s.confidence} for s in self.ranking],
            "entities": [
                {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end, "extractor": e.extractor}
                for e in self.entities
            ],
            "truncated": self.truncated,
        }


def _confidence(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0 + 1e-6:
        raise ValueError(f"confidence out of range: {value!r}")
    return min(number, 1.0)


def parse_response(payload: Any, text: str, truncated: bool = False) -> NluResult:
    """Turn Rasa's JSON into an NluResult; anything malformed raises NluBadResponse."""
    try:
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        intent = payload["intent"]
        name = intent["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("intent has no name")
        ranking = tuple(
            IntentScore(str(item["name"]), _confidence(item["confidence"]))
            for item in payload.get("intent_ranking") or []
        )
        entities = []
        for item in payload.get("entities") or []:
            start, end = int(item["start"]), int(item["end"])
            if not 0 <= start <= end <= len(text):
                raise ValueError(f"entity span {start}:{end} outside the text")
            entities.append(
                Entity(
                    entity=str(item["entity"]),
                    value=str(item["value"]),
                    start=start,
                    end=end,
                    extractor=str(item.get("extractor", "")),
                    text=text[start:end],
                )
            )
        return NluResult(
            text=text,
            intent=name,
            confidence=_confidence(intent["confidence"]),
            ranking=ranking,
            entities=tuple(entities),
            truncated=truncated,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise NluBadResponse(f"Rasa answered with something that is not a parse result: {exc}") from exc


@dataclass
class Replica:
    """One Rasa server of the client's list, and what the client knows of its health."""

    url: str
    http: httpx.Client
    up: bool = True
    next_check_at: float = 0.0  # when a server that is down is asked again (GET /status)
    check_interval_s: float = 0.0
    parses: int = 0  # parse results it gave
    failures: int = 0  # requests that failed (timeouts, connection errors, 5xx)


class NluClient:
    """Parses texts with one or more running Rasa servers. Thread-safe; reuse one per process.

    With several URLs it spreads the parses over them in turn. A server that times out, refuses the connection
    or answers 5xx is taken out and the parse tried on the next one; a server that is out is asked for its
    status after `recheck_s`, then at doubling intervals up to `recheck_max_s`, and put back once it answers
    with a model loaded. While every server is out, a parse fails at once with NluUnavailable (the worker
    keeps such tweets waiting and tries again); nothing waits on a dead server's timeout over and over.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        token: str | None,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        max_chars: int = 2000,
        backoff_s: float = 0.2,
        recheck_s: float = 1.0,
        recheck_max_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("the NLU client needs at least one URL")
        self._token = token
        self._retries = retries
        self._max_chars = max_chars
        self._backoff_s = backoff_s
        self._recheck_s = recheck_s
        self._recheck_max_s = recheck_max_s
        self._clock = clock
        self._lock = threading.Lock()
        self._turn = 0
        self.replicas = tuple(
            Replica(
                url.rstrip("/"),
                httpx.Client(
                    base_url=url.rstrip("/"),
                    timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
                    transport=transport,
                    headers={"Accept": "application/json"},
                ),
            )
            for url in urls
        )

    @property
    def base_url(self) -> str:
        return ", ".join(replica.url for replica in self.replicas)

    def __enter__(self) -> NluClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for replica in self.replicas:
            replica.http.close()

    @property
    def _params(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    def _next(self, tried: set[int]) -> Replica | None:
        """The next server in turn that is up and not yet tried for this text, after asking the servers that are
        out and due for a check. None when no server is left."""
        with self._lock:
            now = self._clock()
            due = [r for i, r in enumerate(self.replicas) if i not in tried and not r.up and r.next_check_at <= now]
            for replica in due:  # claimed: other threads do not check the same server at once
                replica.next_check_at = now + replica.check_interval_s
        for replica in due:
            self._check(replica)
        n = len(self.replicas)
        with self._lock:
            start, self._turn = self._turn, (self._turn + 1) % n
            for i in ((start + k) % n for k in range(n)):
                if i not in tried and self.replicas[i].up:
                    return self.replicas[i]
        return None

    def _check(self, replica: Replica) -> bool:
        """Ask a server that is out for its status; put it back when it has a model loaded."""
        try:
            response = replica.http.get("/status", params=self._params, timeout=1.0)
            ready = response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError, AttributeError):
            ready = False
        with self._lock:
            if ready:
                replica.up, replica.check_interval_s = True, 0.0
            else:
                self._take_out(replica)
        return ready

    def _take_out(self, replica: Replica) -> None:
        """Mark a server down (the lock held); its next check after a doubling interval."""
        longer = max(self._recheck_s, 2 * replica.check_interval_s)
        interval = self._recheck_s if replica.up else min(self._recheck_max_s, longer)
        replica.up, replica.check_interval_s = False, interval
        replica.next_check_at = self._clock() + interval

    def _failed(self, replica: Replica) -> None:
        with self._lock:
            replica.failures += 1
            if len(self.replicas) > 1:  # a single server stays in use: its retries and backoff are the wait
                self._take_out(replica)

    def parse(self, text: str) -> NluResult:
        """Classify one text. Raises NluInputError, NluUnavailable or NluBadResponse."""
        try:
            cleaned, truncated = clean_for_nlu(text, self._max_chars)
        except InvalidText as exc:
            raise NluInputError(str(exc)) from exc

        problems: list[tuple[str, str]] = []  # (server, what went wrong)
        rounds = self._retries + 1 if len(self.replicas) == 1 else 1  # several: each server once, no waiting
        for attempt in range(rounds):
            if attempt:
                time.sleep(self._backoff_s * 2 ** (attempt - 1))
            tried: set[int] = set()
            while (replica := self._next(tried)) is not None:
                tried.add(self.replicas.index(replica))
                try:
                    response = replica.http.post("/model/parse", params=self._params, json={"text": cleaned})
                except httpx.TimeoutException:
                    problems.append((replica.url, "timed out"))
                    self._failed(replica)
                    continue
                except httpx.TransportError as exc:
                    problems.append((replica.url, f"cannot connect ({type(exc).__name__})"))
                    self._failed(replica)
                    continue
                if response.status_code >= 500:
                    problems.append((replica.url, f"HTTP {response.status_code}"))
                    self._failed(replica)
                    continue
                if response.status_code == LOADING_STATUS:
                    problems.append((replica.url, "has no model loaded yet (HTTP 409)"))
                    self._failed(replica)
                    continue
                if response.status_code in (401, 403):
                    raise NluBadResponse(f"Rasa at {replica.url} refused the auth token (HTTP {response.status_code})")
                if response.status_code != 200:
                    raise NluBadResponse(f"Rasa at {replica.url} answered HTTP {response.status_code}")
                try:
                    payload = response.json()
                except ValueError as exc:
                    raise NluBadResponse(f"Rasa at {replica.url} answered with invalid JSON") from exc
                result = parse_response(payload, cleaned, truncated)
                with self._lock:
                    replica.parses += 1
                return result
        if len(self.replicas) == 1:
            raise NluUnavailable(
                f"the NLU server at {self.base_url} is unavailable: {problems[-1][1]} "
                f"after {self._retries + 1} attempts (is `carebot nlu serve` running?)"
            )
        detail = "; ".join(f"{url} {problem}" for url, problem in problems) or "every one is out, checked again soon"
        raise NluUnavailable(f"none of the {len(self.replicas)} NLU servers answers: {detail}")

    def is_ready(self) -> bool:
        """True when a server answers and has a model loaded."""
        return self.model_file() is not None

    def model_file(self) -> str | None:
        """The model of the first server that answers with one loaded."""
        for replica in self.replicas:
            try:
                response = replica.http.get("/status", params=self._params, timeout=2.0)
                value = response.json().get("model_file") if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
            if value:
                return str(value)
        return None

    def model_files(self) -> dict[str, str | None]:
        """Each server's loaded model (its file name), None for a server that does not answer with one."""
        found: dict[str, str | None] = {}
        for replica in self.replicas:
            try:
                response = replica.http.get("/status", params=self._params, timeout=2.0)
                value = response.json().get("model_file") if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                value = None
            found[replica.url] = str(value) if value else None
        return found

    def replace_model(self, url: str, model_file: str, *, timeout_s: float = 180.0) -> None:
        """Make the server at `url` (one of the client's) load `model_file` (a path on that server's machine)
        with Rasa's `PUT /model`; returns once it serves the new model. The server answers every request only
        after the load, so this waits up to `timeout_s`. Raises NluModelRefused when Rasa cannot load the file
        (the old model stays), NluBadResponse on a refused token, NluUnavailable when the server does not
        answer."""
        replica = next((r for r in self.replicas if r.url == url.rstrip("/")), None)
        if replica is None:
            raise ValueError(f"{url} is not one of this client's NLU servers")
        try:
            response = replica.http.put(
                "/model", params=self._params, json={"model_file": model_file},
                timeout=httpx.Timeout(timeout_s, connect=2.0),
            )  # fmt: skip
        except httpx.TimeoutException as exc:
            raise NluUnavailable(
                f"Rasa at {replica.url} did not finish loading {model_file} in {timeout_s:.0f} s"
            ) from exc
        except httpx.TransportError as exc:
            raise NluUnavailable(f"cannot connect to Rasa at {replica.url} ({type(exc).__name__})") from exc
        if response.status_code in (401, 403):
            raise NluBadResponse(f"Rasa at {replica.url} refused the auth token (HTTP {response.status_code})")
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                message = response.text[:200]
            raise NluModelRefused(f"Rasa at {replica.url} did not load {model_file} (HTTP {response.status_code}): "
                                  f"{message}")  # fmt: skip
        if response.status_code not in (200, 204):
            raise NluBadResponse(f"Rasa at {replica.url} answered HTTP {response.status_code} to PUT /model")
