"""The one module that talks to the Rasa NLU server: `POST /model/parse`, with timeouts and bounded retries.

Errors (all `NluError`, so callers catch one thing):

    NluError
     ├── NluInputError        the text cannot be classified (empty once cleaned); not retried
     ├── NluUnavailable       Rasa is down, too slow, or answers 5xx after the retries
     └── NluBadResponse       Rasa answered, but not with a parse result (garbage, 4xx, wrong token)

Nothing is auto-answered without a parse: callers treat any NluError as "no NLU".
"""

from __future__ import annotations

import math
import time
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


class NluClient:
    """Parses texts with a running Rasa server. Thread-safe; reuse one per process."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        max_chars: int = 2000,
        backoff_s: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._retries = retries
        self._max_chars = max_chars
        self._backoff_s = backoff_s
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __enter__(self) -> NluClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def _params(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    def parse(self, text: str) -> NluResult:
        """Classify one text. Raises NluInputError, NluUnavailable or NluBadResponse."""
        try:
            cleaned, truncated = clean_for_nlu(text, self._max_chars)
        except InvalidText as exc:
            raise NluInputError(str(exc)) from exc

        last_problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.post("/model/parse", params=self._params, json={"text": cleaned})
            except httpx.TimeoutException:
                last_problem = "timed out"
                continue
            except httpx.TransportError as exc:
                last_problem = f"cannot connect ({type(exc).__name__})"
                continue
            if response.status_code >= 500:
                last_problem = f"HTTP {response.status_code}"
                continue
            if response.status_code in (401, 403):
                raise NluBadResponse(f"Rasa at {self.base_url} refused the auth token (HTTP {response.status_code})")
            if response.status_code != 200:
                raise NluBadResponse(f"Rasa at {self.base_url} answered HTTP {response.status_code}")
            try:
                payload = response.json()
            except ValueError as exc:
                raise NluBadResponse(f"Rasa at {self.base_url} answered with invalid JSON") from exc
            return parse_response(payload, cleaned, truncated)
        raise NluUnavailable(
            f"the NLU server at {self.base_url} is unavailable: {last_problem} "
            f"after {self._retries + 1} attempts (is `carebot nlu serve` running?)"
        )

    def is_ready(self) -> bool:
        """True when the server answers and has a model loaded."""
        try:
            response = self._http.get("/status", params=self._params, timeout=2.0)
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError, AttributeError):
            return False

    def model_file(self) -> str | None:
        try:
            response = self._http.get("/status", params=self._params, timeout=2.0)
            value = response.json().get("model_file") if response.status_code == 200 else None
            return str(value) if value else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
